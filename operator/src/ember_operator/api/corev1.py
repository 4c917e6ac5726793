"""The few core/v1 shapes a Function embeds (EnvVar, ResourceRequirements).

They are typed here rather than passed through with
``x-kubernetes-preserve-unknown-fields`` so the API server refuses a typo in
``valueFrom`` at ``kubectl apply`` time, instead of the Deployment failing later
where the user never looks. Only what the pod spec accepts is modelled.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic.alias_generators import to_camel

# The apiserver's own pattern for resource.Quantity in CRDs (int-or-string).
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)

Quantity = Annotated[
    int | str,
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": QUANTITY_PATTERN,
            "x-kubernetes-int-or-string": True,
        }
    ),
]

# DNS-1123 subdomain: names of Secrets, ConfigMaps and other objects.
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# C_IDENTIFIER-ish: environment variable names Kubernetes accepts.
ENV_NAME = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"


class K8sModel(BaseModel):
    """camelCase on the wire, snake_case in Python, unknown keys ignored (the
    API server prunes them anyway, and the operator must read old objects)."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )

    def to_k8s(self) -> dict[str, Any]:
        """The wire form: camelCase keys, unset optionals left out."""
        return self.model_dump(by_alias=True, exclude_none=True)


class KeySelector(K8sModel):
    """A key of a Secret or ConfigMap in the Function's namespace."""

    name: str = Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN)
    key: str = Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")
    optional: bool | None = None


class ObjectFieldSelector(K8sModel):
    field_path: str = Field(min_length=1, max_length=256)
    api_version: str | None = Field(default=None, max_length=64)


class ResourceFieldSelector(K8sModel):
    resource: str = Field(min_length=1, max_length=64)
    container_name: str | None = Field(default=None, max_length=63)
    divisor: Quantity | None = None


class EnvVarSource(K8sModel):
    """Where a variable's value comes from; exactly one source."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "[has(self.secretKeyRef), has(self.configMapKeyRef),"
                    " has(self.fieldRef), has(self.resourceFieldRef)]"
                    ".filter(x, x).size() == 1",
                    "message": "exactly one of secretKeyRef, configMapKeyRef, fieldRef"
                    " or resourceFieldRef must be set",
                }
            ]
        }
    )

    secret_key_ref: KeySelector | None = None
    config_map_key_ref: KeySelector | None = None
    field_ref: ObjectFieldSelector | None = None
    resource_field_ref: ResourceFieldSelector | None = None


class EnvVar(K8sModel):
    """core/v1 EnvVar: a literal value or a reference."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!(has(self.value) && has(self.valueFrom))",
                    "message": "value and valueFrom are mutually exclusive",
                }
            ]
        }
    )

    name: str = Field(min_length=1, max_length=256, pattern=ENV_NAME)
    value: str | None = Field(default=None, max_length=32768)
    value_from: EnvVarSource | None = None


class ResourceRequirements(K8sModel):
    """core/v1 ResourceRequirements (limits and requests; claims are not offered)."""

    limits: dict[str, Quantity] | None = Field(default=None, max_length=16)
    requests: dict[str, Quantity] | None = Field(default=None, max_length=16)


def cel_rules(*rules: tuple[str, str]) -> dict[str, Any]:
    """CEL validation rules (``x-kubernetes-validations``): (rule, message)."""
    return {"x-kubernetes-validations": [{"rule": r, "message": m} for r, m in rules]}
