"""Requests in flight across every job: ``llm.max_in_flight`` lock-file slots.

The Snakemake resource ``llm`` caps how many LLM *jobs* run at once, and ``llm.max_concurrency``
how many requests one job sends at once; neither bounds the total a shared endpoint sees when
many jobs each run a pool. :class:`SlotPool` does: ``<llm.cache_dir>/.slots/<i>.lock`` for
``i < max_in_flight``, and a request holds an exclusive ``fcntl.flock`` on one of them while it
is on the wire. The lock belongs to the open file, so a job that dies (even ``kill -9``) frees
its slots at once: nothing to clean up, no leaked slot. Only HTTP requests take a slot (the
OpenAI provider, around each attempt); cache hits and the offline provider never do.

Waiting is a poll over the slot files in an order that starts at a random one, with a short
sleep when all are held (a few ms: negligible next to a model's latency). On a shared cluster
filesystem flock works where the filesystem supports it (NFSv4, Lustre with ``flock``); where
it does not, point ``llm.cache_dir`` at a local directory or set ``max_in_flight`` to 0.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

#: sleep between polls while every slot is held (seconds, with jitter up to twice this)
POLL_S = 0.005
SLOT_DIR = ".slots"


class SlotPool:
    """At most ``size`` holders of a slot at once, across threads and processes that use the
    same ``directory``. ``size`` 0 (or less) means no bound: :meth:`slot` returns at once."""

    def __init__(self, directory: str | os.PathLike, size: int) -> None:
        self.directory = Path(directory)
        self.size = int(size)
        self._rng = random.Random()  # timing only
        self._rng_lock = threading.Lock()
        if self.size > 0:
            self.directory.mkdir(parents=True, exist_ok=True)

    @classmethod
    def for_cache(cls, cache_dir: str | os.PathLike, size: int) -> SlotPool:
        return cls(Path(cache_dir) / SLOT_DIR, size)

    def _try(self, index: int) -> int | None:
        fd = os.open(self.directory / f"{index}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return None
        return fd

    def acquire(self, timeout_s: float | None = None) -> int | None:
        """Hold a free slot: its file descriptor (None when the pool is unbounded). Raises
        TimeoutError after ``timeout_s`` (None = wait as long as it takes)."""
        if self.size <= 0:
            return None
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._rng_lock:
            start = self._rng.randrange(self.size)
        while True:
            for k in range(self.size):
                fd = self._try((start + k) % self.size)
                if fd is not None:
                    return fd
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"no free LLM slot of {self.size} under {self.directory} in {timeout_s} s")
            with self._rng_lock:
                pause = POLL_S * (1.0 + self._rng.random())
                start = self._rng.randrange(self.size)
            time.sleep(pause)

    @staticmethod
    def release(fd: int | None) -> None:
        if fd is None:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def slot(self, timeout_s: float | None = None) -> Iterator[None]:
        """``with pool.slot(): send_request()``: the slot is released however the block ends."""
        fd = self.acquire(timeout_s)
        try:
            yield
        finally:
            self.release(fd)

    def held(self) -> int:
        """How many slots are held right now, by anyone (for benchmarks and tests)."""
        if self.size <= 0:
            return 0
        busy = 0
        for i in range(self.size):
            fd = self._try(i)
            if fd is None:
                busy += 1
            else:
                self.release(fd)
        return busy
