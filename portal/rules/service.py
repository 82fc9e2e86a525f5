"""The rules service: which version is in force, evaluating, publishing, files, history.

The database holds every published version, so all workers serve the same policy: each
process checks for a newer version every ``RULES_REFRESH_SECONDS`` (one small query) and
swaps it in whole. Files are the seeds and the company's copy: ``rules/NAME.yaml`` (and a
plugin's ``rules/``) ship the defaults, ``instance/rules/NAME.yaml`` overrides by name.
A changed file is published when it passes validation and its own tests; otherwise the
last good version stays in force and the problem is shown to the admins.
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Flask, current_app, has_request_context
from flask_babel import gettext as _

from ..audit.recorder import acting_as
from ..database import has_uncommitted_writes
from ..extensions import db
from ..models import utcnow
from .cases import CaseResult, run_cases
from .engine import Evaluation, RuleEngineError, RuleInputError, Runtime
from .model import RuleError, RuleFile
from .models import RuleDecision, RulesetStatus, RuleVersion
from .scratch import ScratchRuntime
from .validate import MAX_BYTES, Vocabulary, check_rule_file

log = logging.getLogger("portal.rules")

DEFAULT_RULES_DIR = Path(__file__).resolve().parent.parent.parent / "rules"


class UnknownRuleset(LookupError):
    """No published version and no file of that name."""


class PublishRefused(ValueError):
    """A version that may not be published: validation errors or failing test cases."""

    def __init__(self, errors: list[RuleError], failures: list[CaseResult]) -> None:
        lines = [str(e) for e in errors] + [
            f"test '{r.case.name}' (line {r.case.line}): {r.problem}" for r in failures
        ]
        super().__init__("\n".join(lines))
        self.errors, self.failures = errors, failures


@dataclass(frozen=True)
class Active:
    """The version in force for one ruleset in this process. ``version_id`` is None for
    a file not yet published (see ``RuleService.active``)."""

    version_id: int | None
    version: int
    rule_file: RuleFile


@dataclass(frozen=True)
class Check:
    """Everything known about a piece of rule-file text: the parsed file, problems, tests."""

    rule_file: RuleFile | None
    errors: list[RuleError]
    results: list[CaseResult] = field(default_factory=list)

    @property
    def failures(self) -> list[CaseResult]:
        """The test cases that failed."""
        return [result for result in self.results if not result.passed]

    @property
    def ok(self) -> bool:
        """Valid and every test case passes."""
        return self.rule_file is not None and not self.errors and not self.failures


def read_rule_file(path: Path) -> str:
    """A rule file's text; bytes that are not UTF-8 are shown as \ufffd, so validation
    reports them at their line instead of the page failing."""
    return normalize_text(path.read_bytes().decode("utf-8", errors="replace"))


def normalize_text(text: str) -> str:
    """One form for the same policy: a browser's CRLF line ends would otherwise make an
    unchanged file a "new" version with every line different."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def sha_of(text: str) -> str:
    """Content hash of a rule file (its identity in the engine and the history)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class RuleService:
    """One per application (``app.extensions["portal_rules"]``)."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.runtime = Runtime()
        self.scratch = ScratchRuntime()
        self._active: dict[str, Active] = {}
        self._checked_at = 0.0
        self._files_checked_at = 0.0
        self._lock = threading.Lock()

    # -- vocabulary and files ------------------------------------------------------

    def vocabulary(self) -> Vocabulary:
        """Actions and fact providers declared by the enabled plugins."""
        state = self.app.extensions["portal"]
        return Vocabulary(actions=state.rule_actions, fact_providers=state.fact_providers)

    def default_dirs(self) -> list[Path]:
        """Where default rule files ship: the repository's rules/ and each plugin's."""
        dirs = [Path(self.app.config.get("RULES_DEFAULT_DIR") or DEFAULT_RULES_DIR)]
        for record in self.app.extensions["portal"].host.loaded():
            if record.package_dir and (record.package_dir / "rules").is_dir():
                dirs.append(record.package_dir / "rules")
        return dirs

    def instance_dir(self) -> Path:
        """The company's own versions, overriding defaults by name."""
        return Path(
            self.app.config.get("RULES_INSTANCE_DIR") or Path(self.app.instance_path) / "rules"
        )

    def files(self) -> dict[str, dict[str, Path]]:
        """Every ruleset name with its default and/or instance file."""
        found: dict[str, dict[str, Path]] = {}
        for directory in self.default_dirs():
            for path in sorted(directory.glob("*.yaml")):
                found.setdefault(path.stem, {}).setdefault("default", path)
        instance = self.instance_dir()
        if instance.is_dir():
            for path in sorted(instance.glob("*.yaml")):
                found.setdefault(path.stem, {})["instance"] = path
        return found

    def file_text(self, name: str) -> tuple[str, str] | None:
        """(origin, text) of the file in force for ``name``: the company's, else the default."""
        paths = self.files().get(name, {})
        for origin in ("instance", "default"):
            if origin in paths:
                return origin, read_rule_file(paths[origin])
        return None

    def diff(self, name: str) -> str:
        """What the company changed against the default (unified diff; empty if nothing)."""
        paths = self.files().get(name)
        if not paths:
            raise UnknownRuleset(name)
        default = read_rule_file(paths["default"]) if "default" in paths else ""
        company = read_rule_file(paths["instance"]) if "instance" in paths else default
        return "".join(
            difflib.unified_diff(
                default.splitlines(keepends=True),
                company.splitlines(keepends=True),
                fromfile=f"rules/{name}.yaml (default)",
                tofile=f"instance/rules/{name}.yaml",
            )
        )

    # -- checking ------------------------------------------------------------------

    def check(
        self,
        text: str,
        name: str | None = None,
        file: str | None = None,
        run_tests: bool = True,
        draft: bool = True,
    ) -> Check:
        """Validate text and run its test cases. A ``draft`` runs its tests in the scratch
        process (see scratch.py); text about to be published runs in this one, where it
        will be registered anyway."""
        file = file or f"{name or 'rules'}.yaml"
        rule_file, errors = check_rule_file(
            normalize_text(text), file, self.vocabulary(), expected_name=name
        )
        if rule_file is None or not run_tests:
            return Check(rule_file, errors)
        runtime = (
            self.scratch
            if draft and self.app.config.get("RULES_SCRATCH_PROCESS", True)
            else self.runtime
        )
        try:
            runtime.register(rule_file)  # the engine's own limits are part of validity
            results = run_cases(runtime, rule_file)
        except RuleEngineError as error:
            return Check(None, [RuleError(file, 1, 1, str(error))])
        return Check(rule_file, errors, results)

    # -- versions in force -----------------------------------------------------------

    def _latest_published(self) -> dict[str, int]:
        rows = db.session.execute(
            sa.select(RuleVersion.ruleset, sa.func.max(RuleVersion.id))
            .where(RuleVersion.status == "published")
            .group_by(RuleVersion.ruleset)
        )
        return {ruleset: version_id for ruleset, version_id in rows}

    def refresh(self, force: bool = False, files: bool = True) -> None:
        """Bring this process's versions up to date with the database (at most every
        ``RULES_REFRESH_SECONDS``); a changed version is loaded fully, then swapped in."""
        now = time.monotonic()
        interval = self.app.config.get("RULES_REFRESH_SECONDS", 2)
        if not force and now - self._checked_at < interval:
            return
        if (
            files
            and self.app.config.get("RULES_WATCH_FILES", True)
            and (force or now - self._files_checked_at >= max(interval, 5))
            # A caller that has already written holds SQLite's write lock: publishing in
            # a second session would wait for it. The next refresh looks at the files.
            and not has_uncommitted_writes()
        ):
            self._files_checked_at = now
            # A session of its own (a fresh app context): publishing commits, refusing
            # rolls back, and neither may touch the work of the request that asked.
            with self.app.app_context():
                try:
                    self.sync_files()
                finally:
                    db.session.remove()
        with self._lock:  # read and swap as one step: never back to an older version
            latest = self._latest_published()
            for ruleset, version_id in latest.items():
                current = self._active.get(ruleset)
                if current is not None and current.version_id == version_id:
                    continue
                row = db.session.get(RuleVersion, version_id)
                rule_file, errors = check_rule_file(
                    row.source, f"{ruleset}.yaml", self.vocabulary(), expected_name=ruleset
                )
                if rule_file is None:
                    log.error(
                        "published %s v%s no longer loads: %s",
                        ruleset,
                        row.version,
                        "; ".join(map(str, errors)),
                    )
                    continue
                try:
                    self.runtime.register(rule_file)  # fully registered before it is visible
                except RuleEngineError as error:  # the last good version stays in force
                    log.error("published %s v%s cannot load: %s", ruleset, row.version, error)
                    continue
                self._active[ruleset] = Active(version_id, row.version, rule_file)
            for ruleset in set(self._active) - set(latest):
                del self._active[ruleset]
            self._checked_at = now

    def active(self, name: str) -> Active:
        """The version in force for ``name``. A file never published yet (a new default
        after an upgrade) whose first reader has already written in its transaction, so
        that publishing must wait for the next refresh, is read straight from the file:
        the same content, version 0, decisions without a version row."""
        self.refresh()
        found = self._active.get(name)
        if found is None:
            found = self._unpublished_file(name)
        if found is None:
            raise UnknownRuleset(name)
        return found

    def _unpublished_file(self, name: str) -> Active | None:
        loaded = self.file_text(name)
        if loaded is None:
            return None
        rule_file, _errors = check_rule_file(
            normalize_text(loaded[1]), f"{name}.yaml", self.vocabulary(), expected_name=name
        )
        if rule_file is None:
            return None
        try:
            self.runtime.register(rule_file)
        except RuleEngineError:
            return None
        return Active(None, 0, rule_file)

    def names(self) -> list[str]:
        """Rulesets with a version in force or a file."""
        self.refresh()
        return sorted(set(self._active) | set(self.files()))

    # -- evaluating ------------------------------------------------------------------

    def evaluate(
        self, name: str, facts: Mapping[str, Any], subject: tuple[str, Any] | None = None
    ) -> Evaluation:
        """Evaluate ``facts`` against the version in force. With ``subject`` (table, id)
        every decision is stored, so the record can later say why it was treated so."""
        active = self.active(name)
        evaluation = self.runtime.evaluate(active.rule_file, facts, version=active.version)
        if subject is not None:
            self.record(evaluation, subject, active.version_id)
        return evaluation

    def record(
        self, evaluation: Evaluation, subject: tuple[str, Any], version_id: int | None = None
    ) -> list[RuleDecision]:
        """Store the decisions of an evaluation that changed ``subject``; the caller commits.
        When no rule matched, one row with an empty ``rule`` says so: the record's latest
        inputs are then still the ones its page explains and simulation replays."""
        actor_id = None
        if has_request_context():
            from flask_login import current_user

            actor_id = current_user.id if current_user.is_authenticated else None
        rows = [
            RuleDecision(
                ruleset=evaluation.ruleset,
                version_id=version_id,
                sha=evaluation.sha,
                clause=evaluation.clause,
                rule=d.rule if d else "",
                row=d.row if d else None,
                line=d.line if d else None,
                subject_table=subject[0],
                subject_id=str(subject[1]),
                inputs=dict(evaluation.inputs),
                outputs=dict(d.outputs) if d else {},
                actions=d.as_dict()["actions"] if d else [],
                actor_id=actor_id,
            )
            for d in evaluation.decisions or (None,)
        ]
        db.session.add_all(rows)
        return rows

    def explain(self, subject_table: str, subject_id: Any) -> list[RuleDecision]:
        """The stored decisions about one record, newest first."""
        return list(
            db.session.scalars(
                sa.select(RuleDecision)
                .where(
                    RuleDecision.subject_table == subject_table,
                    RuleDecision.subject_id == str(subject_id),
                )
                .order_by(RuleDecision.at.desc(), RuleDecision.id.desc())
                .limit(100)
            )
        )

    # -- publishing ------------------------------------------------------------------

    def save_draft(self, name: str, text: str, author: Any = None, note: str = "") -> RuleVersion:
        """Keep an admin's unfinished edit (valid or not); the caller commits."""
        text = normalize_text(text)
        if len(text.encode("utf-8", "replace")) > MAX_BYTES or "\x00" in text:
            raise ValueError("a draft must be text of at most 256 KiB")
        draft = RuleVersion(
            ruleset=name,
            version=None,
            sha=sha_of(text),
            source=text,
            status="draft",
            origin="browser",
            note=note[:500],
            author_id=getattr(author, "id", None),
            author=getattr(author, "username", "") or "",
        )
        db.session.add(draft)
        return draft

    def publish(
        self,
        name: str,
        text: str,
        origin: str,
        author: Any = None,
        note: str = "",
        write_file: bool = True,
    ) -> RuleVersion:
        """Publish ``text`` as the next version of ``name`` and commit. Refused (nothing
        written) unless it is valid and every test case passes."""
        text = normalize_text(text)
        check = self.check(text, name, draft=False)
        if not check.ok:
            raise PublishRefused(check.errors, check.failures)
        latest = (
            db.session.scalar(
                sa.select(sa.func.max(RuleVersion.version)).where(RuleVersion.ruleset == name)
            )
            or 0
        )
        row = RuleVersion(
            ruleset=name,
            version=latest + 1,
            sha=check.rule_file.sha,
            source=text,
            status="published",
            origin=origin,
            note=note[:500],
            author_id=getattr(author, "id", None),
            author=getattr(author, "username", "") or "",
            published_at=utcnow(),
        )
        db.session.add(row)
        status = db.session.get(RulesetStatus, name)
        if status is not None:
            status.last_error = ""
        db.session.commit()
        if write_file and origin in ("browser", "cli", "rollback"):
            self._write_instance_file(name, text)
        self.refresh(force=True, files=False)
        return row

    def _write_instance_file(self, name: str, text: str) -> None:
        """Mirror the published policy into instance/rules/ (unless it equals the default)."""
        paths = self.files().get(name, {})
        default = paths.get("default")
        target = self.instance_dir() / f"{name}.yaml"
        if default is not None and read_rule_file(default) == text:
            if target.exists():
                target.unlink()
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_suffix(".yaml.tmp")
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(target)  # atomic: a reader never sees half a file

    def history(self, name: str) -> list[RuleVersion]:
        """Published versions, newest first."""
        return list(
            db.session.scalars(
                sa.select(RuleVersion)
                .where(RuleVersion.ruleset == name, RuleVersion.status == "published")
                .order_by(RuleVersion.version.desc())
                .limit(200)
            )
        )

    def published_version(self, name: str, version: int) -> RuleVersion | None:
        """Published version number ``version`` of ``name``."""
        return db.session.scalars(
            sa.select(RuleVersion).where(
                RuleVersion.ruleset == name,
                RuleVersion.version == version,
                RuleVersion.status == "published",
            )
        ).first()

    def rollback(self, name: str, version: int, author: Any = None) -> RuleVersion:
        """Publish an older version again, as a new version."""
        old = self.published_version(name, version)
        if old is None:
            raise UnknownRuleset(f"{name} v{version}")
        return self.publish(
            name, old.source, "rollback", author, note=_("Back to version %(n)s", n=version)
        )

    def _file_refused(self, name: str, sha: str, problem: str) -> None:
        """Remember why a file is not in force, for the admin pages (own commit)."""
        with acting_as("rules:file"):
            status = db.session.get(RulesetStatus, name) or RulesetStatus(ruleset=name)
            status.file_sha, status.last_error = sha, problem[:20000]
            status.checked_at = utcnow()
            db.session.add(status)
            db.session.commit()

    def sync_files(self) -> dict[str, str]:
        """Publish files that changed since the version in force was published (new
        defaults, a company's edited file). Returns what happened per ruleset."""
        outcome: dict[str, str] = {}
        latest = {
            row.ruleset: row
            for row in db.session.scalars(
                sa.select(RuleVersion).where(
                    RuleVersion.id.in_(
                        sa.select(sa.func.max(RuleVersion.id))
                        .where(RuleVersion.status == "published")
                        .group_by(RuleVersion.ruleset)
                    )
                )
            )
        }
        for name, paths in self.files().items():
            origin = "instance" if "instance" in paths else "default"
            path = paths[origin]
            try:
                text = normalize_text(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError) as error:
                self._file_refused(name, "", f"{path.name}: {error}")
                outcome[name] = "refused"
                continue
            sha = sha_of(text)
            current = latest.get(name)
            status = db.session.get(RulesetStatus, name)
            if current is not None and current.sha == sha:
                if status is not None and status.last_error:  # the file is good again
                    status.last_error, status.file_sha = "", sha
                    db.session.commit()
                continue
            if (
                origin == "default"
                and current is not None
                and current.origin in ("browser", "cli", "rollback")
            ):
                continue  # the company published its own version in the portal
            if status is not None and status.file_sha == sha and status.last_error:
                continue  # this broken content was already reported
            try:
                with acting_as(f"rules:{origin}-file"):
                    note = f"{'instance/rules' if origin == 'instance' else 'rules'}/{path.name}"
                    self.publish(name, text, origin, note=note, write_file=False)
                outcome[name] = "published"
            except (PublishRefused, RuleEngineError) as refused:
                db.session.rollback()
                self._file_refused(name, sha, str(refused))
                outcome[name] = "refused"
                log.error("rule file %s not published:\n%s", path, refused)
            except sa.exc.IntegrityError:
                db.session.rollback()  # another worker published it at the same moment
                outcome[name] = "published elsewhere"
            except Exception as error:  # one broken file never stops the others
                db.session.rollback()
                self._file_refused(name, sha, f"{type(error).__name__}: {error}")
                outcome[name] = "refused"
                log.exception("rule file %s could not be read", path)
        return outcome


class RuleBlocked(Exception):
    """A rule's ``block`` action: the change is refused with the rule's message."""


def apply_actions(evaluation: Evaluation, context: dict[str, Any]) -> dict[str, Any]:
    """Run the actions of every decision, in order; an action's error propagates (never
    swallowed). ``context`` carries what actions read and write (e.g. ``flags``)."""
    declared = current_app.extensions["portal"].rule_actions
    for decision in evaluation.decisions:
        for name, arguments in decision.actions:
            declared[name].func(context=context, decision=decision, **arguments)
    return context


def rules() -> RuleService:
    """The rules service of the current app."""
    return current_app.extensions["portal_rules"]


def evaluate(
    name: str, facts: Mapping[str, Any], subject: tuple[str, Any] | None = None
) -> Evaluation:
    """Evaluate ``facts`` with the rule file ``name`` in force (see RuleService.evaluate)."""
    return rules().evaluate(name, facts, subject)


MAX_SWEEP_ANSWERS = 50_000  # distinct inputs a sweep remembers before starting afresh


def evaluate_distinct(
    active: Active,
    names: Sequence[str],
    keys: Iterable[tuple[Any, ...]],
    answers: dict[tuple[Any, ...], Evaluation | None],
    **fixed: Any,
) -> None:
    """For a job sweeping many rows: evaluate the input tuples of ``keys`` (the values
    of the inputs ``names``, in that order; ``fixed`` adds the same inputs to every
    one) not yet in ``answers`` with the version ``active``, in one engine call, and
    store each evaluation in ``answers``: a run evaluates every distinct input once,
    and memory stays bounded (past ``MAX_SWEEP_ANSWERS`` it starts afresh). An input
    the file refuses (``RuleInputError``: an unknown code) is logged and answered None:
    one odd row must not stop the rest."""
    if len(answers) > MAX_SWEEP_ANSWERS:
        answers.clear()
    new = list(dict.fromkeys(key for key in keys if key not in answers))
    if not new:
        return
    facts = [{**dict(zip(names, key, strict=True)), **fixed} for key in new]
    runtime = rules().runtime
    try:
        found: list[Evaluation | None] = list(
            runtime.evaluate_many(active.rule_file, facts, version=active.version)
        )
    except RuleInputError:
        found = []
        for one in facts:
            try:
                found.append(runtime.evaluate(active.rule_file, one, version=active.version))
            except RuleInputError as error:
                log.error("%s cannot judge %s: %s", active.rule_file.name, one, error)
                found.append(None)
    answers.update(zip(new, found, strict=True))
