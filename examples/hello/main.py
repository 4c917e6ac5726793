"""Hello world for Ember: the smallest useful function.

Run it without a cluster:
    python -m ember_runtime --target main:handle --source examples/hello/main.py --port 8080
    curl -s localhost:8080/ -d '{"name": "Ada"}' -H 'content-type: application/json'
"""


def handle(event, context):  # type: ignore[no-untyped-def]
    name = event.get("name", "world") if isinstance(event, dict) else "world"
    return {"message": f"Hello, {name}!"}
