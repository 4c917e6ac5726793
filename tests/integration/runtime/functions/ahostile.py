"""An async test function for the hostile-client tests: runs on the
server's event loop, so whatever escapes it escapes into the server."""

from ember_runtime import Response


async def handle(event, context):
    if context.path == "/bad-status":
        return Response("x", status="abc")
    return {"async": True, "event_type": type(event).__name__}
