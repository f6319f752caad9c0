"""Shopper threads placing a list of planned orders, a fixed number at a time."""

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
        self, specs: Sequence[OrderSpec], concurrency: int, make_shopper: Callable[[], Shopper]
    ) -> None:
        self.planned = len(specs)
        self.todo: queue.SimpleQueue[OrderSpec] = queue.SimpleQueue()
        for spec in specs:
            self.todo.put(spec)
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

    def _work(self) -> None:
        shopper = None
        try:
            shopper = self._make_shopper()
            while self.error is None:
                try:
                    spec = self.todo.get_nowait()
                except queue.Empty:
                    return
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
