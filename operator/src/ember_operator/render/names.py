"""Names of the objects a Function owns, in one place.

A Function's name is a DNS-1035 label of at most 63 characters (the CRD
enforces it), so it can be used as is for the Service, the Deployment and the
label values; only the ConfigMap and the signing Secret get a suffix.
"""

from __future__ import annotations

from ember_runtime import pod


def deployment_name(function: str) -> str:
    return function


def service_name(function: str) -> str:
    return function


def configmap_name(function: str) -> str:
    return f"{function}-source"


def signing_secret_name(function: str) -> str:
    return f"{function}-signing"


SIGNING_KEY_FIELD = "key"  # in the signing Secret: the hex key, as EMBER_SIGNING_KEY wants it
CONTAINER_NAME = "function"
PORT_NAME = pod.PORT_NAME
CONTAINER_PORT = pod.PORT
SOURCE_DIR = "/var/ember/source"
SOURCE_KEY = "main.py"
SOURCE_VOLUME = "source"
TMP_VOLUME = "tmp"
