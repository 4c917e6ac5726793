"""The autoscaler's arithmetic, pure: samples in, a replica count out.

Knative's KPA, cut to what Ember needs, so every rule can be tested on a
fake clock without a cluster or a gateway:

* every tick (2 s) brings one sample per Function: in-flight + held
  requests summed over all gateway replicas, and whether any
  ``requests_total`` counter moved since the last tick;
* a stable window (60 s) and a panic window (6 s) average those samples.
  Outside panic, desired = ceil(stable average / target);
* panic starts when the panic-window average exceeds 2x the capacity of the
  ready replicas (``max(1, ready) * target``, as Knative counts a function
  that is just waking as one). In panic the newest sample counts at once
  (the average of a window still full of the calm before a surge lags it by
  the window's length, and the ``autoscale_step`` goal is to reach the
  desired count within one tick), and nothing is scaled down until the
  panic condition has been absent for a stable window;
* scaling down waits until the average is 10% below what one replica
  fewer can carry, then goes to ceil(average / target): a steady load whose
  average sits on a multiple of the target would otherwise flip between two
  counts as the average wobbles across it;
* zero only after ``idleSeconds`` with no request seen and nothing in flight
  or held. A deployment that rose from zero (the gateway's activator woke
  it) counts as activity, so a just-activated function is not sent back to
  zero before its idle time has passed, even if its first request has not
  shown in any counter yet. A function this process has only just started
  watching also gets ``idleSeconds`` of grace, and is not scaled down (but
  to zero) before a stable window of samples is in: nothing is known of
  its past;
* recent requests only keep replicas that exist: waking a function at zero
  is the gateway's job, so a counter that moved never scales up from zero
  by itself (after an operator restart every counter looks new);
* data from a gateway that did not answer never leads to a scale-down.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from ember_operator.status import (
    REASON_AUTOSCALE_IDLE,
    REASON_AUTOSCALE_MAX,
    REASON_AUTOSCALE_MIN,
    REASON_AUTOSCALE_MISSING_STATS,
    REASON_AUTOSCALE_PANIC,
    REASON_AUTOSCALE_RECENT_REQUESTS,
    REASON_AUTOSCALE_STABLE,
)


@dataclass(frozen=True)
class Policy:
    """The windows and thresholds, Knative's defaults."""

    tick: float = 2.0
    stable_window: float = 60.0
    panic_window: float = 6.0
    panic_threshold: float = 2.0  # x the ready replicas' capacity
    scale_down_headroom: float = 0.1  # the hysteresis band


@dataclass(frozen=True)
class Bounds:
    """A Function's ``spec.scale``."""

    min: int = 0
    max: int = 10
    target: int = 5
    idle_seconds: float = 60.0


@dataclass(frozen=True)
class Observation:
    """One tick's signal for one Function, summed over the gateways."""

    concurrency: float  # in flight + held
    requests_moved: bool = False  # a requests_total counter changed
    complete: bool = True  # every gateway replica answered this tick


@dataclass(frozen=True)
class Decision:
    desired: int
    observed: float  # the concurrency the decision used
    panic: bool
    reason: str


class Window:
    """Samples of the last ``span`` seconds; averages over what it holds."""

    def __init__(self, span: float) -> None:
        self.span = span
        self.samples: deque[tuple[float, float]] = deque()

    def add(self, now: float, value: float) -> None:
        self.samples.append((now, value))
        while self.samples and self.samples[0][0] <= now - self.span:
            self.samples.popleft()

    def average(self) -> float:
        if not self.samples:
            return 0.0
        return sum(v for _, v in self.samples) / len(self.samples)


def direction_changes(counts: Sequence[int]) -> int:
    """How often a series of replica counts turned (up then down, or down
    then up): what "oscillation" counts in tests and the benchmark."""
    steps = [b - a for a, b in itertools.pairwise(counts) if b != a]
    return sum(1 for a, b in itertools.pairwise(steps) if (a > 0) != (b > 0))


def _ceil_div(value: float, per: float) -> int:
    # Round first: 10.000000001 / 5 must not become 3 replicas.
    return max(0, math.ceil(round(value / per, 6)))


class FunctionScaler:
    """One Function's memory between ticks: its windows, the panic state,
    when it was last busy."""

    def __init__(self, now: float, policy: Policy | None = None) -> None:
        self.policy = policy or Policy()
        self.stable = Window(self.policy.stable_window)
        self.panic_samples = Window(self.policy.panic_window)
        self.first_seen = now
        self.last_activity: float | None = None
        self.panic_since: float | None = None  # the last tick over the threshold
        self.panic_floor = 0  # the most replicas panic asked for
        self.last_current: int | None = None
        self.last_desired: int | None = None

    @property
    def panicking(self) -> bool:
        return self.panic_since is not None

    def decide(
        self, now: float, seen: Observation, bounds: Bounds, current: int, ready: int
    ) -> Decision:
        """The replica count for this tick. ``current`` is the Deployment's
        ``spec.replicas``, ``ready`` its ready replicas."""
        p = self.policy
        concurrency = max(0.0, seen.concurrency)
        self.stable.add(now, concurrency)
        self.panic_samples.add(now, concurrency)
        # Risen from zero, and not by our own decision: the activator woke it.
        woken = self.last_current == 0 and current > 0 and self.last_desired != current
        self.last_current = current
        if concurrency > 0 or seen.requests_moved or woken:
            self.last_activity = now

        stable_avg = self.stable.average()
        panic_avg = self.panic_samples.average()
        capacity = max(1, ready) * bounds.target
        if panic_avg > p.panic_threshold * capacity:
            self.panic_since = now
        elif self.panic_since is not None and now - self.panic_since >= p.stable_window:
            self.panic_since, self.panic_floor = None, 0

        if self.panicking:
            observed = max(panic_avg, concurrency)
            want = max(_ceil_div(observed, bounds.target), self.panic_floor, current)
            self.panic_floor = want
            desired, reason = want, REASON_AUTOSCALE_PANIC
        else:
            observed = stable_avg
            desired = _ceil_div(stable_avg, bounds.target)
            one_fewer = (current - 1) * bounds.target * (1 - p.scale_down_headroom)
            if desired < current and stable_avg > one_fewer:
                desired = current  # within the band: a wobble, not a trend
            reason = REASON_AUTOSCALE_STABLE

        if not self._busy(now, concurrency, bounds, current):
            desired, reason = 0, REASON_AUTOSCALE_IDLE
            self.panic_since, self.panic_floor = None, 0
        elif now - self.first_seen < p.stable_window and desired < current:
            desired = current  # a window not yet full is no basis for less
        elif desired < 1 and (concurrency > 0 or current > 0):
            desired, reason = 1, REASON_AUTOSCALE_RECENT_REQUESTS

        if not seen.complete and desired < current:
            desired, reason = current, REASON_AUTOSCALE_MISSING_STATS
        if desired > bounds.max:
            desired, reason = bounds.max, REASON_AUTOSCALE_MAX
        if desired < bounds.min:
            desired, reason = bounds.min, REASON_AUTOSCALE_MIN
        self.last_desired = desired
        return Decision(desired, round(observed, 2), self.panicking, reason)

    def _busy(self, now: float, concurrency: float, bounds: Bounds, current: int) -> bool:
        """False once the function may go to zero: nothing in flight or held,
        and no request (or wake-up) for ``idleSeconds``."""
        if concurrency > 0:
            return True
        if current == 0:
            return False  # waking it is the gateway's job
        since = self.last_activity if self.last_activity is not None else self.first_seen
        return now - since <= bounds.idle_seconds
