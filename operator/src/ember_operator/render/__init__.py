"""Pure manifest builders: a parsed Function (and the Config) in, a dict out.

No I/O and no clock here, so every builder is deterministic and unit-tested
on its own; ``kube.client`` applies what these return.
"""
