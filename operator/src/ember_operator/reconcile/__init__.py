"""The kopf handlers, thin: observe, render, apply, report.

Importing the package registers nothing; ``ember_operator.handlers`` imports
every handler module (so a submodule never imports its own package's
handlers back through this file).
"""
