import definitely_not_a_module_ember  # noqa: F401


def handle(event, context):
    return 1
