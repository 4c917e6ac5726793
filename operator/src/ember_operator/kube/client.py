"""The one client layer: requests to the Kubernetes API and their error policy.

Everything above this module deals in plain manifest dicts and three kinds of
outcome, so the choice of client library stays a local detail:

* a value (or ``None`` for 404 on a read: absence is an answer, not an error);
* ``UserFault``: the user's spec cannot be applied: ``NameTaken`` (an object
  of the same name that another controller, or nobody, owns) or ``Refused``
  (a manifest the API server rejects as invalid). The handler turns it into a
  condition with a reason of its own and does not retry fast;
* ``kopf.TemporaryError``: anything that may pass by itself (409 on a stale
  write, 429, 5xx, a namespace being terminated, a dropped connection); kopf
  retries it with a delay.

Objects are reconciled by ``ensure``: create, and on 409 read, check that the
object is controlled by the owner the desired manifest names, ask the caller
whether the live object is still what it wants (Ember compares a spec-hash
annotation; this module does not know it), and replace only on drift.
Replicas are never copied from the desired manifest onto a live Deployment:
the caller's ``replicas`` function decides from the live count, which belongs
to the autoscaler.

The connection itself (which library, which pool) is ``transport``'s;
the paths are ``resources``'.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import kopf
from kubernetes_asyncio.client.exceptions import ApiException

from ember_operator.kube.objects import controller_ref, controller_uid
from ember_operator.kube.resources import path
from ember_operator.kube.transport import open_clients

JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"


# Retry delays (seconds) for transient failures.
CONFLICT_DELAY = 1.0
TRANSIENT_DELAY = 5.0
FORBIDDEN_DELAY = 30.0


class UserFault(Exception):
    """The user's spec cannot be applied as it is; the caller names the reason."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Refused(UserFault):
    """The API server rejected the manifest as invalid (400, 422)."""


class NameTaken(UserFault):
    """An object of that name exists and its controller is someone else."""


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


def transient(err: ApiError, what: str) -> kopf.TemporaryError:
    """The retry policy for everything that is not a user fault."""
    if err.status == 409:
        return kopf.TemporaryError(f"{what}: conflict, retrying", delay=CONFLICT_DELAY)
    if err.status == 403:
        # A terminating namespace or missing RBAC: neither is fixed by hammering.
        return kopf.TemporaryError(f"{what}: forbidden: {err.message}", delay=FORBIDDEN_DELAY)
    return kopf.TemporaryError(f"{what}: HTTP {err.status}: {err.message}", delay=TRANSIENT_DELAY)


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
        """A client with in-cluster credentials when present, else KUBECONFIG's."""
        return cls(*await open_clients(pool_size))

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
        *,
        unchanged: Callable[[Mapping[str, Any], Mapping[str, Any]], bool],
        create_first: bool = True,
        replicas: Callable[[int | None], int] | None = None,
    ) -> dict[str, Any]:
        """Make the live object match ``desired``; return the live object.

        ``desired`` names its controller in its owner references; a live
        object controlled by anyone else is not taken over. ``unchanged(live,
        desired)`` says whether the live object needs no update.
        ``create_first`` saves a round trip for new objects; existing ones
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
                    raise Refused(f"{what}: {e.message}") from e
                else:
                    raise transient(e, f"create {what}") from e
            if live is None:  # deleted between the 409 and the read
                raise kopf.TemporaryError(f"{what} vanished, retrying", delay=CONFLICT_DELAY)

        owner, want = controller_ref(live), controller_ref(desired) or {}
        if owner is None or owner.get("uid") != want.get("uid"):
            kind_of_owner = want.get("kind", "owner")
            if owner is not None and owner.get("kind") == kind_of_owner:
                # Left over from a deleted owner of the same name: the
                # garbage collector is about to remove it.
                raise kopf.TemporaryError(f"{what} belongs to an older {kind_of_owner}", delay=2)
            raise NameTaken(f"{what} already exists and is not managed by this {kind_of_owner}")

        current_replicas = (live.get("spec") or {}).get("replicas")
        want_replicas = replicas(current_replicas) if replicas is not None else None
        if unchanged(live, desired) and want_replicas == current_replicas:
            return live

        body = _merge_for_replace(live, desired)
        if want_replicas is not None:
            body["spec"]["replicas"] = want_replicas
        try:
            return await self.request("PUT", path(kind, ns, name), body=body)
        except ApiError as e:
            if e.status in (400, 422):
                raise Refused(f"{what}: {e.message}") from e
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
        return await self._patch_sub(kind, namespace, name, "status", {"status": dict(status)})

    async def scale(self, kind: str, namespace: str, name: str, replicas: int) -> bool:
        """Set replicas through the ``scale`` subresource only (the autoscaler
        owns that field, nothing else); False when the object is gone. No
        resourceVersion, so no 409: the newest count wins, as a tick wants."""
        body = {"spec": {"replicas": replicas}}
        return await self._patch_sub(kind, namespace, name, "scale", body)

    async def _patch_sub(
        self, kind: str, namespace: str, name: str, sub: str, body: dict[str, Any]
    ) -> bool:
        try:
            url = path(kind, namespace, name, sub)
            await self.request("PATCH", url, body=body, content_type=MERGE_PATCH)
        except ApiError as e:
            if e.status == 404:
                return False
            raise transient(e, f"{sub} of {kind} {namespace}/{name}") from e
        return True


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
