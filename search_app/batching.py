"""Concurrent queries that arrive together are encoded as one batch.

No timer: while the model runs one batch, new queries queue up, and the next
forward pass takes all of them (up to `max_batch`). A lone query therefore
waits for nothing, and under load the model runs at batch efficiency.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import numpy as np
from starlette.concurrency import run_in_threadpool

from imgsearch.models import AnyEncoder


class QueryBatcher:
    def __init__(self, encoder: AnyEncoder, max_batch: int = 16,
                 observe: Callable[[int], None] | None = None) -> None:
        self.encoder = encoder
        self.max_batch = max_batch
        self.observe = observe  # called with each forward pass' batch size
        self._queue: asyncio.Queue[tuple[np.ndarray, asyncio.Future[np.ndarray]]] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self.batches = 0  # forward passes run, for tests and metrics
        self.largest = 0

    def start(self) -> None:
        self._worker = asyncio.get_running_loop().create_task(self._run(), name="query-batcher")

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass

    async def embed(self, pixels: np.ndarray) -> np.ndarray:
        """One (224, 224, 3) image -> its 2048-d unit vector."""
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        await self._queue.put((pixels, future))
        return await future

    async def embed_each(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Several images of one request: queued together, so that they share a forward
        pass (up to `max_batch`), answered in their order."""
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[np.ndarray]] = [loop.create_future() for _ in images]
        for pixels, future in zip(images, futures, strict=True):
            self._queue.put_nowait((pixels, future))
        return list(await asyncio.gather(*futures))

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            live = [(pixels, future) for pixels, future in batch if not future.cancelled()]
            if not live:
                continue
            try:
                stacked = np.stack([pixels for pixels, _ in live])
                vectors = await run_in_threadpool(self.encoder.embed, stacked, urgent=True)
            except Exception as error:  # noqa: BLE001 - hand the failure to every waiter
                for _, future in live:
                    if not future.done():
                        future.set_exception(error)
                continue
            self.batches += 1
            self.largest = max(self.largest, len(live))
            if self.observe is not None:
                self.observe(len(live))
            for (_, future), vector in zip(live, vectors, strict=True):
                if not future.done():
                    future.set_result(vector)
