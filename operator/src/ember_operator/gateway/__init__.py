"""The gateway: every call to a Function enters here (``python -m
ember_operator.gateway``).

Where things live: ``routes`` (which Function a path means), ``endpoints``
(a Function's pods, least in-flight first, the per-pod cap and the held
queue), ``proxy`` (the HTTP core's endpoint: admit, hold, forward, answer),
``upstream`` (pooled keep-alive connections to pods), ``headers`` (what is
forwarded), ``activator`` (scale from zero and probe new pods), ``feed``
(Functions, Triggers and EndpointSlices from the cluster, or from a file),
``metrics`` and ``admin`` (what the gateway says about itself), ``server``
(the wiring). Nothing here is imported by the operator's other layers.
"""
