"""The benchmark pauses Python's cyclic garbage collector while it computes, and afterwards leaves
what it made as long-lived objects, so the collector does not traverse them all at once when it
is turned back on (method.benchmark._without_cycle_collection)."""

from __future__ import annotations

import gc
import weakref

from method import benchmark


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def test_objects_made_while_paused_are_not_left_in_the_youngest_generation() -> None:
    assert gc.isenabled()
    with benchmark._without_cycle_collection():
        assert not gc.isenabled()
        made = [{"n": i} for i in range(50_000)]
    assert gc.isenabled()
    # without the move, the young generation would count the 50,000 dicts and the next
    # allocation would trigger a traversal of all of them
    assert gc.get_count()[0] < 1_000
    assert len(made) == 50_000


def test_a_cycle_made_while_paused_is_still_collected() -> None:
    with benchmark._without_cycle_collection():
        a, b = _Node(), _Node()
        a.other, b.other = b, a
        watch = weakref.ref(a)
        del a, b
    assert watch() is not None  # a cycle: reference counting alone does not free it
    gc.collect()
    assert watch() is None


def test_a_collector_turned_off_by_the_caller_stays_off() -> None:
    gc.disable()
    try:
        with benchmark._without_cycle_collection():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
