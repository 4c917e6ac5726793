"""The autoscaler: Functions' replicas follow their load, down to zero.

``decide`` is the pure scaling math (tested on a fake clock), ``collect``
reads the load from every gateway replica, ``scale`` knows the Functions
and Deployments and writes only the Deployments' ``scale`` subresource,
``loop`` ticks every 2 s in the operator process and reports decisions in
status. Waking a function at zero is the gateway's activator's job.
"""
