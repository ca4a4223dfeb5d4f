"""The encoder's pass lock: searches before waiting index batches, without starving them."""

from __future__ import annotations

import threading
import time

from imgsearch.encoder import PassLock


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
        return lock.urgent_waiting + lock._normal_waiting

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
