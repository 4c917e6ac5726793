"""The async path: invocations stored in Redis Streams and delivered to
Functions through the gateway, at least once, with retries, a dead-letter
stream and redrive (``python -m ember_operator.dispatch``).

Redis is the only state: any dispatcher replica can die at any moment and
another one (or the same one, restarted) finishes its work, because a
message leaves a stream only after its answer (or its dead letter) is
written. The gateway's ``/async/`` API writes through ``store``.
"""
