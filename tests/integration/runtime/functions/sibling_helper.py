VALUE = "from a sibling module"
