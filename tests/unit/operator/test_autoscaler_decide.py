"""The scaling math on a fake clock: the clock is a number the test moves
by one 2 s tick at a time, and the "cluster" is a replica count that
follows the decisions (ready as soon as desired, the best case for
oscillation)."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from ember_operator import status as st
from ember_operator.autoscaler.decide import (
    Bounds,
    Decision,
    FunctionScaler,
    Observation,
    Policy,
    direction_changes,
)

pytestmark = pytest.mark.unit

TICK = Policy().tick


class Sim:
    """A Function under a load profile, one tick per sample."""

    def __init__(self, bounds: Bounds | None = None, current: int = 0, ready: int | None = None):
        self.bounds = bounds or Bounds()
        self.now = 1000.0
        self.scaler = FunctionScaler(self.now)
        self.current = current
        self.ready = current if ready is None else ready
        self.history: list[Decision] = []

    def run(
        self,
        loads: Iterable[float],
        *,
        moved: bool | None = None,
        complete: bool = True,
        follow: bool = True,
    ) -> Decision:
        d = None
        for load in loads:
            self.now += TICK
            seen = Observation(load, load > 0 if moved is None else moved, complete)
            d = self.scaler.decide(self.now, seen, self.bounds, self.current, self.ready)
            self.history.append(d)
            if follow:
                self.current = self.ready = d.desired
        assert d is not None
        return d

    def ticks(self, seconds: float) -> int:
        return int(seconds / TICK)

    def direction_changes(self) -> int:
        return direction_changes([d.desired for d in self.history])


def test_step_load_reaches_its_count_in_the_tick_panic_starts() -> None:
    sim = Sim(Bounds(max=20, target=5), current=1)
    sim.run([5] * 10)
    assert sim.current == 1
    d = sim.run([50])
    assert d.panic and d.desired == 10 and d.reason == st.REASON_AUTOSCALE_PANIC
    sim.run([50] * 60)
    assert sim.current == 10 and sim.direction_changes() == 0


def test_a_spike_panics_and_holds_for_a_stable_window_then_decays() -> None:
    sim = Sim(Bounds(max=20, target=5, idle_seconds=600), current=2)
    sim.run([8] * 35)
    d = sim.run([60])  # one sample: 6x the two replicas' capacity
    assert d.panic and d.desired == 12
    held = sim.run([8] * (sim.ticks(60) - 1))
    assert held.panic and held.desired == 12  # no scale-down while panicking
    after = sim.run([8] * sim.ticks(60))
    assert not after.panic and after.desired == 2
    assert min(d.desired for d in sim.history) == 2


def test_idle_decays_to_zero_after_idle_seconds_not_before() -> None:
    sim = Sim(Bounds(idle_seconds=30), current=0)
    sim.run([3])  # the first held request (the gateway activates)
    assert sim.current == 1
    d = sim.run([0] * sim.ticks(30))
    assert d.desired == 1  # 30 s after the request
    d = sim.run([0])
    assert d.desired == 0 and d.reason == st.REASON_AUTOSCALE_IDLE
    d = sim.run([0] * 10)
    assert d.desired == 0  # and stays there


def test_never_zero_while_requests_are_in_flight_or_held() -> None:
    sim = Sim(Bounds(idle_seconds=0, target=100), current=1)
    d = sim.run([1] * 100, moved=False)  # one long request, counters still
    assert d.desired == 1


def test_a_counter_that_moved_keeps_the_function_warm() -> None:
    sim = Sim(Bounds(idle_seconds=20), current=1)
    for _ in range(30):  # short requests between samples: concurrency 0
        assert sim.run([0], moved=True).desired == 1


def test_a_just_activated_function_is_not_sent_back_to_zero() -> None:
    """The gateway woke it before any counter showed the request."""
    sim = Sim(Bounds(idle_seconds=30), current=0)
    sim.run([0] * 40)
    assert sim.current == 0
    sim.current, sim.ready = 1, 0  # the activator's write, pod not ready yet
    woken = sim.now + TICK  # the next tick sees it
    while sim.now + TICK - woken <= 30:
        d = sim.run([0], moved=False)
        assert d.desired == 1, sim.now - woken
    d = sim.run([0], moved=False)
    assert d.desired == 0 and d.reason == st.REASON_AUTOSCALE_IDLE


def test_a_moved_counter_does_not_wake_a_function_at_zero() -> None:
    """After an operator restart every counter looks new; waking is the
    gateway's job."""
    sim = Sim(Bounds(idle_seconds=30), current=0)
    assert sim.run([0], moved=True).desired == 0


def test_a_function_first_seen_running_gets_idle_seconds_of_grace() -> None:
    sim = Sim(Bounds(idle_seconds=10), current=3)
    assert sim.run([0] * 5, moved=False).desired == 3  # nothing known: no scale-down
    assert sim.run([0], moved=False).desired == 0


def test_a_function_first_seen_under_load_is_not_scaled_down_on_a_short_window() -> None:
    sim = Sim(Bounds(target=5, idle_seconds=600), current=6)
    sim.run([10] * (sim.ticks(60) - 1))
    assert sim.current == 6
    sim.run([10] * 2)
    assert sim.current == 2


def test_steady_noisy_load_does_not_oscillate() -> None:
    sim = Sim(Bounds(max=50, target=5, idle_seconds=600), current=4)
    # 20 +- 1 around an exact multiple of the target, for ten minutes.
    loads = [20 + (1 if i % 3 == 0 else -1 if i % 3 == 1 else 0.5) for i in range(300)]
    sim.run(loads)
    settled = [d.desired for d in sim.history[30:]]
    assert len(set(settled)) == 1, set(settled)
    assert sim.direction_changes() <= 1


@pytest.mark.parametrize("level", [3, 7, 12.5, 24, 49])
def test_steady_load_settles_on_ceil_of_load_over_target(level: float) -> None:
    sim = Sim(Bounds(max=50, target=5, idle_seconds=600), current=1)
    sim.run([level] * 120)
    assert sim.current == max(1, -(-int(level * 2) // 10))
    assert sim.direction_changes() == 0


def test_max_clamps() -> None:
    sim = Sim(Bounds(max=3, target=5), current=1)
    d = sim.run([100])
    assert d.desired == 3 and d.reason == st.REASON_AUTOSCALE_MAX


def test_min_clamps_and_min_above_zero_is_never_undercut() -> None:
    sim = Sim(Bounds(min=2, max=10, target=5, idle_seconds=0), current=2)
    d = sim.run([0] * 100, moved=False)
    assert d.desired == 2 and d.reason == st.REASON_AUTOSCALE_MIN
    sim.run([40] * 10)
    assert sim.current == 8
    sim.run([0] * 200, moved=False)
    assert min(d.desired for d in sim.history) == 2


def test_missing_stats_never_scale_down() -> None:
    sim = Sim(Bounds(idle_seconds=0), current=4)
    d = sim.run([0] * 50, moved=False, complete=False)
    assert d.desired == 4 and d.reason == st.REASON_AUTOSCALE_MISSING_STATS
    d = sim.run([200], complete=False)  # scaling up on partial data is fine
    assert d.desired == 10


def test_panic_threshold_counts_ready_replicas_not_desired() -> None:
    """Replicas asked for but not ready add no capacity."""
    sim = Sim(Bounds(max=20, target=5), current=4, ready=1)
    d = sim.run([12] * 3, follow=False)  # 12 > 2 x (1 ready x 5)
    assert d.panic and d.desired == 4  # never below current while panicking
    d = sim.run([30], follow=False)
    assert d.panic and d.desired == 6


def test_direction_changes_count_turns_not_steps() -> None:
    assert direction_changes([0, 1, 4, 10, 10]) == 0
    assert direction_changes([4, 5, 4, 5]) == 2
    assert direction_changes([10, 5, 5, 1, 0]) == 0
