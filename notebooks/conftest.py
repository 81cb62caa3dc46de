"""Notebooks under nbval on several pytest-xdist workers: one share of the cores per kernel.

``python -m pytest -n 2 --dist loadfile --nbval-lax notebooks/`` executes two
notebooks at once, each whole notebook in one worker's kernel (``loadfile``
keeps a notebook's cells together and in order). A kernel inherits its
worker's environment, so the thread count set here is the one torch starts
with in the kernel. Without it each of two kernels starts one OpenMP thread
per core and the oversubscribed threads spin against each other: on 2 cores
the two-worker run had not finished after 11 minutes, longer than the serial
run's 703 s; with one thread per kernel it took 496 s (notebooks/README.md).
"""
from __future__ import annotations

import os

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def kernel_threads(cores: int | None, workers: int) -> int:
    """Threads per kernel when ``workers`` notebooks share ``cores`` cores (at least one)."""
    return max(1, (cores or 1) // max(1, workers))


def pytest_configure(config):
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if not workers:
        return   # a serial run: the kernel takes torch's default, one thread per core
    threads = str(kernel_threads(os.cpu_count(), int(workers)))
    for variable in THREAD_VARIABLES:
        os.environ.setdefault(variable, threads)   # an explicit setting wins
