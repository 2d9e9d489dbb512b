"""Host batches -> global jax.Arrays sharded over the mesh, prefetched.

Each process hands over its local part of the global batch;
`jax.make_array_from_process_local_data` assembles the global array without
any process seeing the others' data. A background thread keeps `size`
batches already on the devices, so a step never waits for the transfer.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

import jax
import numpy as np
from jax.sharding import NamedSharding

_END = object()


def to_global(batch: dict[str, np.ndarray], sharding: NamedSharding
              ) -> dict[str, jax.Array]:
    return {k: jax.make_array_from_process_local_data(sharding, v)
            for k, v in batch.items()}


class DevicePrefetcher:
    """Iterates global, sharded batches while the next ones are transferred.

    Errors of the host iterator are re-raised in the consumer, in order.
    `host_state` is the host iterator's `state()` as of the last batch handed
    out (not as of the batches still queued), which is what a checkpoint
    must record to resume the stream exactly.
    """

    def __init__(self, host: Iterator[dict[str, np.ndarray]],
                 sharding: NamedSharding, size: int = 2):
        self.host = host
        self.host_state: dict | None = None
        self._sharding = sharding
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, size))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._fill, daemon=True)
        self._thread.start()

    def _fill(self) -> None:
        try:
            state_fn = getattr(self.host, "state", None)
            for batch in self.host:
                item = (to_global(batch, self._sharding), state_fn() if state_fn else None)
                while not self._stop.is_set():
                    try:
                        self._queue.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if self._stop.is_set():
                    return
            self._queue.put(_END)
        except BaseException as e:  # handed to the consumer
            self._queue.put(e)

    def __iter__(self) -> DevicePrefetcher:
        return self

    def __next__(self) -> dict[str, jax.Array]:
        item = self._queue.get()
        if item is _END:
            self._queue.put(_END)
            raise StopIteration
        if isinstance(item, BaseException):
            self._queue.put(item)
            raise item
        batch, self.host_state = item
        return batch

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def __enter__(self) -> DevicePrefetcher:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
