"""Building the autoscaler from the operator's Config and connection.

Kept apart from the loop so that the loop can be driven by hand (tests, the
benchmark) with fakes, and the operator's startup stays one call: it hands
over its Deployment handler and gets it back wrapped (``Deployments.tee``),
so one watch on Function Deployments feeds both.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ember_operator.autoscaler.exporter import Exporter
from ember_operator.autoscaler.gateways import EndpointSliceGateways, StaticGateways
from ember_operator.autoscaler.loop import Autoscaler
from ember_operator.autoscaler.scale import Deployments, Functions, Handler
from ember_operator.config import Config
from ember_operator.kube.client import Kube
from ember_operator.kube.informer import Informer
from ember_operator.kube.resources import RESOURCES
from ember_operator.render.labels import FUNCTION_LABEL

log = logging.getLogger("ember_operator.autoscaler")

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def gateway_namespace(config: Config) -> str | None:
    if config.gateway_namespace:
        return config.gateway_namespace
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or None
    except OSError:
        return None


class RunningAutoscaler:
    """The loop with the informers and gateway discovery it needs."""

    def __init__(self, kube: Kube, config: Config, *, own_deployment_watch: bool = False):
        self.config = config
        namespace = gateway_namespace(config)
        self.gateways: StaticGateways | EndpointSliceGateways
        if config.autoscaler_gateways:
            self.gateways = StaticGateways(list(config.autoscaler_gateways))
        elif namespace:
            self.gateways = EndpointSliceGateways(kube, namespace, config.gateway_admin_port)
        else:
            log.warning("autoscaler: no gateway namespace (POD_NAMESPACE): no load to read")
            self.gateways = StaticGateways([])
        self.functions = Functions(watches=config.watches)
        self.deployments = Deployments()
        self.autoscaler = Autoscaler(
            kube, self.gateways, functions=self.functions, deployments=self.deployments
        )
        self.exporter = (
            Exporter(self.autoscaler, config.metrics_port) if config.metrics_port else None
        )
        self.informers = [self._informer(kube, "Function", self.functions.event, None)]
        if own_deployment_watch:
            handler = self.deployments.event
            self.informers.append(self._informer(kube, "Deployment", handler, FUNCTION_LABEL))

    def _informer(self, kube: Kube, kind: str, handler: Handler, selector: str | None) -> Informer:
        c = self.config
        return Informer(
            kube,
            RESOURCES[kind],
            handler,
            namespaces=c.plain_namespaces,
            accepts_namespace=None if c.plain_namespaces is not None else c.watches,
            label_selector=selector,
        )

    def start(self) -> None:
        for informer in self.informers:
            informer.start()
        if isinstance(self.gateways, EndpointSliceGateways):
            self.gateways.start()
        self.autoscaler.start()

    async def start_exporter(self) -> None:
        if self.exporter is not None:
            await self.exporter.start()

    async def stop(self) -> None:
        if self.exporter is not None:
            await self.exporter.stop()
        await self.autoscaler.stop()
        await self.gateways.stop()
        for informer in self.informers:
            await informer.stop()
