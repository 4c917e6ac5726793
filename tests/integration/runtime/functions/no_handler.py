def handler(event, context):
    return 1


def helper():
    return 2
