"""Shopper threads placing a list of planned orders, a fixed number at a time.

Closed loop by default: each shopper places its next order as soon as the last
one is in. With ``rate``, open loop: order ``n`` is placed no earlier than
``n / rate`` seconds after the start, whatever the others are doing, so
latency is measured at an offered load rather than as queueing behind
shoppers who wait for each other; ``concurrency`` then bounds the checkouts in
flight, and :attr:`Placement.late` tells how far behind schedule the run fell.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence

from demo_shop.orders.simulation.shoppers import OrderSpec, Shopper


class Placement:
    """``concurrency`` threads, each with its own shopper, taking orders from one queue.

    The first failure stops every thread after the order it is placing; it
    is kept in :attr:`error`. :attr:`ids` are the placed orders' ids.
    """

    def __init__(
        self,
        specs: Sequence[OrderSpec],
        concurrency: int,
        make_shopper: Callable[[], Shopper],
        rate: float | None = None,
    ) -> None:
        self.planned = len(specs)
        self.rate = rate
        self.todo: queue.SimpleQueue[tuple[int, OrderSpec]] = queue.SimpleQueue()
        for number, spec in enumerate(specs):
            self.todo.put((number, spec))
        #: Open loop: the most seconds an order started after its scheduled time.
        self.late = 0.0
        self.ids: list[int] = []
        self.error: BaseException | None = None
        self.started = self.finished = 0.0
        self._lock = threading.Lock()
        self._make_shopper = make_shopper
        self._threads = [
            threading.Thread(target=self._work, name=f"shopper-{n}", daemon=True)
            for n in range(min(concurrency, self.planned))
        ]

    def start(self) -> Placement:
        self.started = time.monotonic()
        for thread in self._threads:
            thread.start()
        return self

    @property
    def placed(self) -> int:
        return len(self.ids)

    @property
    def running(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def join(self) -> None:
        for thread in self._threads:
            thread.join()

    def _wait_for_turn(self, number: int) -> None:
        """Open loop: sleep until order ``number``'s scheduled time, or note the lateness."""
        if self.rate is None:
            return
        behind = time.monotonic() - (self.started + number / self.rate)
        if behind < 0:
            time.sleep(-behind)
        else:
            with self._lock:
                self.late = max(self.late, behind)

    def _work(self) -> None:
        shopper = None
        try:
            shopper = self._make_shopper()
            while self.error is None:
                try:
                    number, spec = self.todo.get_nowait()
                except queue.Empty:
                    return
                self._wait_for_turn(number)
                order_id = shopper.place(spec)
                with self._lock:
                    self.ids.append(order_id)
                    self.finished = time.monotonic()
        except Exception as exc:  # noqa: BLE001 - reported by the run, which stops
            with self._lock:
                self.error = self.error or exc
        finally:
            if shopper is not None:
                shopper.close()
