"""The one module that talks to the Kubernetes API, and its error policy.

Everything above this module deals in plain manifest dicts and three kinds of
outcome, so the choice of client library stays a local detail:

* a value (or ``None`` for 404 on a read: absence is an answer, not an error);
* ``UserFault``: the user's spec cannot be applied (an object of the same name
  that Ember does not own, a manifest the API server refuses as invalid). The
  handler turns it into a condition and does not retry fast;
* ``kopf.TemporaryError``: anything that may pass by itself (409 on a stale
  write, 429, 5xx, a namespace being terminated, a dropped connection); kopf
  retries it with a delay.

Objects are reconciled by ``ensure``: create, and on 409 read, check that the
object is controlled by this Function, compare the spec-hash annotation, and
replace only on drift. Replicas are never copied from the desired manifest
onto a live Deployment: the caller's ``replicas`` function decides from the
live count, which belongs to the autoscaler.

The transport is ``kubernetes_asyncio`` on kopf's event loop, with responses
kept as JSON (no model (de)serialisation). The ``operator_reconcile``
benchmark chose it: with 1,000 Functions it reached 30.4 objects/s against
28.3 for the blocking client in the loop's thread pool, at the same operator
CPU (17 s) and ~14 MB less RSS.
The client is not the bottleneck; kopf's per-event work and the API server's
writes are. Two details of the client did matter: its session's
``trust_env`` (a proxy and ~/.netrc lookup in a worker thread per request,
16% of operator CPU) and the pool size: at 1,000 Functions, 64 TLS
connections reached 44.7 objects/s at +93 MB RSS, 32 reached 41.1 at +76,
16 only 35.7 at +65 (with fewer connections the operator's requests get a
smaller share of a saturated API server).
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import kopf
from kubernetes_asyncio import client as k8s_client
from kubernetes_asyncio import config as k8s_config
from kubernetes_asyncio.client.exceptions import ApiException

from ember_operator.api.v1alpha1 import GROUP, VERSION
from ember_operator.render.labels import SPEC_HASH_ANNOTATION

JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"

# kind -> (path prefix, plural). Namespaced kinds only.
_KINDS: dict[str, tuple[str, str]] = {
    "ConfigMap": ("/api/v1", "configmaps"),
    "Secret": ("/api/v1", "secrets"),
    "Service": ("/api/v1", "services"),
    "Deployment": ("/apis/apps/v1", "deployments"),
    "Function": (f"/apis/{GROUP}/{VERSION}", "functions"),
    "Trigger": (f"/apis/{GROUP}/{VERSION}", "triggers"),
}

# Retry delays (seconds) for transient failures.
CONFLICT_DELAY = 1.0
TRANSIENT_DELAY = 5.0
FORBIDDEN_DELAY = 30.0


class UserFault(Exception):
    """The user's spec cannot be applied as it is; ``reason`` is a status constant."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass
class ApiError(Exception):
    status: int
    body: str

    @property
    def message(self) -> str:
        try:
            return str(json.loads(self.body).get("message") or self.body)
        except (ValueError, AttributeError):
            return self.body


def path(kind: str, namespace: str | None, name: str | None = None, sub: str | None = None) -> str:
    """An object's or a collection's path; ``namespace=None`` (no name) is
    the collection across every namespace, for lists and watches."""
    prefix, plural = _KINDS[kind]
    p = f"{prefix}/namespaces/{namespace}/{plural}" if namespace else f"{prefix}/{plural}"
    if name is not None:
        p += f"/{name}"
    if sub is not None:
        p += f"/{sub}"
    return p


def transient(err: ApiError, what: str) -> kopf.TemporaryError:
    """The retry policy for everything that is not a user fault."""
    if err.status == 409:
        return kopf.TemporaryError(f"{what}: conflict, retrying", delay=CONFLICT_DELAY)
    if err.status == 403:
        # A terminating namespace or missing RBAC: neither is fixed by hammering.
        return kopf.TemporaryError(f"{what}: forbidden: {err.message}", delay=FORBIDDEN_DELAY)
    return kopf.TemporaryError(f"{what}: HTTP {err.status}: {err.message}", delay=TRANSIENT_DELAY)


def controller_ref(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return dict(ref)
    return None


def controlling_function(
    obj: Mapping[str, Any],
) -> tuple[tuple[str, str], Mapping[str, Any]] | None:
    """(namespace, name) of the Function controlling ``obj``, and the
    owner reference itself; None when no Function controls it."""
    owner = controller_ref(obj)
    namespace = (obj.get("metadata") or {}).get("namespace")
    if owner is None or owner.get("kind") != "Function" or not namespace:
        return None
    return (str(namespace), str(owner["name"])), owner


def controller_uid(obj: Mapping[str, Any]) -> str | None:
    ref = controller_ref(obj)
    return str(ref.get("uid")) if ref is not None else None


def live_hash(obj: Mapping[str, Any]) -> str | None:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(SPEC_HASH_ANNOTATION)
    return str(value) if value is not None else None


FIELD_MANAGER = "ember-operator"
WRITES = frozenset({"POST", "PUT", "PATCH"})


class Kube:
    """A connection to the API server plus the 404/409 policy."""

    def __init__(self, api: Any, watch_api: Any = None) -> None:
        self._api = api
        # Watches hold a connection for minutes each: they get their own
        # pool, so they never take one of the requests' connections.
        self._watch_api = watch_api if watch_api is not None else api

    @classmethod
    async def connect(cls, pool_size: int = 32) -> Kube:
        """In-cluster credentials when present, else the current KUBECONFIG."""
        configuration = k8s_client.Configuration()
        try:
            k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except k8s_config.ConfigException:
            # Read KUBECONFIG now: the library reads it once, at import time.
            await k8s_config.load_kube_config(
                config_file=os.environ.get("KUBECONFIG") or None,
                client_configuration=configuration,
            )
        watch_configuration = copy.copy(configuration)
        watch_configuration.connection_pool_maxsize = 0  # no limit: one per watch
        configuration.connection_pool_maxsize = pool_size
        api = k8s_client.ApiClient(configuration)
        watch_api = k8s_client.ApiClient(watch_configuration)
        for client in (api, watch_api):
            _no_env_lookups(client)
        return cls(api, watch_api)

    async def close(self) -> None:
        await self._api.close()
        if self._watch_api is not self._api:
            await self._watch_api.close()

    async def request(
        self,
        method: str,
        url: str,
        body: Any = None,
        content_type: str = JSON,
        query: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """One call; raises ``ApiError`` for non-2xx and ``TemporaryError`` when
        the server cannot be reached at all."""
        headers = {"Accept": JSON, "Content-Type": content_type}
        if method in WRITES:
            # Name Ember in managedFields (``kubectl get --show-managed-fields``).
            query = {"fieldManager": FIELD_MANAGER, **(query or {})}
        try:
            result = await self._api.call_api(
                url,
                method,
                query_params=list((query or {}).items()),
                header_params=headers,
                body=body,
                response_types_map={200: "object", 201: "object", 202: "object"},
                auth_settings=["BearerToken"],
                _return_http_data_only=True,
            )
        except ApiException as e:
            raise ApiError(int(e.status or 0), str(e.body or e.reason)) from e
        except (TimeoutError, OSError, aiohttp.ClientError) as e:
            # ClientError: a kept-alive connection the server had closed, a
            # cut-off body; neither is an OSError.
            raise kopf.TemporaryError(f"{method} {url}: {e!r}", delay=TRANSIENT_DELAY) from e
        return result if isinstance(result, dict) else {}

    async def watch(
        self, url: str, query: Mapping[str, str], timeout_seconds: int
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Stream a watch: one decoded event (``type``, ``object``) per line.

        The API server ends the stream after ``timeout_seconds``; a stream
        silent for 30 s longer than that is taken for a dead connection.
        Raises ``ApiError`` for a refused watch (410 Gone among them)."""
        response = await self._watch_api.call_api(
            url,
            "GET",
            query_params=[
                *query.items(),
                ("watch", "true"),
                ("timeoutSeconds", str(timeout_seconds)),
            ],
            header_params={"Accept": JSON},
            auth_settings=["BearerToken"],
            _preload_content=False,
            _request_timeout=aiohttp.ClientTimeout(sock_connect=30, sock_read=timeout_seconds + 30),
        )
        try:
            if response.status != 200:
                raise ApiError(response.status, (await response.read()).decode(errors="replace"))
            async for line in response.content:
                if line.strip():
                    yield json.loads(line)
        finally:
            response.release()

    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return await self.request("GET", path(kind, namespace, name))
        except ApiError as e:
            if e.status == 404:
                return None
            raise transient(e, f"get {kind} {namespace}/{name}") from e

    async def ensure(
        self,
        desired: dict[str, Any],
        owner_uid: str,
        *,
        create_first: bool = True,
        replicas: Callable[[int | None], int] | None = None,
    ) -> dict[str, Any]:
        """Make the live object match ``desired``; return the live object.

        ``create_first`` saves a round trip for new Functions; existing ones
        (updates, resumes) read first so an unchanged object costs one GET.
        """
        kind = desired["kind"]
        meta = desired["metadata"]
        ns, name = meta["namespace"], meta["name"]
        what = f"{kind} {ns}/{name}"
        live: dict[str, Any] | None = None
        if not create_first:
            live = await self.get(kind, ns, name)
        if live is None:
            try:
                return await self.request("POST", path(kind, ns), body=desired)
            except ApiError as e:
                if e.status == 409:  # already there: compare below
                    live = await self.get(kind, ns, name)
                elif e.status in (400, 422):
                    raise UserFault("InvalidSpec", f"{what}: {e.message}") from e
                else:
                    raise transient(e, f"create {what}") from e
            if live is None:  # deleted between the 409 and the read
                raise kopf.TemporaryError(f"{what} vanished, retrying", delay=CONFLICT_DELAY)

        owner = controller_ref(live)
        if owner is None or owner.get("uid") != owner_uid:
            if owner is not None and owner.get("kind") == "Function":
                # Left over from a deleted Function of the same name: the
                # garbage collector is about to remove it.
                raise kopf.TemporaryError(f"{what} belongs to an older Function", delay=2)
            raise UserFault(
                "NameConflict", f"{what} already exists and is not managed by this Function"
            )

        current_replicas = (live.get("spec") or {}).get("replicas")
        want_replicas = replicas(current_replicas) if replicas is not None else None
        if live_hash(live) == live_hash(desired) and want_replicas == current_replicas:
            return live

        body = _merge_for_replace(live, desired)
        if want_replicas is not None:
            body["spec"]["replicas"] = want_replicas
        try:
            return await self.request("PUT", path(kind, ns, name), body=body)
        except ApiError as e:
            if e.status in (400, 422):
                raise UserFault("InvalidSpec", f"{what}: {e.message}") from e
            raise transient(e, f"update {what}") from e

    async def delete_owned(self, kind: str, namespace: str, name: str, owner_uid: str) -> None:
        """Delete an object only if this Function controls it; absent is fine."""
        live = await self.get(kind, namespace, name)
        if live is None or controller_uid(live) != owner_uid:
            return
        try:
            await self.request("DELETE", path(kind, namespace, name))
        except ApiError as e:
            if e.status != 404:
                raise transient(e, f"delete {kind} {namespace}/{name}") from e

    async def patch_status(
        self, kind: str, namespace: str, name: str, status: Mapping[str, Any]
    ) -> bool:
        """Merge-patch ``status``; False when the object is gone (nothing to report)."""
        try:
            await self.request(
                "PATCH",
                path(kind, namespace, name, "status"),
                body={"status": dict(status)},
                content_type=MERGE_PATCH,
            )
        except ApiError as e:
            if e.status == 404:
                return False
            raise transient(e, f"status of {kind} {namespace}/{name}") from e
        return True


_PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


def _no_env_lookups(api: Any) -> None:
    """kubernetes_asyncio opens its aiohttp session with ``trust_env=True``,
    which makes every request look up proxies and ~/.netrc in a worker thread
    (16% of the operator's CPU in the benchmark). Use the same connector
    without that, as kopf does by default, unless a proxy is configured
    through the environment."""
    if any(os.environ.get(var) for var in _PROXY_VARS):
        return
    rest = api.rest_client
    old = rest.pool_manager
    rest.pool_manager = aiohttp.ClientSession(
        connector=old.connector, trust_env=False, read_bufsize=2**21
    )
    old.detach()  # the new session owns the connector now


def _merge_for_replace(live: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    """The PUT body: our manifest, carrying the live resourceVersion and the
    labels/annotations other controllers added (e.g. the Deployment revision)."""
    body = json.loads(json.dumps(desired))
    live_meta = live.get("metadata") or {}
    meta = body["metadata"]
    meta["resourceVersion"] = live_meta.get("resourceVersion")
    meta["labels"] = {**(live_meta.get("labels") or {}), **(meta.get("labels") or {})}
    meta["annotations"] = {
        **(live_meta.get("annotations") or {}),
        **(meta.get("annotations") or {}),
    }
    if body["kind"] == "Service":
        # Allocated by the API server and immutable: keep what was allocated.
        for key in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
            if key in (live.get("spec") or {}):
                body["spec"][key] = live["spec"][key]
    return dict(body)
