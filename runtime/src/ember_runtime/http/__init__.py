"""The HTTP/1.1 core: one parser, one set of limits, one way to answer.

The runtime serves function calls with it, and the gateway will serve
clients with it too, so both answer a malformed, slow, huge or pipelined
request the same way. Nothing in here knows about functions: a connection
hands each complete request to an ``Endpoint`` and writes back whatever
``Reply`` it is given, in order.
"""
