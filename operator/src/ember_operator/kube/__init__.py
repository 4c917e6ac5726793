"""Everything that talks to the Kubernetes API: ``client`` (requests, the
404/409 policy, ``ensure``) and ``informer`` (a list+watch cache any
component can feed a handler from). Nothing here knows what a Function's
status means: the layers above name the reasons."""
