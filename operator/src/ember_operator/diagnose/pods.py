"""Why a Function's pods cannot start, in the user's terms, from a pod.

A Deployment only says that pods are not available; until its progress
deadline passes (minutes) it cannot tell a slow start from one that will
never succeed. The pods can, within seconds: the kubelet reports an image it
cannot pull in the container's waiting state, and the runtime writes its
load error (``Runtime.HandlerNotFound: ... Found: handle``) to the
termination message, which the kubelet copies into the container's
terminated state (``lastState`` once it restarts). Knative's
``RevisionFailed`` messages are the bar: name the image, the fault code and
what was found.

Messages leave out pod names and restart counts, so a crash loop keeps
the same message and costs no status write per restart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ember_operator.status import (
    REASON_CONTAINER_CONFIG,
    REASON_CONTAINER_FAILED,
    REASON_IMAGE_PULL_FAILED,
    REASON_LOAD_FAILED,
    REASON_UNSCHEDULABLE,
)

PULL_FAILURES = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
)
CONFIG_FAILURES = frozenset({"CreateContainerConfigError", "CreateContainerError"})
RUNTIME_FAULT_PREFIX = "Runtime."  # the runtime's stable fault codes
MAX_MESSAGE = 1024


@dataclass(frozen=True)
class PodProblem:
    reason: str
    message: str


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


def _terminated(status: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The last exit of a container that is down: its current terminated
    state, or the one before the restart it is waiting for."""
    now = (status.get("state") or {}).get("terminated")
    if now:
        return dict(now)
    if (status.get("state") or {}).get("waiting"):
        last = (status.get("lastState") or {}).get("terminated")
        return dict(last) if last else None
    return None


def _exit_problem(term: Mapping[str, Any]) -> PodProblem | None:
    code = int(term.get("exitCode") or 0)
    reason = str(term.get("reason") or "")
    message = str(term.get("message") or "").strip()
    if code == 0 and reason != "OOMKilled":
        return None
    if message.startswith(RUNTIME_FAULT_PREFIX):
        return PodProblem(
            REASON_LOAD_FAILED,
            _clip(f"the function could not be loaded (exit code {code}): {message}"),
        )
    if reason == "OOMKilled":
        return PodProblem(
            REASON_CONTAINER_FAILED,
            "the container was killed for going over its memory limit (OOMKilled)",
        )
    detail = f": {message}" if message else ""
    return PodProblem(
        REASON_CONTAINER_FAILED,
        _clip(f"the container exited with code {code} ({reason or 'Error'}){detail}"),
    )


def pod_problem(pod: Mapping[str, Any]) -> PodProblem | None:
    """Why this pod cannot serve, or None when it serves or may still start."""
    meta = pod.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return None  # on its way out: not what the Function is waiting for
    status = pod.get("status") or {}
    for cond in status.get("conditions") or []:
        if (
            cond.get("type") == "PodScheduled"
            and cond.get("status") == "False"
            and cond.get("reason") == "Unschedulable"
        ):
            return PodProblem(
                REASON_UNSCHEDULABLE,
                _clip(f"pods cannot be scheduled: {cond.get('message') or 'no node fits'}"),
            )
    images = {
        c.get("name"): c.get("image") for c in (pod.get("spec") or {}).get("containers") or []
    }
    for cs in status.get("containerStatuses") or []:
        if cs.get("ready"):
            continue
        waiting = (cs.get("state") or {}).get("waiting") or {}
        why = str(waiting.get("reason") or "")
        detail = str(waiting.get("message") or "").strip()
        if why in PULL_FAILURES:
            image = images.get(cs.get("name")) or cs.get("image")
            return PodProblem(
                REASON_IMAGE_PULL_FAILED,
                _clip(f"image {image!r} cannot be pulled ({why}): {detail or 'no detail given'}"),
            )
        if why in CONFIG_FAILURES:
            return PodProblem(
                REASON_CONTAINER_CONFIG, _clip(f"the container cannot be created: {detail or why}")
            )
        term = _terminated(cs)
        if term is not None and (problem := _exit_problem(term)) is not None:
            return problem
    return None


def first_problem(problems: Mapping[str, PodProblem]) -> PodProblem | None:
    """One problem for the status, the same one whatever order pods came in."""
    return problems[min(problems)] if problems else None
