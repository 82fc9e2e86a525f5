"""Evaluating drafts in a separate process, so checking them costs the web worker nothing.

durable_rules never gives back the memory of a registered ruleset (about 0.5 MiB each),
and every distinct draft an admin checks or simulates is a new ruleset. Published
versions are few and live in the worker's own runtime; drafts run here instead, in one
child process that is replaced after a few dozen drafts, which returns their memory.
Only the engine step crosses the process boundary: validation, messages in the admin's
language and the comparison of results stay in the worker.
"""

from __future__ import annotations

import atexit
import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from .engine import RuleEngineError, Runtime
from .model import RuleFile

RECYCLE_AFTER = 40  # drafts registered in one child before it is replaced (~20 MiB)
TIMEOUT_SECONDS = 60  # below a web worker's own timeout

_child_runtime: Runtime | None = None
_pool: ProcessPoolExecutor | None = None
_pool_lock = threading.Lock()


def _fire_in_child(rule_file: RuleFile, inputs: list[dict[str, Any]]) -> tuple[Any, bool]:
    """Runs in the child: register (and with inputs, evaluate); and whether the child has
    done enough."""
    global _child_runtime
    if _child_runtime is None:
        _child_runtime = Runtime()
    fired = _child_runtime.fire(rule_file, inputs) if inputs else _child_runtime.register(rule_file)
    return fired, _child_runtime.registered_count >= RECYCLE_AFTER


def _executor() -> ProcessPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            # "spawn": a fresh interpreter, never a fork of a threaded web worker.
            _pool = ProcessPoolExecutor(
                max_workers=1, mp_context=multiprocessing.get_context("spawn")
            )
        return _pool


def _retire(pool: ProcessPoolExecutor) -> None:
    global _pool
    with _pool_lock:
        if _pool is pool:
            _pool = None
    pool.shutdown(wait=False)


@atexit.register
def _shutdown() -> None:
    if _pool is not None:
        _pool.shutdown(wait=False, cancel_futures=True)


class ScratchRuntime(Runtime):
    """A Runtime whose engine step runs in the child process."""

    def register(self, rule_file: RuleFile) -> str:
        """Register in the child: the engine's refusal surfaces as RuleEngineError."""
        return self._call(rule_file, [])

    def fire(self, rule_file: RuleFile, inputs: list[dict[str, Any]]) -> list[list[int]]:
        """As Runtime.fire, in the child process."""
        if not inputs:
            return []
        return self._call(rule_file, inputs)

    def _call(self, rule_file: RuleFile, inputs: list[dict[str, Any]]) -> Any:
        pool = _executor()
        try:
            fired, tired = pool.submit(_fire_in_child, rule_file, inputs).result(TIMEOUT_SECONDS)
        except RuleEngineError:
            raise
        except Exception as error:  # the child died or timed out: start a new one next time
            _retire(pool)
            raise RuleEngineError(f"checking {rule_file.name} failed: {error}") from error
        if tired:
            _retire(pool)
        return fired
