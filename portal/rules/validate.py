"""Checking a rule file and turning it into a ``RuleFile``, with every problem located.

An admin reads these messages, so each one names what is wrong in their terms ("unknown
input 'has_recipt'", "row 2 has 3 cells but the table has 2 columns") and where. All
problems are collected in one pass, not just the first.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from flask_babel import gettext as _

from .model import (
    AGGREGATES,
    HIT_POLICIES,
    OPERATORS,
    ORDERING,
    Branch,
    Condition,
    RuleError,
    RuleFile,
    TestCase,
)
from .source import Located, SourceError, parse
from .types import INPUT_TYPES, OUTPUT_TYPES, ValueProblem, ValueSpec, check_output, normalize

NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
RULE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
TOP_LEVEL = {
    "ruleset",
    "title",
    "clause",
    "description",
    "hit_policy",
    "facts",
    "inputs",
    "outputs",
    "parameters",
    "rules",
    "aggregate",
    "tests",
}
RULE_KEYS = {"id", "description", "when", "table", "then", "actions"}
RESERVED_INPUTS = {"t", "sid", "i", "id"}  # the engine's own message fields
MAX_BRANCHES = 300  # durable_rules fails on rulesets of some 480 rules
MAX_BYTES = 256 * 1024


@dataclass
class Vocabulary:
    """What plugins declared in code: actions (with typed arguments) and fact providers."""

    actions: Mapping[str, Any] = field(default_factory=dict)
    fact_providers: Mapping[str, Any] = field(default_factory=dict)

    def action(self, name: str) -> tuple[str, Any] | None:
        """Resolve an action name; the core's may be written without ``core.``."""
        for candidate in (name, f"core.{name}"):
            if candidate in self.actions:
                return candidate, self.actions[candidate]
        return None


class _Checker:
    def __init__(self, file: str, located: Located, vocabulary: Vocabulary) -> None:
        self.file, self.located, self.vocabulary = file, located, vocabulary
        self.errors: list[RuleError] = []

    def error(self, path: tuple[Any, ...], message: str) -> None:
        line, column = self.located.position(path)
        self.errors.append(RuleError(self.file, line, column, message))

    # -- small helpers ---------------------------------------------------------

    def mapping(self, value: Any, path: tuple[Any, ...], what: str) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.error(path, _("%(what)s must be a mapping of names to values", what=what))
            return {}
        return value

    def sequence(self, value: Any, path: tuple[Any, ...], what: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.error(path, _("%(what)s must be a list", what=what))
            return []
        return value

    def unknown_keys(self, value: dict[str, Any], allowed: set[str], path: tuple[Any, ...]) -> None:
        for key in value:
            if key not in allowed:
                self.error(
                    (*path, key),
                    _(
                        "unknown key '%(key)s' (allowed: %(allowed)s)",
                        key=key,
                        allowed=", ".join(sorted(allowed)),
                    ),
                )

    def spec(
        self, name: str, raw: Any, path: tuple[Any, ...], types: tuple[str, ...]
    ) -> ValueSpec | None:
        if not isinstance(name, str) or not NAME.match(name):
            self.error(
                path, _("'%(name)s' is not a valid name (lower-case letters, digits, _)", name=name)
            )
            return None
        entry = self.mapping(raw, path, name)
        self.unknown_keys(
            entry, {"type", "values", "min", "max", "scale", "default", "label", "value"}, path
        )
        kind = entry.get("type")
        if kind not in types:
            self.error((*path, "type"), _("type must be one of %(types)s", types=", ".join(types)))
            return None
        values = entry.get("values") or []
        if kind in ("enum", "list") and kind == "enum" and not values:
            self.error(path, _("an enum needs its values"))
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            self.error((*path, "values"), _("values must be a list of words"))
            values = []
        bounds = {}
        for key in ("min", "max"):
            if entry.get(key) is not None:
                try:
                    bounds[key] = Decimal(str(entry[key]))
                    if not bounds[key].is_finite():
                        raise ValueError(key)
                except Exception:  # noqa: BLE001 - any unparsable bound is the admin's typo
                    bounds.pop(key, None)
                    self.error((*path, key), _("%(key)s must be a number", key=key))
        scale = entry.get("scale", 2)
        if not isinstance(scale, int) or not 0 <= scale <= 6:
            self.error((*path, "scale"), _("scale must be a whole number from 0 to 6"))
            scale = 2
        label = entry.get("label") or ""
        spec = ValueSpec(
            name=name,
            type=kind,
            values=tuple(values),
            minimum=bounds.get("min"),
            maximum=bounds.get("max"),
            scale=scale,
            default=entry.get("default"),
            label=str(label),
        )
        if spec.default is not None and kind in INPUT_TYPES:
            try:
                normalize(spec, spec.default)
            except ValueProblem as problem:
                self.error((*path, "default"), str(problem))
        return spec

    # -- the file ----------------------------------------------------------------

    def check(self, expected_name: str | None) -> RuleFile | None:
        data = self.located.data
        if not isinstance(data, dict):
            self.error((), _("a rule file must be a mapping (ruleset, title, inputs, rules ...)"))
            return None
        self.unknown_keys(data, TOP_LEVEL, ())
        for key in ("ruleset", "title", "clause", "hit_policy", "inputs", "outputs", "rules"):
            if key not in data:
                self.error((), _("'%(key)s' is missing", key=key))
        name = data.get("ruleset")
        if "ruleset" in data and (not isinstance(name, str) or not NAME.match(name)):
            self.error(("ruleset",), _("the ruleset name must be lower-case letters, digits, _"))
        if expected_name and name and name != expected_name:
            self.error(
                ("ruleset",),
                _(
                    "the ruleset is called '%(name)s' but the file is '%(file)s'",
                    name=name,
                    file=expected_name,
                ),
            )
        title = data.get("title")
        if isinstance(title, str):
            title = {"en": title}
        if not isinstance(title, dict) or not all(isinstance(v, str) for v in title.values()):
            if "title" in data:
                self.error(
                    ("title",), _("title must be text, or a mapping like {en: ..., zh_CN: ...}")
                )
            title = {}
        hit_policy = data.get("hit_policy")
        if "hit_policy" in data and hit_policy not in HIT_POLICIES:
            self.error(
                ("hit_policy",),
                _(
                    "hit_policy must be 'first' (one rule decides) or "
                    "'collect' (every matching rule counts)"
                ),
            )
        facts = data.get("facts")
        if facts is not None and (
            not isinstance(facts, str) or facts not in self.vocabulary.fact_providers
        ):
            self.error(("facts",), _("no enabled plugin provides the facts '%(name)s'", name=facts))

        inputs: dict[str, ValueSpec] = {}
        for key, raw in self.mapping(data.get("inputs"), ("inputs",), "inputs").items():
            if key in RESERVED_INPUTS:
                self.error(("inputs", key), _("'%(name)s' is reserved, use another name", name=key))
                continue
            spec = self.spec(key, raw, ("inputs", key), INPUT_TYPES)
            if spec:
                inputs[key] = spec
        if isinstance(facts, str) and facts in self.vocabulary.fact_providers:
            provided = self.vocabulary.fact_providers[facts].fields
            for key in inputs:
                if key not in provided:
                    self.error(
                        ("inputs", key),
                        _(
                            "'%(field)s' is not among the facts %(facts)s provides",
                            field=key,
                            facts=facts,
                        ),
                    )
        outputs: dict[str, ValueSpec] = {}
        for key, raw in self.mapping(data.get("outputs"), ("outputs",), "outputs").items():
            spec = self.spec(key, raw, ("outputs", key), OUTPUT_TYPES)
            if spec:
                outputs[key] = spec
        parameters = self.parameters(data.get("parameters"))

        branches: list[Branch] = []
        rule_ids: list[str] = []
        for index, rule in enumerate(self.sequence(data.get("rules"), ("rules",), "rules")):
            branches += self.rule(
                rule, ("rules", index), inputs, outputs, parameters, rule_ids, len(branches)
            )
        if "rules" in data and not branches and not self.errors:
            self.error(("rules",), _("the file has no rules"))
        if len(branches) > MAX_BRANCHES:
            self.error(
                ("rules",),
                _(
                    "too many rules and table rows (%(n)s; at most %(max)s)",
                    n=len(branches),
                    max=MAX_BRANCHES,
                ),
            )
        aggregate = self.aggregate(data.get("aggregate"), outputs, hit_policy)
        tests = self.tests(data.get("tests"), inputs, outputs, rule_ids)
        if self.errors or not isinstance(name, str):
            return None
        source_text = ""
        return RuleFile(
            name=name,
            title=title,
            clause=str(data.get("clause") or ""),
            description=str(data.get("description") or ""),
            hit_policy=hit_policy,
            inputs=inputs,
            outputs=outputs,
            parameters=parameters,
            branches=tuple(branches),
            aggregate=aggregate,
            tests=tuple(tests),
            facts=facts,
            source=source_text,
            sha="",
            rule_ids=tuple(rule_ids),
        )

    def parameters(self, raw: Any) -> dict[str, tuple[ValueSpec, Any]]:
        result: dict[str, tuple[ValueSpec, Any]] = {}
        for key, entry in self.mapping(raw, ("parameters",), "parameters").items():
            path = ("parameters", key)
            spec = self.spec(key, entry, path, INPUT_TYPES)
            if spec is None or not isinstance(entry, dict):
                continue
            if "value" not in entry:
                self.error(path, _("parameter '%(name)s' needs a value", name=key))
                continue
            try:
                result[key] = (spec, normalize(spec, entry["value"]))
            except ValueProblem as problem:
                self.error((*path, "value"), str(problem))
        return result

    def value_for(
        self,
        spec: ValueSpec,
        raw: Any,
        path: tuple[Any, ...],
        parameters: Mapping[str, tuple[ValueSpec, Any]],
    ) -> Any:
        if isinstance(raw, dict) and set(raw) == {"param"}:
            entry = parameters.get(raw["param"]) if isinstance(raw["param"], str) else None
            if entry is None:
                self.error(path, _("unknown parameter '%(name)s'", name=raw["param"]))
                return None
            if entry[0].type != spec.type:
                self.error(
                    path,
                    _(
                        "parameter '%(name)s' is %(a)s but '%(field)s' is %(b)s",
                        name=raw["param"],
                        a=entry[0].type,
                        field=spec.name,
                        b=spec.type,
                    ),
                )
                return None
            if spec.type == "number" and entry[0].scale != spec.scale:
                # Numbers are compared scaled: a threshold must carry the input's scale.
                if entry[0].scale > spec.scale:
                    self.error(
                        path,
                        _(
                            "give parameter '%(name)s' the scale of '%(field)s' (%(n)s)",
                            name=raw["param"],
                            field=spec.name,
                            n=spec.scale,
                        ),
                    )
                    return None
                return entry[1] * 10 ** (spec.scale - entry[0].scale)
            return entry[1]
        try:
            return normalize(spec, raw)
        except ValueProblem as problem:
            self.error(path, _("'%(field)s': %(problem)s", field=spec.name, problem=problem))
            return None

    def condition(
        self,
        field_name: str,
        raw: Any,
        path: tuple[Any, ...],
        inputs: Mapping[str, ValueSpec],
        parameters: Mapping[str, tuple[ValueSpec, Any]],
    ) -> list[Condition]:
        spec = inputs.get(field_name)
        if spec is None:
            self.error(
                path,
                _(
                    "unknown input '%(field)s' (inputs: %(known)s)",
                    field=field_name,
                    known=", ".join(inputs),
                ),
            )
            return []
        if not isinstance(raw, dict) or set(raw) == {"param"}:
            raw = {"eq": raw}
        conditions = []
        for op, operand in raw.items():
            op_path = (*path, op)
            if op not in OPERATORS:
                self.error(
                    op_path,
                    _("unknown comparison '%(op)s' (use %(ops)s)", op=op, ops=", ".join(OPERATORS)),
                )
                continue
            if op in ORDERING and not spec.numeric:
                self.error(
                    op_path,
                    _(
                        "'%(op)s' needs a number, but '%(field)s' is %(type)s",
                        op=op,
                        field=field_name,
                        type=spec.type,
                    ),
                )
                continue
            if isinstance(operand, dict) and set(operand) == {"field"}:
                other = inputs.get(operand["field"]) if isinstance(operand["field"], str) else None
                if (
                    other is None
                    or other.type != spec.type
                    or op in ("in", "not_in")
                    or (spec.type == "number" and other.scale != spec.scale)
                ):
                    self.error(
                        op_path, _("can only compare with another input of the same type and scale")
                    )
                    continue
                conditions.append(Condition(field_name, op, ref=operand["field"]))
                continue
            if op in ("in", "not_in"):
                if not isinstance(operand, list) or not operand:
                    self.error(op_path, _("'%(op)s' needs a list of values", op=op))
                    continue
                values = [
                    self.value_for(spec, item, (*op_path, i), parameters)
                    for i, item in enumerate(operand)
                ]
                conditions.append(Condition(field_name, op, value=tuple(values)))
                continue
            value = self.value_for(spec, operand, op_path, parameters)
            conditions.append(Condition(field_name, op, value=value))
        return conditions

    def when(
        self,
        raw: Any,
        path: tuple[Any, ...],
        inputs: Mapping[str, ValueSpec],
        parameters: Mapping[str, tuple[ValueSpec, Any]],
    ) -> tuple[list[Condition], list[tuple[Condition, ...]]]:
        conditions: list[Condition] = []
        any_of: list[tuple[Condition, ...]] = []
        for key, value in self.mapping(raw, path, "when").items():
            if key == "any":
                if value == [] or value is None:
                    self.error((*path, "any"), _("'any' needs at least one group of conditions"))
                for index, group in enumerate(self.sequence(value, (*path, "any"), "any")):
                    group_conditions: list[Condition] = []
                    for field_name, raw_condition in self.mapping(
                        group, (*path, "any", index), "any"
                    ).items():
                        group_conditions += self.condition(
                            field_name,
                            raw_condition,
                            (*path, "any", index, field_name),
                            inputs,
                            parameters,
                        )
                    any_of.append(tuple(group_conditions))
                continue
            conditions += self.condition(key, value, (*path, key), inputs, parameters)
        return conditions, any_of

    def outputs_of(
        self, raw: Any, path: tuple[Any, ...], outputs: Mapping[str, ValueSpec]
    ) -> dict[str, Any]:
        result = {}
        for key, value in self.mapping(raw, path, "then").items():
            spec = outputs.get(key)
            if spec is None:
                self.error(
                    (*path, key),
                    _(
                        "unknown output '%(name)s' (outputs: %(known)s)",
                        name=key,
                        known=", ".join(outputs),
                    ),
                )
                continue
            try:
                result[key] = check_output(spec, value)
            except ValueProblem as problem:
                self.error((*path, key), _("'%(field)s': %(problem)s", field=key, problem=problem))
        return result

    def actions(self, raw: Any, path: tuple[Any, ...]) -> list[tuple[str, dict[str, Any]]]:
        result = []
        for index, item in enumerate(self.sequence(raw, path, "actions")):
            item_path = (*path, index)
            if not isinstance(item, dict) or len(item) != 1:
                self.error(item_path, _("write each action as 'name: {argument: value}'"))
                continue
            ((name, arguments),) = item.items()
            resolved = self.vocabulary.action(name)
            if resolved is None:
                self.error(
                    item_path,
                    _(
                        "unknown action '%(name)s' (available: %(known)s)",
                        name=name,
                        known=", ".join(sorted(self.vocabulary.actions)),
                    ),
                )
                continue
            full_name, action = resolved
            arguments = self.mapping(arguments, (*item_path, name), _("arguments"))
            for argument, kind in action.arguments.items():
                if argument not in arguments:
                    self.error(
                        (*item_path, name),
                        _("action '%(name)s' needs '%(arg)s'", name=name, arg=argument),
                    )
                    continue
                value = arguments[argument]
                if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
                    self.error(
                        (*item_path, name, argument),
                        _(
                            "'%(arg)s' of action '%(name)s' must be %(type)s",
                            arg=argument,
                            name=name,
                            type=kind.__name__,
                        ),
                    )
            for argument in arguments:
                if argument not in action.arguments:
                    self.error(
                        (*item_path, name, argument),
                        _("action '%(name)s' takes no '%(arg)s'", name=name, arg=argument),
                    )
            result.append((full_name, arguments))
        return result

    def rule(
        self,
        raw: Any,
        path: tuple[Any, ...],
        inputs: Mapping[str, ValueSpec],
        outputs: Mapping[str, ValueSpec],
        parameters: Mapping[str, tuple[ValueSpec, Any]],
        rule_ids: list[str],
        first_index: int,
    ) -> list[Branch]:
        rule = self.mapping(raw, path, _("a rule"))
        if not rule:
            return []
        self.unknown_keys(rule, RULE_KEYS, path)
        rule_id = rule.get("id")
        if not isinstance(rule_id, str) or not RULE_ID.match(rule_id):
            self.error(path, _("each rule needs an id: lower-case letters, digits, - and _"))
            rule_id = f"rule-{path[-1] + 1}"
        elif rule_id in rule_ids:
            self.error((*path, "id"), _("the rule id '%(id)s' is used twice", id=rule_id))
        rule_ids.append(rule_id)
        line = self.located.position(path)[0]
        conditions, any_of = self.when(rule.get("when"), (*path, "when"), inputs, parameters)
        then = self.outputs_of(rule.get("then"), (*path, "then"), outputs)
        actions = tuple(self.actions(rule.get("actions"), (*path, "actions")))
        table = rule.get("table")
        if table is None:
            return [
                Branch(
                    first_index,
                    rule_id,
                    None,
                    line,
                    tuple(conditions),
                    tuple(any_of),
                    then,
                    actions,
                )
            ]
        table = self.mapping(table, (*path, "table"), "table")
        self.unknown_keys(table, {"columns", "rows"}, (*path, "table"))
        columns = self.sequence(table.get("columns"), (*path, "table", "columns"), "columns")
        parsed_columns: list[tuple[str, str, str]] = []  # (kind, name, op)
        for index, column in enumerate(columns):
            column_path = (*path, "table", "columns", index)
            if not isinstance(column, str):
                self.error(column_path, _("a column is a word like 'role' or 'amount.gt'"))
                parsed_columns.append(("skip", "", ""))
                continue
            if column.startswith("then."):
                name = column[5:]
                if name not in outputs:
                    self.error(column_path, _("unknown output '%(name)s'", name=name))
                parsed_columns.append(("output", name, ""))
                continue
            name, _dot, op = column.partition(".")
            op = op or "eq"
            if name not in inputs:
                self.error(column_path, _("unknown input '%(field)s'", field=name))
            elif op not in OPERATORS or op in ("in", "not_in"):
                self.error(column_path, _("unknown comparison '%(op)s'", op=op))
            elif op in ORDERING and not inputs[name].numeric:
                self.error(column_path, _("'%(op)s' needs a number", op=op))
            parsed_columns.append(("input", name, op))
        branches = []
        for row_index, row in enumerate(
            self.sequence(table.get("rows"), (*path, "table", "rows"), "rows")
        ):
            row_path = (*path, "table", "rows", row_index)
            if not isinstance(row, list) or len(row) != len(parsed_columns):
                width = len(row) if isinstance(row, list) else 1
                self.error(
                    row_path,
                    _(
                        "row %(row)s has %(cells)s cells but the table has %(columns)s columns",
                        row=row_index + 1,
                        cells=width,
                        columns=len(parsed_columns),
                    ),
                )
                continue
            row_conditions = list(conditions)
            row_outputs = dict(then)
            for cell_index, (cell, (kind, name, op)) in enumerate(
                zip(row, parsed_columns, strict=True)
            ):
                cell_path = (*row_path, cell_index)
                if cell is None or kind == "skip":
                    continue  # an empty cell matches anything
                if kind == "output" and name in outputs:
                    try:
                        row_outputs[name] = check_output(outputs[name], cell)
                    except ValueProblem as problem:
                        self.error(
                            cell_path, _("'%(field)s': %(problem)s", field=name, problem=problem)
                        )
                elif kind == "input" and name in inputs:
                    value = self.value_for(inputs[name], cell, cell_path, parameters)
                    row_conditions.append(Condition(name, op, value=value))
            branches.append(
                Branch(
                    first_index + len(branches),
                    rule_id,
                    row_index + 1,
                    self.located.position(row_path)[0],
                    tuple(row_conditions),
                    tuple(any_of),
                    row_outputs,
                    actions,
                )
            )
        if not branches:
            self.error((*path, "table"), _("the table has no rows"))
        return branches

    def aggregate(
        self, raw: Any, outputs: Mapping[str, ValueSpec], hit_policy: Any
    ) -> dict[str, str]:
        result = {}
        for key, how in self.mapping(raw, ("aggregate",), "aggregate").items():
            if hit_policy != "collect":
                self.error(("aggregate", key), _("aggregate only applies to hit_policy collect"))
            if key not in outputs:
                self.error(("aggregate", key), _("unknown output '%(name)s'", name=key))
            elif how not in AGGREGATES:
                self.error(
                    ("aggregate", key),
                    _("combine with one of %(ways)s", ways=", ".join(AGGREGATES)),
                )
            elif how in ("sum", "max", "min") and outputs[key].type not in (
                "int",
                "money",
                "number",
            ):
                self.error(("aggregate", key), _("'%(how)s' needs a numeric output", how=how))
            else:
                result[key] = how
        return result

    def tests(
        self,
        raw: Any,
        inputs: Mapping[str, ValueSpec],
        outputs: Mapping[str, ValueSpec],
        rule_ids: list[str],
    ) -> list[TestCase]:
        result = []
        for index, case in enumerate(self.sequence(raw, ("tests",), "tests")):
            path = ("tests", index)
            case = self.mapping(case, path, _("a test"))
            self.unknown_keys(case, {"name", "given", "expect"}, path)
            given = self.mapping(case.get("given"), (*path, "given"), "given")
            expect = self.mapping(case.get("expect"), (*path, "expect"), "expect")
            for key in given:
                if key not in inputs:
                    self.error((*path, "given", key), _("unknown input '%(field)s'", field=key))
            for key in expect:
                if key not in outputs and key != "rule":
                    self.error((*path, "expect", key), _("unknown output '%(name)s'", name=key))
            expected_rules = expect.get("rule")
            listed = expected_rules if isinstance(expected_rules, list) else [expected_rules]
            if isinstance(expected_rules, list) and not all(isinstance(r, str) for r in listed):
                self.error((*path, "expect", "rule"), _("list the rule ids as words"))
                listed = []
            for rule_id in listed:
                if rule_id is not None and not isinstance(rule_id, str):
                    self.error((*path, "expect", "rule"), _("list the rule ids as words"))
                elif rule_id is not None and rule_id != "none" and rule_id not in rule_ids:
                    self.error(
                        (*path, "expect", "rule"), _("no rule has the id '%(id)s'", id=rule_id)
                    )
            result.append(
                TestCase(
                    str(case.get("name") or f"test {index + 1}"),
                    given,
                    expect,
                    self.located.position(path)[0],
                )
            )
        return result


def check_rule_file(
    text: str, file: str, vocabulary: Vocabulary, expected_name: str | None = None
) -> tuple[RuleFile | None, list[RuleError]]:
    """Validate rule-file text; the RuleFile when it is sound, and every problem found."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        return None, [RuleError(file, 1, 1, _("the file is larger than 256 KiB"))]
    try:
        located = parse(text)
    except SourceError as error:
        return None, [
            RuleError(
                file,
                error.line,
                error.column,
                _("not valid YAML: %(problem)s", problem=error.message),
            )
        ]
    checker = _Checker(file, located, vocabulary)
    rule_file = checker.check(expected_name)
    if rule_file is None:
        return None, sorted(checker.errors, key=lambda e: (e.line, e.column))
    sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
    from dataclasses import replace

    return replace(rule_file, source=text, sha=sha), []
