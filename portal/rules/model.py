"""A rule file once validated: what the compiler, the engine and the admin pages use."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .types import ValueSpec

OPERATORS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in")
ORDERING = ("gt", "gte", "lt", "lte")
HIT_POLICIES = ("first", "collect")
AGGREGATES = ("sum", "max", "min", "count", "list", "first")


@dataclass(frozen=True)
class Condition:
    """``field op value`` or ``field op other_field`` (``ref``)."""

    field: str
    op: str
    value: Any = None
    ref: str | None = None


@dataclass(frozen=True)
class Branch:
    """One rule, or one row of a rule's table: what must hold and what follows."""

    index: int
    rule_id: str
    row: int | None
    line: int
    conditions: tuple[Condition, ...]
    any_of: tuple[tuple[Condition, ...], ...]
    outputs: Mapping[str, Any]
    actions: tuple[tuple[str, Mapping[str, Any]], ...]

    @property
    def label(self) -> str:
        """``rule-id`` or ``rule-id#row`` (rows count from 1, as an admin reads them)."""
        return self.rule_id if self.row is None else f"{self.rule_id}#{self.row}"


@dataclass(frozen=True)
class TestCase:
    """Given inputs, the expected rule(s) and outputs; lives in the same file."""

    name: str
    given: Mapping[str, Any]
    expect: Mapping[str, Any]
    line: int


@dataclass(frozen=True)
class RuleFile:
    """A validated rule file."""

    name: str
    title: Mapping[str, str]
    clause: str
    description: str
    hit_policy: str
    inputs: Mapping[str, ValueSpec]
    outputs: Mapping[str, ValueSpec]
    parameters: Mapping[str, Any]
    branches: tuple[Branch, ...]
    aggregate: Mapping[str, str]
    tests: tuple[TestCase, ...]
    facts: str | None
    source: str
    sha: str
    rule_ids: tuple[str, ...] = field(default=())

    def title_in(self, locale: str) -> str:
        """The title in ``locale``, falling back to English."""
        return self.title.get(locale) or self.title.get("en") or self.name


@dataclass(frozen=True)
class RuleError:
    """A problem in a rule file, located for the admin."""

    file: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"
