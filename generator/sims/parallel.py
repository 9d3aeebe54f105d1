"""Running independent simulation runs side by side, each in a worker process of its own.

A run here is a call whose inputs are all in its arguments and whose random numbers come from
generators it seeds itself, so where and when it runs changes none of its numbers: a pool of
workers returns what the same calls made one after another in this process return. The workers
are spawned (a fresh interpreter: nothing inherited from the process that starts them, which may
be a MkDocs build or a test run) and live as long as the pool, so a chapter with several stages
starts them once. Leaving the pool early, on an error or an interrupt, cancels the calls not yet
started and ends the workers, and a worker ends with its parent even if that is killed outright,
so none is left behind. As with any spawned process, a script that starts a pool keeps its own
work under `if __name__ == "__main__":` (a worker imports the script it was started from).
"""

from __future__ import annotations

import os
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from contextlib import contextmanager
from typing import Iterator

# Read by a worker when it starts (BLAS when numpy loads, glibc's malloc at once), so they are in
# the environment the pool is started with.
WORKER_ENVIRONMENT = {
    # One BLAS thread a worker: the workers fill the cores, and a tiny model's matrices are
    # too small to share out anyway.
    "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
    # glibc's malloc keeps a step's freed temporaries for the next step instead of handing them
    # back to the system after each one and faulting fresh pages in again: with its defaults,
    # about a quarter of a fine-tuning run's time (other C libraries ignore these).
    "MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(256 << 20),
}


def default_workers() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@contextmanager
def worker_environment() -> Iterator[None]:
    """WORKER_ENVIRONMENT set in os.environ for the processes started inside, then put back."""
    saved = {var: os.environ.get(var) for var in WORKER_ENVIRONMENT}
    os.environ.update(WORKER_ENVIRONMENT)
    try:
        yield
    finally:
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value


class InProcess(Executor):
    """An executor that makes each call at once, in this process."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:  # raised again by future.result(), as a pool's worker would
            future.set_exception(exc)
        return future


@contextmanager
def pool(workers: int) -> Iterator[Executor]:
    """An executor with `workers` spawned worker processes, or InProcess for workers <= 1."""
    if workers <= 1:
        yield InProcess()
        return
    import multiprocessing

    with worker_environment():  # workers are spawned as calls are submitted: for the pool's life
        executor = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                       initializer=_tie_to_parent)
        try:
            yield executor
        except BaseException:
            # A running call cannot be stopped through the executor (before Python 3.14's
            # terminate_workers), so its processes are ended; the calls not started are cancelled.
            for process in list((getattr(executor, "_processes", None) or {}).values()):
                process.terminate()
            executor.shutdown(wait=True, cancel_futures=True)
            raise
        executor.shutdown(wait=True)


def _tie_to_parent() -> None:
    """A worker's start: an interrupt is its parent's to handle (it ends the pool), and the worker
    ends the moment its parent does, even one killed with no chance to end it, whatever the
    worker is running (else it would finish its call and then wait forever to hand it back)."""
    import multiprocessing
    import signal
    import threading
    from multiprocessing.connection import wait

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=lambda: (wait([parent.sentinel]), os._exit(1)), daemon=True).start()
