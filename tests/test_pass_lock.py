"""The encoder's pass lock: searches before waiting index batches, without starving them."""

from __future__ import annotations

import threading
import time

from imgsearch.pass_lock import PassLock


def test_urgent_passes_go_first_but_a_waiting_normal_pass_gets_every_third_turn() -> None:
    lock = PassLock(urgent_run=2)
    order: list[str] = []
    release = threading.Event()

    def holder() -> None:
        with lock.hold(urgent=False):
            release.wait(10)

    def waiter(name: str, urgent: bool) -> None:
        with lock.hold(urgent):
            order.append(name)

    def waiting() -> int:
        return lock.urgent_waiting + lock.normal_waiting

    first = threading.Thread(target=holder)
    first.start()
    threads = []
    for number, (name, urgent) in enumerate(
        [("n1", False), ("n2", False), ("u1", True), ("u2", True), ("u3", True), ("u4", True)], start=1
    ):
        threads.append(threading.Thread(target=waiter, args=(name, urgent)))
        threads[-1].start()
        deadline = time.monotonic() + 10
        while waiting() < number:  # queued before the next one starts
            assert time.monotonic() < deadline
            time.sleep(0.001)
    release.set()
    for thread in [first, *threads]:
        thread.join(10)
    kinds = "".join(name[0] for name in order)
    assert kinds == "uunuun", order


def _queued(lock: PassLock, count: int) -> None:
    deadline = time.monotonic() + 10
    while lock.urgent_waiting + lock.normal_waiting < count:
        assert time.monotonic() < deadline
        time.sleep(0.001)


def test_an_older_chunk_in_its_turn_runs_its_passes_before_a_younger_chunk() -> None:
    # Without turns, the younger chunk's waiting pass would go between the older's two.
    lock = PassLock(patience=5.0)
    order: list[str] = []
    first_pass_held, younger_queued = threading.Event(), threading.Event()

    def older() -> None:
        with lock.turn(since=1.0):
            with lock.hold(urgent=False, since=1.0):
                first_pass_held.set()
                younger_queued.wait(10)
                order.append("older 1")
            time.sleep(0.1)  # between two batches: decoding the next one
            with lock.hold(urgent=False, since=1.0):
                order.append("older 2")

    def younger() -> None:
        with lock.turn(since=2.0), lock.hold(urgent=False, since=2.0):
            order.append("younger 1")

    threads = [threading.Thread(target=older), threading.Thread(target=younger)]
    threads[0].start()
    assert first_pass_held.wait(10)
    threads[1].start()
    _queued(lock, 1)
    younger_queued.set()
    for thread in threads:
        thread.join(10)
    assert order == ["older 1", "older 2", "younger 1"]


def test_a_younger_chunk_waits_for_an_older_one_only_as_long_as_its_patience() -> None:
    # The older chunk holds its turn but asks for no pass (stalled on a slow read).
    lock = PassLock(patience=0.05)
    ran = threading.Event()

    def younger() -> None:
        with lock.hold(urgent=False, since=2.0):
            ran.set()

    with lock.turn(since=1.0):
        thread = threading.Thread(target=younger)
        thread.start()
        assert ran.wait(10), "a stalled older chunk kept the model from a younger one"
    thread.join(10)


def test_a_search_goes_before_an_older_chunk_in_its_turn() -> None:
    lock = PassLock(patience=5.0)
    order: list[str] = []
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with lock.hold(urgent=False, since=1.0):
            held.set()
            release.wait(10)

    def waiter(name: str, urgent: bool, since: float) -> None:
        with lock.hold(urgent, since):
            order.append(name)

    with lock.turn(since=1.0):
        threads = [threading.Thread(target=holder)]
        threads[0].start()
        assert held.wait(10)
        for count, (name, urgent, since) in enumerate([("chunk", False, 1.0), ("search", True, 0.0)], start=1):
            threads.append(threading.Thread(target=waiter, args=(name, urgent, since)))
            threads[-1].start()
            _queued(lock, count)
        release.set()
        for thread in threads:
            thread.join(10)
    assert order == ["search", "chunk"]
