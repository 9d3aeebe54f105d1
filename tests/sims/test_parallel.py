"""The worker pool: the calls' results as if made here, the workers' environment, and no worker
left behind when the pool is left early or its parent is killed."""

from __future__ import annotations

import math
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from generator.sims import parallel


@pytest.mark.parametrize("workers", [1, 2])
def test_a_pool_returns_what_the_calls_return_here(workers):
    with parallel.pool(workers) as pool:
        jobs = [pool.submit(math.comb, 10, k) for k in range(11)]
        assert [job.result() for job in jobs] == [math.comb(10, k) for k in range(11)]
        with pytest.raises(ValueError):
            pool.submit(int, "not a number").result()


def test_workers_read_one_blas_thread_and_the_environment_is_put_back():
    before = {var: os.environ.get(var) for var in parallel.WORKER_ENVIRONMENT}
    with parallel.pool(2) as pool:
        assert pool.submit(os.getenv, "OPENBLAS_NUM_THREADS").result() == "1"
    assert {var: os.environ.get(var) for var in parallel.WORKER_ENVIRONMENT} == before
    assert not multiprocessing.active_children()


def test_leaving_the_pool_early_ends_its_workers_at_once():
    class Interrupted(Exception):
        pass

    start = time.monotonic()
    with pytest.raises(Interrupted):
        with parallel.pool(2) as pool:
            jobs = [pool.submit(time.sleep, 60) for _ in range(3)]  # two run, one waits
            raise Interrupted
    assert time.monotonic() - start < 20
    assert not multiprocessing.active_children()
    assert all(job.done() for job in jobs)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")
def test_workers_end_with_their_parent_even_one_killed_outright(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(
        "import os, sys, time\n"
        f"sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})\n"
        "from generator.sims import parallel\n"
        "if __name__ == '__main__':\n"
        "    with parallel.pool(2) as pool:\n"
        "        jobs = [pool.submit(time.sleep, 0.5) for _ in range(2)]\n"
        "        print(*{pool.submit(os.getpid).result() for _ in range(4)}, flush=True)\n"
        "        pool.submit(time.sleep, 60)\n"
        "        pool.submit(time.sleep, 60)\n"
        "        time.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    workers = [int(pid) for pid in parent.stdout.readline().split()]
    assert workers and parent.pid not in workers
    time.sleep(0.5)  # both workers in their minute-long calls
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(pid) for pid in workers)


def alive(pid: int) -> bool:
    """Whether a process runs (a zombie waiting for its new parent to reap it does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
