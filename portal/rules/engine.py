"""Evaluating rule files with durable_rules, safely inside a threaded, multi-worker server.

What this wrapper does about durable_rules' traps (see docs/rules.md):
- its Host starts two timer threads per ruleset and cannot be stopped: our Host never
  starts them (``_run`` is a no-op) and is created lazily in each process, after a fork;
- state is kept per ``sid``, at most 1024 per ruleset: each call borrows a sid from a
  small pool (one per concurrent call) and gives it back; first-hit files post events,
  which the engine consumes, and collect files assert facts, which are deleted with the
  sid's state after the call, so nothing of one call reaches the next (the pool's few
  empty state objects stay, about 0.25 MiB each per version);
- a batch whose messages clash in the engine's 32-bit message hash is retried in halves;
- a ruleset name can be registered once: names carry the content hash, so a new version
  is a new name and an unchanged one is reused;
- exceptions in actions are swallowed by the engine: our only action records which
  branch fired and can fail only loudly;
- numbers reach it as integers (see ``types.py``); unknown input keys are dropped.
"""

from __future__ import annotations

import copy
import itertools
import os
import threading
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import Any

import durable.engine

from .compiler import NOTHING, compile_ruleset, engine_name
from .model import RuleFile
from .types import ValueProblem, normalizer


class RuleInputError(ValueError):
    """Facts that do not fit the file's declared inputs; ``fields`` says which and why."""

    def __init__(self, fields: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{k}: {', '.join(v)}" for k, v in fields.items()))
        self.fields = fields


class RuleEngineError(RuntimeError):
    """The engine itself failed (never swallowed)."""


@dataclass(frozen=True, slots=True)
class Decision:
    """One branch that fired: which rule, from which version, with what result."""

    ruleset: str
    version: int | None
    sha: str
    clause: str
    rule: str
    row: int | None
    line: int
    outputs: Mapping[str, Any]
    actions: tuple[tuple[str, Mapping[str, Any]], ...]

    @property
    def label(self) -> str:
        """``rule`` or ``rule#row``."""
        return self.rule if self.row is None else f"{self.rule}#{self.row}"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (API, CLI, stored decisions)."""
        return {
            "ruleset": self.ruleset,
            "version": self.version,
            "sha": self.sha,
            "clause": self.clause,
            "rule": self.rule,
            "row": self.row,
            "line": self.line,
            "outputs": dict(self.outputs),
            "actions": [{"name": name, "arguments": dict(args)} for name, args in self.actions],
        }


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The answer for one set of facts: the decisions (none, one, or several) and, for
    ``collect`` files, the outputs combined as the file's ``aggregate`` says."""

    ruleset: str
    version: int | None
    sha: str
    clause: str
    inputs: Mapping[str, Any]
    decisions: tuple[Decision, ...]
    outputs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def decided(self) -> bool:
        """Whether any rule matched (no match is a normal answer, not an error)."""
        return bool(self.decisions)

    @property
    def rules(self) -> list[str]:
        """Labels of the branches that fired, in file order."""
        return [decision.label for decision in self.decisions]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "ruleset": self.ruleset,
            "version": self.version,
            "sha": self.sha,
            "clause": self.clause,
            "inputs": dict(self.inputs),
            "decisions": [d.as_dict() for d in self.decisions],
            "outputs": dict(self.outputs),
        }


class _QuietHost(durable.engine.Host):
    """A durable_rules Host without its background timer threads, recording what fired."""

    def __init__(self) -> None:
        self.fired: dict[str, list[tuple[int, str]]] = {}
        super().__init__()

    def _run(self) -> None:  # no timer chains: no idle threads, no race with post()
        return None

    def get_action(self, action_name: str) -> Any:
        branch = action_name.partition(":")[2]
        index = -1 if branch == NOTHING else int(branch)  # -1: nothing matched
        fired = self.fired

        def record(closure: Any) -> None:
            message = closure.m
            fired.setdefault(message["sid"], []).append((message["i"], index))

        return record


def normalize_facts(rule_file: RuleFile, facts: Mapping[str, Any]) -> dict[str, Any]:
    """The declared inputs in the engine's form; every problem reported per field."""
    if not isinstance(facts, Mapping):
        raise RuleInputError({"": ["facts must be a mapping of input names to values"]})
    values: dict[str, Any] = {}
    problems: dict[str, list[str]] = {}
    for name, spec in rule_file.inputs.items():
        raw = facts.get(name)
        if raw is None:
            if spec.default is None:
                problems[name] = ["missing"]
                continue
            raw = spec.default
        try:
            values[name] = normalizer(spec)(raw)
        except ValueProblem as problem:
            problems[name] = [str(problem)]
    if problems:
        raise RuleInputError(problems)
    return values


def _thawed(outputs: Mapping[str, Any]) -> dict[str, Any]:
    return {
        key: list(value) if isinstance(value, tuple) else value for key, value in outputs.items()
    }


def _frozen(outputs: Mapping[str, Any]) -> dict[str, Any]:
    """Outputs callers cannot change: they are the policy itself, shared by every call."""
    return {
        key: tuple(value) if isinstance(value, list) else value for key, value in outputs.items()
    }


def _plain(value: Any) -> Any:
    """Facts as they were given, JSON-ready (stored for explanations and simulation)."""
    return str(value) if isinstance(value, Decimal) else value


def combine_outputs(rule_file: RuleFile, decisions: list[Any]) -> dict[str, Any]:
    """The outputs of an evaluation: the deciding rule's (first) or the aggregate (collect)."""
    if rule_file.hit_policy == "first":
        return dict(decisions[0].outputs) if decisions else {}
    combined: dict[str, Any] = {}
    for name, how in rule_file.aggregate.items():
        values = [d.outputs[name] for d in decisions if name in d.outputs]
        numbers: list[Any] = []
        if how not in ("sum", "max", "min"):  # list, count, first take any output
            pass
        elif rule_file.outputs[name].type in ("money", "number"):  # exact, as decimal text
            numbers = [Decimal(str(v)) for v in values]
        else:
            numbers = [float(v) if not isinstance(v, int) else v for v in values]
        if how == "sum":
            combined[name] = sum(numbers) if numbers else 0
        elif how == "max":
            combined[name] = max(numbers) if numbers else None
        elif how == "min":
            combined[name] = min(numbers) if numbers else None
        elif how == "count":
            combined[name] = len(values)
        elif how == "list":
            combined[name] = values
        elif how == "first":
            combined[name] = values[0] if values else None
        if isinstance(combined[name], Decimal):
            combined[name] = str(combined[name])
    return combined


class _SidPool:
    """Session ids for the engine: one per concurrent call, handed back after it, so thread
    churn in a server never piles sids up (durable_rules breaks for good past 1,024 per
    ruleset). ``list.pop``/``append`` are atomic under the GIL: no lock on the hot path."""

    LIMIT = 256

    def __init__(self) -> None:
        self._free: list[str] = []
        self._numbers = itertools.count(1)  # next() is atomic under the GIL; += is not
        self._created = 0

    def take(self) -> str:
        try:
            return self._free.pop()
        except IndexError:
            number = next(self._numbers)
            self._created = number
            if number > self.LIMIT:
                raise RuleEngineError("too many rule evaluations at once in one process") from None
            return f"p{os.getpid()}s{number}"

    def give_back(self, sid: str) -> None:
        self._free.append(sid)


_RUNTIMES: weakref.WeakSet[Runtime] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for runtime in list(_RUNTIMES):
        runtime._reset()


os.register_at_fork(after_in_child=_after_fork_in_child)


class Runtime:
    """One per process: the quiet Host and the versions registered in it.

    Registering is done under a lock and a version is only handed out once fully
    registered, so a reader never sees a half-loaded ruleset. First-hit files are posted
    as events, which the engine consumes; collect files are asserted as facts, which are
    deleted with the sid's state after the call. Either way nothing of one call is left
    for the next.
    """

    def __init__(self) -> None:
        self._reset()
        _RUNTIMES.add(self)

    def _reset(self) -> None:
        """Forget the engine (at start, and in a forked child: a Host created before a
        fork must not be used after it, nor a lock another thread held at the fork)."""
        self._lock = threading.Lock()
        self._host: _QuietHost | None = None
        self._sids = _SidPool()
        self._registered: dict[str, RuleFile] = {}
        self._names: dict[str, str] = {}
        self._decision_cache: dict[tuple[str, int | None], list[Decision]] = {}

    def _ensure_host(self) -> _QuietHost:
        if self._host is None:
            with self._lock:
                if self._host is None:
                    self._host = _QuietHost()
        return self._host

    def register(self, rule_file: RuleFile) -> str:
        """Register a version (once per content) and return its engine name."""
        known = self._names.get(rule_file.sha)
        if known is not None:
            return known
        host = self._ensure_host()
        name = engine_name(rule_file)
        with self._lock:
            if name not in self._registered:
                try:
                    host.register_rulesets(copy.deepcopy(compile_ruleset(rule_file)))
                except Exception as error:  # the engine gives only an error code
                    raise RuleEngineError(
                        f"durable_rules refused {rule_file.name}: {error}"
                    ) from error
                self._registered[name] = rule_file
                self._names[rule_file.sha] = name
        return name

    @property
    def registered_count(self) -> int:
        """How many versions this process holds (each costs about 0.4 MiB)."""
        return len(self._registered)

    def _branch_decisions(self, rule_file: RuleFile, version: int | None) -> list[Decision]:
        """One ready-made Decision per branch (they are immutable), built once per version."""
        key = (rule_file.sha, version)
        cached = self._decision_cache.get(key)
        if cached is None:
            cached = [
                Decision(
                    rule_file.name,
                    version,
                    rule_file.sha,
                    rule_file.clause,
                    b.rule_id,
                    b.row,
                    b.line,
                    MappingProxyType(_frozen(b.outputs)),
                    b.actions,
                )
                for b in rule_file.branches
            ]
            if len(self._decision_cache) > 256:
                self._decision_cache.clear()
            self._decision_cache[key] = cached
        return cached

    def fire(self, rule_file: RuleFile, inputs: list[dict[str, Any]]) -> list[list[int]]:
        """Run normalised inputs through the engine: for each, the indices of the branches
        that decide (in file order; at most one for a first-hit file)."""
        if not inputs:
            return []
        name = self.register(rule_file)
        host = self._host or self._ensure_host()
        first = rule_file.hit_policy == "first"
        sid = self._sids.take()
        failure: Exception | None = None
        fired: list[tuple[int, int]] = []
        try:
            for index, values in enumerate(inputs):  # our own dicts: marking them is free
                values["t"], values["sid"], values["i"] = name, sid, index
            try:
                if first:
                    if len(inputs) == 1:
                        host.post(name, inputs[0])
                    else:
                        host.post_batch(name, inputs)
                elif len(inputs) == 1:
                    host.assert_fact(name, inputs[0])
                else:
                    host.assert_facts(name, inputs)
            except Exception as error:
                failure = error
            if not first or failure is not None:
                try:
                    host.delete_state(name, sid)
                except Exception as error:  # no state if the call failed early
                    failure = failure or error
        finally:
            fired = host.fired.pop(sid, [])
            self._sids.give_back(sid)
        if isinstance(failure, durable.engine.MessageObservedException) and len(inputs) > 1:
            # durable_rules keys a batch's messages by a 32-bit hash: two different facts
            # can clash. Halves clash far less; a single fact never does.
            middle = len(inputs) // 2
            return self.fire(rule_file, inputs[:middle]) + self.fire(rule_file, inputs[middle:])
        if failure is not None:
            detail = str(failure)[:300]  # the engine quotes the whole batch
            raise RuleEngineError(f"evaluating {rule_file.name} failed: {detail}") from failure
        if first and len(inputs) == 1 and len(fired) == 1:  # the request path, in short
            branch = fired[0][1]
            return [[branch] if branch >= 0 else []]
        by_message: list[list[int] | None] = [None] * len(inputs)
        for index, branch in fired:
            found = by_message[index]
            if found is None:
                found = by_message[index] = []
            if branch >= 0:
                found.append(branch)
        results = []
        for found in by_message:
            if found is None:
                raise RuleEngineError(f"{rule_file.name}: the engine gave no answer for a fact")
            # A rule fires once per matching `any`/`in` term: count it once, in file order.
            ordered = sorted(set(found))
            results.append(ordered[:1] if first else ordered)
        return results

    def evaluate(
        self, rule_file: RuleFile, facts: Mapping[str, Any], version: int | None = None
    ) -> Evaluation:
        """Evaluate one set of facts (the request path: kept lean)."""
        (indices,) = self.fire(rule_file, [normalize_facts(rule_file, facts)])
        return self._evaluation(rule_file, version, facts, indices)

    def _evaluation(
        self, rule_file: RuleFile, version: int | None, facts: Mapping[str, Any], indices: list[int]
    ) -> Evaluation:
        templates = self._decision_cache.get((rule_file.sha, version)) or self._branch_decisions(
            rule_file, version
        )
        decisions = tuple(templates[index] for index in indices)
        given = {name: _plain(facts[name]) for name in rule_file.inputs if name in facts}
        if rule_file.hit_policy == "first":
            # The caller's own copy: the decision's outputs are the shared policy.
            outputs = _thawed(decisions[0].outputs) if decisions else {}
        else:
            outputs = combine_outputs(rule_file, list(decisions))
        return Evaluation(
            rule_file.name, version, rule_file.sha, rule_file.clause, given, decisions, outputs
        )

    def evaluate_many(
        self, rule_file: RuleFile, many_facts: list[Mapping[str, Any]], version: int | None = None
    ) -> list[Evaluation]:
        """Evaluate several sets of facts in one engine call (simulation, tests)."""
        inputs = [normalize_facts(rule_file, facts) for facts in many_facts]
        fired = self.fire(rule_file, inputs)
        templates = self._branch_decisions(rule_file, version)
        declared = rule_file.inputs
        results = []
        for facts, indices in zip(many_facts, fired, strict=True):
            decisions = tuple(templates[index] for index in indices)
            given = {name: _plain(facts[name]) for name in declared if name in facts}
            results.append(
                Evaluation(
                    rule_file.name,
                    version,
                    rule_file.sha,
                    rule_file.clause,
                    given,
                    decisions,
                    combine_outputs(rule_file, list(decisions)),
                )
            )
        return results
