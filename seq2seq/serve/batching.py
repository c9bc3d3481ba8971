"""Dynamic batching: requests for one model that arrive close together are decoded
as one batch by a worker thread that owns the model.

A request becomes a :class:`Job` (its inputs and a key, e.g. the decoding options).
The worker takes the oldest job and every queued job with the same key, up to
``max_batch_size`` inputs; jobs with another key keep their place in the queue for a
later batch.  Under load, jobs queue while a batch decodes, so the next batch fills
by itself; when the last batch held several jobs (clients are concurrent), the
worker also waits up to ``max_wait_s`` for more before it starts, and when it held
one (a lone client), it starts at once, so a lone client pays no waiting time.  The batch is run once and each
job gets its own slice of the results.  This is safe only because decoding is
batch-invariant (a sentence gets the same output whatever it is batched with);
a job marked ``mergeable=False`` (sampling, whose draws depend on the batch) is
always run alone.  Clipper (Crankshaw et al. 2017) and TensorFlow Serving call
this adaptive or dynamic batching.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Optional, Sequence

from seq2seq.errors import Seq2SeqError


class QueueFull(Exception):
    """The batcher holds ``max_queue`` inputs already; the caller should retry later."""


@dataclass(eq=False)
class Job:
    """One request's work.

    Attributes:
        key: what a batch must share (hashable), e.g. the decoding options.
        items: the inputs, in order.
        mergeable: whether the job may share a batch with other jobs of the same key.
        future: resolved with ``len(items)`` results, in order, or an exception.
    """

    key: Hashable
    items: Sequence[Any]
    mergeable: bool = True
    future: Future = field(default_factory=Future)


RunBatch = Callable[[Hashable, list], list]


class DynamicBatcher:
    """A queue of :class:`Job` and the thread that runs them in batches.

    Args:
        run_batch: ``run_batch(key, items) -> results``, one result per item, in
            order; called on the worker thread only.  A :class:`Seq2SeqError` it
            raises for a batch of several jobs is retried job by job, so one bad
            request cannot fail its neighbours.
        max_batch_size: the most inputs per batch (a larger job runs alone).
        max_wait_s: how long the first job of a batch waits for company, seconds (only
            while clients are concurrent: the last batch merged several jobs).
        max_queue: the most inputs waiting; :meth:`submit` refuses more.
        on_batch: called with each batch's size (inputs), for metrics.
        name: the worker thread's name.
    """

    def __init__(self, run_batch: RunBatch, max_batch_size: int = 64, max_wait_s: float = 0.005,
                 max_queue: int = 1024, on_batch: Optional[Callable[[int], None]] = None, name: str = "batcher"):
        self.run_batch, self.max_batch_size, self.max_wait_s = run_batch, max_batch_size, max_wait_s
        self.max_queue, self.on_batch = max_queue, on_batch
        self._jobs: deque[Job] = deque()
        self._waiting = 0                       # inputs in _jobs
        self._cond = threading.Condition()
        self._stopping = False
        self._concurrent = False                # the last batch merged several jobs
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        """Whether the worker runs and takes new jobs."""
        return self._thread.is_alive() and not self._stopping

    @property
    def depth(self) -> int:
        """Inputs waiting to be decoded."""
        return self._waiting

    def submit(self, job: Job) -> Future:
        """Queue ``job``; returns its future.

        Raises:
            QueueFull: accepting the job would exceed ``max_queue`` waiting inputs.
            Seq2SeqError: the batcher is shutting down.
        """
        with self._cond:
            if self._stopping:
                raise Seq2SeqError("the server is shutting down")
            if self._waiting + len(job.items) > self.max_queue:
                raise QueueFull(f"{self._waiting} inputs already wait (--max-queue {self.max_queue})")
            self._jobs.append(job)
            self._waiting += len(job.items)
            self._cond.notify()
        return job.future

    def close(self, timeout: float = 30.0) -> None:
        """Finish the jobs already queued, then stop the worker."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join(timeout)

    # ------------------------------------------------------------------ worker
    def _take_batch(self) -> Optional[list[Job]]:
        """The next batch (jobs sharing the first job's key), or None when stopped."""
        with self._cond:
            while not self._jobs:
                if self._stopping:
                    return None
                self._cond.wait()
            first = self._jobs.popleft()
            batch, size = [first], len(first.items)
            deadline = time.monotonic() + (self.max_wait_s if self._concurrent else 0.0)
            while first.mergeable and size < self.max_batch_size:
                for job in list(self._jobs):
                    if job.mergeable and job.key == first.key and size + len(job.items) <= self.max_batch_size:
                        self._jobs.remove(job)
                        batch.append(job)
                        size += len(job.items)
                left = deadline - time.monotonic()
                if size >= self.max_batch_size or left <= 0 or self._stopping:
                    break
                self._cond.wait(left)
            self._waiting -= size
            self._concurrent = len(batch) > 1
            return batch

    def _work(self) -> None:
        while (batch := self._take_batch()) is not None:
            live = [j for j in batch if j.future.set_running_or_notify_cancel()]   # skip timed-out jobs
            if live:
                self._run(live)

    def _run(self, jobs: list[Job]) -> None:
        items = [x for j in jobs for x in j.items]
        if self.on_batch:
            self.on_batch(len(items))
        try:
            results = self.run_batch(jobs[0].key, items)
        except Seq2SeqError as e:
            if len(jobs) > 1:                          # find whose input it was
                for j in jobs:
                    self._run_alone(j)
                return
            jobs[0].future.set_exception(e)
            return
        except BaseException as e:                     # noqa: BLE001 (delivered to the request)
            for j in jobs:
                j.future.set_exception(e)
            return
        start = 0
        for j in jobs:
            j.future.set_result(results[start:start + len(j.items)])
            start += len(j.items)

    def _run_alone(self, job: Job) -> None:
        try:
            job.future.set_result(self.run_batch(job.key, list(job.items)))
        except BaseException as e:                     # noqa: BLE001
            job.future.set_exception(e)
