"""``portal rules ...``: check, test, evaluate, simulate, publish, history, diff."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import click
from flask.cli import with_appcontext

from ..audit.recorder import acting_as
from ..extensions import db
from .engine import RuleEngineError, RuleInputError
from .service import PublishRefused, UnknownRuleset, rules


def _read(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise click.ClickException(f"cannot read {path}: {error}") from None


@click.group("rules")
def rules_command() -> None:
    """The policy's rule files."""


@rules_command.command("check")
@click.argument("paths", nargs=-1)
@with_appcontext
def check_command(paths: tuple[str, ...]) -> None:
    """Validate files (default: every rule file) and run their tests; errors as
    file:line:col and a non-zero exit."""
    service = rules()
    targets = [Path(p) for p in paths] or [
        p for entry in service.files().values() for p in entry.values()
    ]
    problems = 0
    for path in targets:
        result = service.check(_read(str(path)), name=path.stem, file=str(path))
        for error in result.errors:
            click.echo(str(error))
        for failure in result.failures:
            click.echo(
                f"{path}:{failure.case.line}:1: test '{failure.case.name}' failed: "
                f"{failure.problem}"
            )
        problems += len(result.errors) + len(result.failures)
        if result.ok:
            click.echo(f"{path}: ok ({len(result.results)} tests)")
    if problems:
        raise SystemExit(1)


@rules_command.command("test")
@click.argument("name", required=False)
@with_appcontext
def test_command(name: str | None) -> None:
    """Run the test cases of every rule file (or one) and print 'N passed, N failed'."""
    service = rules()
    names = [name] if name else sorted(service.files())
    passed = failed = 0
    for ruleset in names:
        found = service.file_text(ruleset)
        if found is None:
            raise click.ClickException(f"no rule file named '{ruleset}'")
        result = service.check(found[1], name=ruleset, file=f"{ruleset}.yaml")
        for error in result.errors:
            click.echo(f"ERROR {error}")
            failed += 1
        for case in result.results:
            if case.passed:
                passed += 1
            else:
                failed += 1
                click.echo(
                    f"FAIL {ruleset}: {case.case.name} (line {case.case.line}): {case.problem}"
                )
    click.echo(f"{passed} passed, {failed} failed")
    if failed:
        raise SystemExit(1)


@rules_command.command("eval")
@click.argument("name")
@click.option("--facts", "facts_path", required=True, help="A JSON file of facts, or - for stdin.")
@with_appcontext
def eval_command(name: str, facts_path: str) -> None:
    """Evaluate JSON facts against the version in force; prints the decisions as JSON."""
    try:
        facts = json.loads(_read(facts_path))
    except json.JSONDecodeError as error:
        raise click.ClickException(f"the facts are not JSON: {error}") from None
    try:
        evaluation = rules().evaluate(name, facts)
    except UnknownRuleset:
        raise click.ClickException(f"no ruleset named '{name}' is in force") from None
    except RuleInputError as error:
        click.echo(
            json.dumps(
                {"error": {"code": "invalid_facts", "fields": error.fields}},
                ensure_ascii=False,
                indent=2,
            )
        )
        raise SystemExit(2) from None
    except RuleEngineError as error:
        raise click.ClickException(str(error)) from None
    click.echo(json.dumps(evaluation.as_dict(), ensure_ascii=False, indent=2))


def _date(value: str) -> datetime:
    try:
        return datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise click.BadParameter(f"'{value}' is not a date like 2026-07-01") from None


@rules_command.command("simulate")
@click.argument("name")
@click.option("--draft", "draft_path", required=True, help="The draft rule file.")
@click.option("--since", required=True, help="First day of the period (YYYY-MM-DD).")
@click.option("--until", default=None, help="Day after the period (YYYY-MM-DD).")
@with_appcontext
def simulate_command(name: str, draft_path: str, since: str, until: str | None) -> None:
    """How many stored decisions since a date the draft would change, with examples."""
    from .simulate import simulate

    service = rules()
    check = service.check(_read(draft_path), name=name, file=draft_path, run_tests=False)
    if check.rule_file is None:
        for error in check.errors:
            click.echo(str(error))
        raise SystemExit(1)
    try:
        result = simulate(
            service,
            name,
            check.rule_file,
            _date(since),
            _date(until) if until else None,
            examples=5,
        )
    except UnknownRuleset:
        raise click.ClickException(f"no ruleset named '{name}' is in force") from None
    click.echo(
        f"{result.total} records, {result.changed} would change, "
        f"{result.unchanged} unchanged, {result.unusable} with inputs the draft refuses"
    )
    for change, count in sorted(result.by_change.items(), key=lambda item: -item[1]):
        click.echo(f"  {count:>7}  {change}")
    for example in result.examples:
        click.echo(json.dumps(example, ensure_ascii=False))


@rules_command.command("publish")
@click.argument("name", required=False)
@click.option("--file", "file_path", help="Publish this file as NAME (else: the files on disk).")
@click.option("--note", default="", help="Why (kept in the history).")
@with_appcontext
def publish_command(name: str | None, file_path: str | None, note: str) -> None:
    """Publish changed rule files (validated, tests passing), or one file as NAME."""
    service = rules()
    if file_path:
        if not name:
            raise click.ClickException("give the ruleset NAME to publish --file as")
        try:
            with acting_as("cli:rules publish"):
                row = service.publish(name, _read(file_path), "cli", note=note)
        except PublishRefused as refused:
            db.session.rollback()
            raise click.ClickException(f"not published:\n{refused}") from None
        click.echo(f"{name}: published version {row.version} ({row.sha[:12]})")
        return
    outcome = service.sync_files()
    for ruleset, what in sorted(outcome.items()):
        click.echo(f"{ruleset}: {what}")
    if not outcome:
        click.echo("every rule file is already in force")
    if "refused" in outcome.values():
        raise SystemExit(1)


@rules_command.command("history")
@click.argument("name")
@with_appcontext
def history_command(name: str) -> None:
    """Published versions of a ruleset, newest first."""
    versions = rules().history(name)
    if not versions:
        raise click.ClickException(f"no published version of '{name}'")
    for row in versions:
        when = row.published_at.strftime("%Y-%m-%d %H:%M") if row.published_at else "-"
        click.echo(
            f"v{row.version:<4} {when}  {row.origin:<9} {row.author:<16} {row.sha[:12]}  {row.note}"
        )


@rules_command.command("diff")
@click.argument("name")
@with_appcontext
def diff_command(name: str) -> None:
    """What the company changed in instance/rules/NAME.yaml against the default."""
    try:
        text = rules().diff(name)
    except UnknownRuleset:
        raise click.ClickException(f"no rule file named '{name}'") from None
    click.echo(text or f"{name}: the company uses the default unchanged")
