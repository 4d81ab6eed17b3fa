"""Where runs execute: in this process, in local worker processes, or on a Ray cluster.

Every executor calls the same pure function ``fn(payload) -> result`` and hands each result
back to ``on_result`` in the main process as soon as it is done (which writes it to disk),
so a crash or Ctrl-C loses only the runs still in flight. A run that raises is reported to
``on_error`` and the others go on.

Results do not depend on the executor: each run seeds everything from its own seed and uses
a fixed number of torch threads (``threads_per_run``), whatever the process it lands in.
"""

from __future__ import annotations

import multiprocessing
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

EXECUTORS = ("sequential", "local", "ray")
# imported once by the fork server, so each worker starts warm
PRELOAD = ("benchmarks.harness", "benchmarks.algorithms.bc", "benchmarks.algorithms.iql_cql")

Payload = dict[str, Any]
OnResult = Callable[[Payload, dict[str, Any]], None]
OnError = Callable[[Payload, str], None]


def run_sequential(
    fn: Callable[[Payload], dict[str, Any]], payloads: Sequence[Payload],
    on_result: OnResult, on_error: OnError,
) -> None:
    for p in payloads:
        try:
            result = fn(p)
        except KeyboardInterrupt:
            raise
        except Exception:
            on_error(p, traceback.format_exc())
            continue
        on_result(p, result)


def run_processes(
    fn: Callable[[Payload], dict[str, Any]], payloads: Sequence[Payload],
    on_result: OnResult, on_error: OnError, *, workers: int,
) -> None:
    """``workers`` local processes from a fork server that has imported the harness once
    (not a plain fork of this process: torch's thread pools do not survive fork)."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(list(PRELOAD))
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
    try:
        futures = {pool.submit(fn, p): p for p in payloads}
        for fut in as_completed(futures):
            p = futures[fut]
            exc = fut.exception()
            if exc is not None:
                tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
                on_error(p, tb)
            else:
                on_result(p, fut.result())
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def run_ray(
    fn: Callable[[Payload], dict[str, Any]], payloads: Sequence[Payload],
    on_result: OnResult, on_error: OnError, *, workers: int, address: str | None = None,
) -> None:
    """One Ray task per run (1 CPU each). Joins a running Ray (``ray.init`` already called,
    or ``address``); otherwise starts a local one with ``workers`` CPUs."""
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - ray is an optional extra
        raise ImportError(
            "--executor ray needs Ray: pip install 'diffusion-agents[ray]'"
        ) from exc
    started = False
    if not ray.is_initialized():
        if address:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        started = True
    try:
        remote = ray.remote(num_cpus=1, max_retries=0)(fn)
        refs = {remote.remote(p): p for p in payloads}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                p = refs[ref]
                try:
                    result = ray.get(ref)
                except Exception:
                    on_error(p, traceback.format_exc())
                    continue
                on_result(p, result)
    except BaseException:
        for ref in refs:
            ray.cancel(ref, force=True)
        raise
    finally:
        if started:
            ray.shutdown()


def execute(
    executor: str,
    fn: Callable[[Payload], dict[str, Any]],
    payloads: Sequence[Payload],
    on_result: OnResult,
    on_error: OnError,
    *,
    workers: int = 1,
    ray_address: str | None = None,
) -> None:
    """Run every payload with the named executor (see :data:`EXECUTORS`)."""
    if executor not in EXECUTORS:
        raise ValueError(f"Unknown executor {executor!r}; choose one of {EXECUTORS}.")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}.")
    if not payloads:
        return
    if executor == "sequential" or (executor == "local" and workers == 1):
        run_sequential(fn, payloads, on_result, on_error)
    elif executor == "local":
        run_processes(fn, payloads, on_result, on_error, workers=workers)
    else:
        run_ray(fn, payloads, on_result, on_error, workers=workers, address=ray_address)
