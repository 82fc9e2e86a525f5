"""Simulation: what a draft would decide differently on the stored inputs of a period.

No peer product offers this: before publishing, an admin sees how many of, say, last
quarter's expense claims the new limits would treat differently, with examples. The
stored inputs are those of the decisions that changed records (``core_rule_decision``);
each record counts once, with its latest inputs. Both the version in force and the
draft are evaluated in batches in the same run, so the comparison is like for like.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa

from ..extensions import db
from .engine import RuleInputError, combine_outputs, normalize_facts
from .model import RuleFile
from .models import RuleDecision
from .service import RuleService

BATCH = 1000


@dataclass
class Simulation:
    """Counts and examples of changed decisions."""

    ruleset: str
    since: datetime
    until: datetime | None
    total: int = 0
    changed: int = 0
    unusable: int = 0
    by_change: dict[str, int] = field(default_factory=dict)
    examples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def unchanged(self) -> int:
        """Records the draft treats as the version in force does."""
        return self.total - self.changed - self.unusable


def _outcome(rule_file: RuleFile, indices: list[int]) -> tuple[str, dict[str, Any]]:
    """What a set of fired branches amounts to: their labels and the combined outputs."""
    branches = [rule_file.branches[index] for index in indices]
    labels = ",".join(branch.label for branch in branches) or "none"
    if rule_file.hit_policy == "first":
        return labels, dict(branches[0].outputs) if branches else {}
    decisions = [SimpleNamespace(outputs=branch.outputs) for branch in branches]
    return labels, combine_outputs(rule_file, decisions)


def _stored_inputs(ruleset: str, since: datetime, until: datetime | None):  # noqa: ANN202
    latest = sa.select(sa.func.max(RuleDecision.id).label("id")).where(
        RuleDecision.ruleset == ruleset, RuleDecision.at >= since
    )
    if until is not None:
        latest = latest.where(RuleDecision.at < until)
    latest = latest.group_by(RuleDecision.subject_table, RuleDecision.subject_id).subquery()
    statement = (
        sa.select(RuleDecision.subject_table, RuleDecision.subject_id, RuleDecision.inputs)
        .join(latest, RuleDecision.id == latest.c.id)
        .order_by(RuleDecision.id)
    )
    return db.session.execute(statement.execution_options(yield_per=BATCH))


def simulate(
    service: RuleService,
    ruleset: str,
    draft: RuleFile,
    since: datetime,
    until: datetime | None = None,
    examples: int = 20,
) -> Simulation:
    """Compare the version in force and ``draft`` on the stored inputs of a period."""
    current = service.active(ruleset).rule_file
    result = Simulation(ruleset, since, until)
    chunk: list[tuple[str, str, dict[str, Any]]] = []

    def flush() -> None:
        # Each record's inputs are normalised once per file, then both files run in batch.
        usable, before_inputs, after_inputs = [], [], []
        for subject_table, subject_id, inputs in chunk:
            try:
                before_inputs.append(normalize_facts(current, inputs))
                try:
                    after_inputs.append(normalize_facts(draft, inputs))
                except RuleInputError:
                    before_inputs.pop()
                    raise
            except RuleInputError:  # inputs the draft no longer accepts count apart
                result.unusable += 1
                continue
            usable.append((subject_table, subject_id, inputs))
        before = service.runtime.fire(current, before_inputs)
        drafts = (
            service.scratch
            if service.app.config.get("RULES_SCRATCH_PROCESS", True)
            else service.runtime
        )
        after = drafts.fire(draft, after_inputs)
        for (subject_table, subject_id, inputs), old_fired, new_fired in zip(
            usable, before, after, strict=True
        ):
            old, new = _outcome(current, old_fired), _outcome(draft, new_fired)
            if old == new:
                continue
            result.changed += 1
            key = f"{old[0]} → {new[0]}"
            result.by_change[key] = result.by_change.get(key, 0) + 1
            if len(result.examples) < examples:
                result.examples.append(
                    {
                        "subject": f"{subject_table}:{subject_id}",
                        "inputs": inputs,
                        "before": {"rules": old[0], "outputs": old[1]},
                        "after": {"rules": new[0], "outputs": new[1]},
                    }
                )
        chunk.clear()

    for row in _stored_inputs(ruleset, since, until):
        result.total += 1
        chunk.append((row.subject_table, row.subject_id, row.inputs))
        if len(chunk) >= BATCH:
            flush()
    if chunk:
        flush()
    return result
