import sibling_helper


def handle(event, context):
    return sibling_helper.VALUE
