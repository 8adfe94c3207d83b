"""One writer thread for SQLite, committing in batches.

SQLite has a single writer. Rather than letting many threads queue on its lock (each switch
costs kernel time and the GIL), one thread takes every write that is waiting, runs each in its
own savepoint of one transaction, commits once, and then wakes the callers. A write that
fails rolls back its savepoint only: the others in the batch still commit. A batch of one
(an idle server) needs no savepoint: its failure rolls the transaction back.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Connection, Engine, RootTransaction

MAX_BATCH = 128


@dataclass(slots=True)
class _Job:
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    result: Any = None
    error: BaseException | None = field(default=None)


def _settle(jobs: list[_Job]) -> None:
    for job in jobs:
        if job.future.done():  # the caller went away
            continue
        if job.error is not None:
            job.future.set_exception(job.error)
        else:
            job.future.set_result(job.result)


class BatchWriter:
    def __init__(self, engine: Engine, lock: threading.Lock) -> None:
        self.engine = engine
        self.lock = lock
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        job = _Job(fn, args, loop, loop.create_future())
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="cupola-sqlite-writer", daemon=True
                    )
                    self._thread.start()
        self._queue.put(job)
        return job.future

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=30)
            self._thread = None

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < MAX_BATCH:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stop = True
                    break
                batch.append(job)
            self._commit(batch)
            by_loop: dict[asyncio.AbstractEventLoop, list[_Job]] = {}
            for job in batch:
                by_loop.setdefault(job.loop, []).append(job)
            for loop, jobs in by_loop.items():
                if not loop.is_closed():
                    loop.call_soon_threadsafe(_settle, jobs)
            if stop:
                return

    def _commit(self, batch: list[_Job]) -> None:
        try:
            with self.lock, self.engine.connect() as conn:
                conn = conn.execution_options(sqlite_begin="IMMEDIATE")
                with conn.begin() as transaction:
                    if len(batch) == 1:  # alone in the transaction: no savepoint needed
                        self._alone(transaction, conn, batch[0])
                        return
                    for job in batch:
                        savepoint = conn.begin_nested()
                        try:
                            job.result = job.fn(conn, *job.args)
                        except Exception as exc:  # handed back, raised in the caller's task
                            savepoint.rollback()
                            job.error = exc
                        else:
                            savepoint.commit()
        except Exception as exc:  # the commit itself failed: nobody's write is stored
            for job in batch:
                job.error = job.error or exc

    @staticmethod
    def _alone(transaction: RootTransaction, conn: Connection, job: _Job) -> None:
        """Run the only job of a batch; on failure roll the whole transaction back (what
        its savepoint would have undone: two statements fewer per write when idle)."""
        try:
            job.result = job.fn(conn, *job.args)
        except Exception as exc:  # handed back, raised in the caller's task
            transaction.rollback()
            job.error = exc
