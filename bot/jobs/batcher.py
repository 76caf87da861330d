"""Micro-batching: jobs that can share a forward pass wait a few milliseconds for each other.

A worker that takes several queued jobs at once (``python -m bot worker`` claims up to ``BATCH_MAX``)
would otherwise run them one forward pass each. Jobs with the same key (method, preset, size ...; see
:meth:`bot.jobs.render.Renderer.batch_key`) join one group; the group closes when it is full or when
``BATCH_WAIT_MS`` have passed *and* a render slot is free, so while the slots are busy a group keeps
growing instead of queueing behind them one by one (the usual dynamic batching of inference servers).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger(__name__)


@dataclass
class _Group(Generic[T, R]):
    items: list[tuple[T, asyncio.Future[R]]] = field(default_factory=list)
    full: asyncio.Event = field(default_factory=asyncio.Event)


class MicroBatcher(Generic[T, R]):
    def __init__(self, run: Callable[[list[T]], Awaitable[list[R]]], slots: asyncio.Semaphore, size: int,
                 wait: float) -> None:
        """``run`` gets a group's items and returns one result per item, in order; it is called holding one
        of ``slots`` (shared with the jobs that run alone)."""
        self.run, self.slots, self.size, self.wait = run, slots, max(1, size), wait
        self._open: dict[Hashable, _Group[T, R]] = {}
        self._tasks: set[asyncio.Task] = set()

    async def submit(self, key: Hashable, item: T) -> R:
        """The item's result, once its group has run (exceptions of ``run`` reach every member)."""
        group = self._open.get(key)
        if group is None:
            group = self._open[key] = _Group()
            task = asyncio.create_task(self._drive(key, group), name=f"batch-{key!r}"[:60])
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        group.items.append((item, future))
        if len(group.items) >= self.size:
            self._close(key, group)
        return await future

    def _close(self, key: Hashable, group: _Group[T, R]) -> None:
        if self._open.get(key) is group:
            del self._open[key]
        group.full.set()

    async def _drive(self, key: Hashable, group: _Group[T, R]) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(group.full.wait(), self.wait)
        async with self.slots:
            self._close(key, group)  # late arrivals start the next group
            members = [(item, f) for item, f in group.items if not f.done()]  # a cancelled submitter left
            if not members:
                return
            try:
                results = await self.run([item for item, _ in members])
            except Exception as exc:
                for _, future in members:
                    if not future.done():
                        future.set_exception(exc)
                return
        if len(members) > 1:
            log.info("batch of %d shared a forward pass", len(members))
        for (_, future), result in zip(members, results, strict=True):
            if not future.done():
                future.set_result(result)
