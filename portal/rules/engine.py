"""Evaluating rule files with durable_rules, safely inside a threaded, multi-worker server.

What this wrapper does about durable_rules' traps (see docs/rules.md):
- its Host starts two timer threads per ruleset and cannot be stopped: our Host never
  starts them (``_run`` is a no-op) and is created lazily in each process, after a fork;
- state is kept per ``sid``, at most 1024 per ruleset: each thread uses its own sid and
  the state is deleted after every call, so nothing is left behind;
- a ruleset name can be registered once: names carry the content hash, so a new version
  is a new name and an unchanged one is reused;
- exceptions in actions are swallowed by the engine: our only action records which
  branch fired and can fail only loudly;
- numbers reach it as integers (see ``types.py``); unknown input keys are dropped.
"""

from __future__ import annotations

import copy
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import durable.engine

from .compiler import NOTHING, compile_ruleset, engine_name
from .model import Branch, RuleFile
from .types import ValueProblem, normalize


class RuleInputError(ValueError):
    """Facts that do not fit the file's declared inputs; ``fields`` says which and why."""

    def __init__(self, fields: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{k}: {', '.join(v)}" for k, v in fields.items()))
        self.fields = fields


class RuleEngineError(RuntimeError):
    """The engine itself failed (never swallowed)."""


@dataclass(frozen=True)
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


@dataclass(frozen=True)
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
        _kind, _sep, branch = action_name.partition(":")

        def record(closure: Any) -> None:
            message = closure.m
            self.fired.setdefault(message["sid"], []).append((message["i"], branch))

        return record


def _thread_sid() -> str:
    return f"p{os.getpid()}t{threading.get_ident()}"


def normalize_facts(rule_file: RuleFile, facts: Mapping[str, Any]) -> dict[str, Any]:
    """The declared inputs in the engine's form; every problem reported per field."""
    if not isinstance(facts, Mapping):
        raise RuleInputError({"": ["facts must be a mapping of input names to values"]})
    values: dict[str, Any] = {}
    problems: dict[str, list[str]] = {}
    for name, spec in rule_file.inputs.items():
        if name not in facts or facts[name] is None:
            if spec.default is None:
                problems[name] = ["missing"]
                continue
            raw = spec.default
        else:
            raw = facts[name]
        try:
            values[name] = normalize(spec, raw)
        except ValueProblem as problem:
            problems[name] = [str(problem)]
    if problems:
        raise RuleInputError(problems)
    return values


def _plain(value: Any) -> Any:
    """Facts as they were given, JSON-ready (stored for explanations and simulation)."""
    return str(value) if isinstance(value, Decimal) else value


def _combine(rule_file: RuleFile, decisions: list[Decision]) -> dict[str, Any]:
    if rule_file.hit_policy == "first":
        return dict(decisions[0].outputs) if decisions else {}
    combined: dict[str, Any] = {}
    for name, how in rule_file.aggregate.items():
        values = [d.outputs[name] for d in decisions if name in d.outputs]
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
    return combined


class Runtime:
    """One per process: the quiet Host and the versions registered in it.

    Registering is done under a lock and a version is only handed out once fully
    registered, so a reader never sees a half-loaded ruleset.
    """

    def __init__(self) -> None:
        self._pid = os.getpid()
        self._host: _QuietHost | None = None
        self._registered: dict[str, RuleFile] = {}
        self._lock = threading.Lock()

    def _ensure_host(self) -> _QuietHost:
        if self._host is None or self._pid != os.getpid():  # forked: start afresh
            with self._lock:
                if self._host is None or self._pid != os.getpid():
                    self._host = _QuietHost()
                    self._registered = {}
                    self._pid = os.getpid()
        return self._host

    def register(self, rule_file: RuleFile) -> str:
        """Register a version (once per content) and return its engine name."""
        host = self._ensure_host()
        name = engine_name(rule_file)
        if name in self._registered:
            return name
        with self._lock:
            if name not in self._registered:
                try:
                    host.register_rulesets(copy.deepcopy(compile_ruleset(rule_file)))
                except Exception as error:  # the engine gives only an error code
                    raise RuleEngineError(
                        f"durable_rules refused {rule_file.name}: {error}"
                    ) from error
                self._registered[name] = rule_file
        return name

    @property
    def registered_count(self) -> int:
        """How many versions this process holds (each costs about 0.4 MiB)."""
        return len(self._registered)

    def _decisions(
        self, rule_file: RuleFile, version: int | None, fired: Iterable[str]
    ) -> list[Decision]:
        branches: list[Branch] = []
        for branch in fired:
            if branch != NOTHING:
                branches.append(rule_file.branches[int(branch)])
        branches.sort(key=lambda b: b.index)
        if rule_file.hit_policy == "first":
            branches = branches[:1]
        return [
            Decision(
                rule_file.name,
                version,
                rule_file.sha,
                rule_file.clause,
                b.rule_id,
                b.row,
                b.line,
                b.outputs,
                b.actions,
            )
            for b in branches
        ]

    def evaluate(
        self, rule_file: RuleFile, facts: Mapping[str, Any], version: int | None = None
    ) -> Evaluation:
        """Evaluate one set of facts."""
        return self.evaluate_many(rule_file, [facts], version)[0]

    def evaluate_many(
        self, rule_file: RuleFile, many_facts: list[Mapping[str, Any]], version: int | None = None
    ) -> list[Evaluation]:
        """Evaluate several sets of facts in one engine call (simulation, tests)."""
        inputs = [normalize_facts(rule_file, facts) for facts in many_facts]
        if not inputs:
            return []
        name = self.register(rule_file)
        host = self._ensure_host()
        sid = _thread_sid()
        messages = [
            {**values, "t": name, "sid": sid, "i": index} for index, values in enumerate(inputs)
        ]
        try:
            if rule_file.hit_policy == "first":
                if len(messages) == 1:
                    host.post(name, messages[0])
                else:
                    host.post_batch(name, messages)
            elif len(messages) == 1:
                host.assert_fact(name, messages[0])
            else:
                host.assert_facts(name, messages)
        except Exception as error:
            raise RuleEngineError(f"evaluating {rule_file.name} failed: {error}") from error
        finally:
            try:
                host.delete_state(name, sid)
            finally:
                fired = host.fired.pop(sid, [])
        by_message: dict[int, list[str]] = {}
        for index, branch in fired:
            by_message.setdefault(int(index), []).append(branch)
        results = []
        for index, facts in enumerate(many_facts):
            if index not in by_message:
                raise RuleEngineError(f"{rule_file.name}: the engine gave no answer for a fact")
            decisions = self._decisions(rule_file, version, by_message[index])
            given = {name: _plain(facts.get(name)) for name in rule_file.inputs if name in facts}
            results.append(
                Evaluation(
                    rule_file.name,
                    version,
                    rule_file.sha,
                    rule_file.clause,
                    given,
                    tuple(decisions),
                    _combine(rule_file, decisions),
                )
            )
        return results
