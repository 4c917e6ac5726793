"""Ember's control plane: the operator, and later the gateway and autoscaler.

Named ``ember_operator`` (not ``operator``) so it never shadows the standard
library's ``operator`` module.
"""
