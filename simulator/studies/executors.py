"""Where a study's points run: in this process, in a local process pool, or on Ray.

Every executor runs ``task(context, item)`` for each item and yields ``(index, result)`` as
results arrive (completion order). The ``context`` (the parsed base scenario, a few
kilobytes) goes to each worker once, when it starts; only the small items travel per task,
so a worker never re-reads YAML. Tasks are pure functions of (context, item), so every
executor gives the same results; only their order differs.

Ray is optional (``pip install 'xpusim[ray]'``): ``RayExecutor`` imports it when built.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any, Protocol

from simulator.errors import InputError

Task = Callable[[Any, Any], Any]


class Executor(Protocol):
    """Runs a task over items; ``close`` releases workers (also on an exception)."""

    name: str
    workers: int

    def imap(self, task: Task, context: Any, items: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        """Run ``task(context, item)`` for every item; yield ``(index, result)`` as results
        arrive (in completion order, which differs between executors)."""
        ...

    def close(self) -> None:
        """Release the workers; safe to call twice."""
        ...


class ReportingExecutor:
    """Another executor's work, reported as it finishes: ``progress(done, total)`` after each
    item, counted over every ``imap`` call (a training plan submits its layouts in several
    rounds, so the total grows as rounds are submitted). How ``plan`` and ``sensitivity``
    draw their bars without the studies knowing about terminals."""

    def __init__(self, inner: Executor, progress: Callable[[float, float], None]):
        self.inner, self.progress = inner, progress
        self.name, self.workers = inner.name, inner.workers
        self.done = self.total = 0

    def imap(self, task: Task, context: Any, items: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        """The inner executor's results, each reported once it arrives."""
        self.total += len(items)
        for index, result in self.inner.imap(task, context, items):
            self.done += 1
            self.progress(self.done, self.total)
            yield index, result

    def close(self) -> None:
        """Release the inner executor's workers."""
        self.inner.close()


class InProcessExecutor:
    """Runs the items one after another in this process (debugging, tiny studies)."""

    name = "in-process"
    workers = 1

    def imap(self, task: Task, context: Any, items: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        """Run the items in order, here; results come back in item order."""
        for index, item in enumerate(items):
            yield index, task(context, item)

    def close(self) -> None:
        """Nothing to release."""
        pass

    def __enter__(self) -> InProcessExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---- local process pool ------------------------------------------------------------------
_WORKER: dict[str, Any] = {}


def _init_worker(task: Task, context: Any, parent: int) -> None:
    """Runs once per worker process: tie its life to the parent's, leave Ctrl-C to the
    parent, and keep the task and its context for every item."""
    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops the pool, quietly
    _WORKER["task"], _WORKER["context"] = task, context


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with_parent(parent: int) -> None:
    """A worker must not outlive a parent killed by ``kill -9`` or SIGTERM (it would run on,
    holding the table's lock): on Linux the kernel sends it SIGTERM when the parent dies."""
    if sys.platform == "linux":
        with contextlib.suppress(OSError, AttributeError):  # no libc prctl: no guard
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _run_item(index: int, item: Any) -> tuple[int, Any]:
    return index, _WORKER["task"](_WORKER["context"], item)


def _mp_context() -> multiprocessing.context.BaseContext:
    # fork starts a worker in milliseconds (the parent's imports come along); elsewhere (macOS,
    # Windows) spawn is the safe default and each worker imports xpusim once.
    if sys.platform == "linux":
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


class PoolExecutor:
    """A local process pool of ``jobs`` workers (default: every core).

    At most ``2 x jobs`` items are in flight, so results stream back as they finish and an
    interrupted study leaves little work behind.
    """

    name = "process-pool"

    def __init__(self, jobs: int | None = None):
        self.workers = jobs or os.cpu_count() or 1
        self._pool: ProcessPoolExecutor | None = None

    def imap(self, task: Task, context: Any, items: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        """Start a pool whose workers each receive ``task`` and ``context`` once, then stream the
        items through it, at most ``2 x workers`` in flight."""
        self.close()
        self._pool = ProcessPoolExecutor(self.workers, mp_context=_mp_context(),
                                         initializer=_init_worker,
                                         initargs=(task, context, os.getpid()))
        pending: set[Future] = set()
        queue = iter(enumerate(items))
        limit = 2 * self.workers
        for index, item in queue:
            pending.add(self._pool.submit(_run_item, index, item))
            if len(pending) >= limit:
                break
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield future.result()
                nxt = next(queue, None)
                if nxt is not None:
                    pending.add(self._pool.submit(_run_item, *nxt))

    def close(self) -> None:
        """Shut the pool down, cancelling items not yet started."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def terminate(self) -> None:
        """Stop the workers now, items in flight included (Ctrl-C, an error): their rows are
        not written, so a resumed study runs them again."""
        if self._pool is not None:
            # the pool has no public way to stop running items; its processes are known
            for process in list((self._pool._processes or {}).values()):
                process.terminate()
        self.close()

    def __enter__(self) -> PoolExecutor:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is not None:
            self.terminate()
        self.close()


# ---- Ray ---------------------------------------------------------------------------------
class _RayWorkerBody:
    """The body of a Ray actor: holds the task and context, runs items."""

    def __init__(self, task: Task, context: Any):
        self.task, self.context = task, context

    def run(self, index: int, item: Any) -> tuple[int, Any]:
        """Run the task on one item; the index comes back with the result, for ordering."""
        return index, self.task(self.context, item)


class RayExecutor:
    """Ray actors, one per worker, each given the context once.

    ``address`` joins an existing cluster (``ray://HOST:10001`` or ``auto``); without it a
    local Ray is started for the study and stopped afterwards. The cluster's workers need
    xpusim installed (``pip install 'xpusim[ray]'``). ``jobs`` defaults to the cluster's CPUs.
    """

    name = "ray"

    def __init__(self, jobs: int | None = None, address: str | None = None):
        try:
            import ray
        except ImportError:
            raise InputError("--backend ray needs Ray: pip install 'xpusim[ray]' (or "
                             "pip install 'ray>=2.9')") from None
        self._ray = ray
        self._started = False
        if not ray.is_initialized():
            import logging

            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                      "logging_level": logging.ERROR}
            if address:
                ray.init(address=address, **kwargs)
            else:
                ray.init(num_cpus=jobs or os.cpu_count() or 1, **kwargs)
            self._started = True
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.workers = jobs or max(1, cpus)
        self._actor_class = ray.remote(num_cpus=1)(_RayWorkerBody)
        self._actors: list[Any] = []

    def imap(self, task: Task, context: Any, items: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        """Start one actor per worker holding ``task`` and ``context`` (put in the object store
        once), then keep each actor two items busy until all are done."""
        ray = self._ray
        self._kill_actors()
        # One copy in the object store; each actor is handed the references (Ray resolves
        # them), so the context is serialized once, not once per actor or per item.
        task_ref, context_ref = ray.put(task), ray.put(context)
        self._actors = [self._actor_class.remote(task_ref, context_ref)
                        for _ in range(self.workers)]
        queue = iter(enumerate(items))
        pending: dict[Any, Any] = {}  # object ref -> actor
        idle = [actor for actor in self._actors for _ in range(2)]
        while True:
            while idle:
                nxt = next(queue, None)
                if nxt is None:
                    break
                actor = idle.pop()
                pending[actor.run.remote(*nxt)] = actor
            if not pending:
                return
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                idle.append(pending.pop(ref))
                yield ray.get(ref)

    def _kill_actors(self) -> None:
        for actor in self._actors:
            self._ray.kill(actor)
        self._actors = []

    def close(self) -> None:
        """Kill the actors and stop the local Ray this executor started (a joined cluster keeps
        running)."""
        self._kill_actors()
        if self._started:
            self._ray.shutdown()
            self._started = False

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def make_executor(backend: str = "local", jobs: int | None = None,
                  address: str | None = None) -> InProcessExecutor | PoolExecutor | RayExecutor:
    """``local`` with jobs == 1 runs in-process; ``local`` otherwise a process pool; ``ray``."""
    if jobs is not None and jobs < 1:
        raise InputError(f"--jobs must be at least 1, got {jobs}")
    if backend == "ray":
        return RayExecutor(jobs, address)
    if address:
        raise InputError("--address is for --backend ray")
    if backend in ("local", "process"):
        if jobs == 1:
            return InProcessExecutor()
        return PoolExecutor(jobs)
    if backend == "inprocess":
        return InProcessExecutor()
    raise InputError(f"unknown backend {backend!r}; use local, inprocess or ray")
