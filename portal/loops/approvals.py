"""One approval mechanism for every chapter.

A plugin declares an ``ApprovalKind`` (``portal_approval_kinds``); each request of that
kind is routed by the kind's rule file, never by code, so a company changes who
approves what by editing or publishing a rule file. Every request records which rule
file version and which rule routed it, and the decision is stored for the rules' "why?"
page (``/admin/rules/decisions/core_approval_request/<id>``).

Routing, from the rule file's outputs:

- ``decision: reject`` rejects at once (with the rule's ``reason``);
- ``approvers`` (or ``reviewers``, which some rule files use for the same list)
  lists route names asked in that order: ``supervisor`` is the requester's supervisor,
  ``supervisor_2``, ``supervisor_3`` ... the leaders further up the organisation tree;
  any other name is a role code, given to the nearest leader above the requester who
  holds the role, else to the role's pool (any active holder whose read scope reaches
  the requester may act);
- an explicit empty list, or ``decision: approve``/``auto`` without approvers, approves
  at once.

Nothing is silently dropped or auto-approved: a route name nobody answers to (no such
level, nobody holds the role, only the requester holds it) goes to the next leader up
the requester's chain above the steps already planned; with nobody left above, to the
pool of the highest-ranked role named in the route that someone other than the
requester can act in; with nobody there either, to the leader of the top of the
organisation; and if even that finds nobody, the submission is refused with a
message. A rule file that matches no rule, or routes without naming approvers, is
treated the same way. Each such step carries a note saying why.

The requester never approves their own request (not as a leader, pool member or
delegate). Consecutive steps that end with the same approver collapse into one step;
the route names stay visible on the step and on the request.

Acting on a step is one conditional UPDATE (``... WHERE id = :id AND status =
'pending'``) plus the request's optimistic lock, in the caller's transaction: two
approvers clicking at once can never approve twice or skip a step. Services never
commit; the caller does, once, and rolls back on any error.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from flask import abort, current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import defaultload, lazyload
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.exc import StaleDataError

from ..auth.models import Role, User, user_roles
from ..events import emit
from ..extensions import db
from ..models import as_utc, utcnow
from ..org.models import OrgUnit
from ..org.services import ValidationFailed
from ..plugins.types import ApprovalKind
from ..rules.engine import RuleInputError
from ..rules.service import UnknownRuleset, rules
from ..scoping import can_reach, visible_owner_ids
from .errors import NotAllowed, StateConflict
from .models import ApprovalRequest, ApprovalStep, Delegation
from .notifications import is_portal_path, notify, portal_path
from .service import LeaderChains, light_person, local_today, supervisor_level

# Where the rules service stores the routing decisions of a request.
SUBJECT_TABLE = "core_approval_request"
ACTIONS = ("approve", "reject", "return")
ACTION_STATUS = {"approve": "approved", "reject": "rejected", "return": "returned"}
# Decisions that approve at once when the rule names no approvers.
AUTO_DECISIONS = ("approve", "auto")
# Outputs that list the route names, in the order they are looked for.
ROUTE_OUTPUTS = ("approvers", "reviewers")
FINAL_STATUSES = ("approved", "rejected", "returned", "cancelled")
MAX_COMMENT = 2000
# A pool is told about a waiting step by notification; more holders than this are not.
POOL_NOTIFY_LIMIT = 200


# -- kinds and small helpers ---------------------------------------------------------


def approval_kinds() -> dict[str, ApprovalKind]:
    """Every approval kind the enabled plugins declared, by name."""
    return current_app.extensions["portal"].approval_kinds


def kind_label(kind: str) -> str:
    """What a kind is called in the reader's language (its name if no longer declared)."""
    declared = approval_kinds().get(kind)
    return str(declared.label) if declared is not None else kind


def request_link(request_id: int) -> str:
    """The page of one request, also outside a web request (jobs, CLI)."""
    return portal_path("approvals.detail", request_id=request_id)


def _json_safe(value: Any) -> Any:
    """Facts as JSON: decimals keep their digits as text, dates become ISO text."""
    if isinstance(value, Mapping):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set):
        return [_json_safe(item) for item in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date | datetime):
        return value.isoformat()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _subject(subject: Any) -> tuple[str | None, str | None]:
    """``(table, id)`` of a subject given as a pair or as an ORM record."""
    if subject is None:
        return None, None
    if isinstance(subject, tuple | list) and len(subject) == 2:
        return str(subject[0])[:64], str(subject[1])[:64]
    table = getattr(subject, "__tablename__", None)
    if table is None:
        raise TypeError("subject must be a (table, id) pair or a mapped record")
    key = sa.inspect(type(subject)).primary_key[0].key
    return table[:64], str(getattr(subject, key))[:64]


# -- who may act: the query the inbox uses ---------------------------------------------


def _running_on(today: date) -> tuple[Any, ...]:
    """The conditions of a delegation in force on ``today`` (not ended early)."""
    return (
        Delegation.starts_on <= today,
        Delegation.ends_on >= today,
        Delegation.ended_at.is_(None),
    )


def _delegators_of(user: User, today: date) -> sa.Select:
    """Ids of the people who delegated their approvals to ``user`` for ``today``."""
    return sa.select(Delegation.user_id).where(
        Delegation.delegate_id == user.id, *_running_on(today)
    )


def waiting_for(user: User, now: datetime | None = None) -> sa.Select:
    """A SELECT of the pending requests whose current step ``user`` may act on: steps
    assigned to them, steps of people who delegated to them today, and role-pool steps
    of requesters within their read scope. One statement, orderable by
    ``ApprovalRequest.created_at``: each kind of step is found on its own index
    (approver, status) or (role, status), so the cost follows what waits for ``user``,
    not how much waits in the whole company; the current step is joined (at most one
    per request)."""
    today = local_today(now)
    step = ApprovalStep
    pending = step.status == "pending"
    candidates = [
        sa.select(step.id).where(step.approver_id == user.id, pending),
        sa.select(step.id).where(step.approver_id.in_(_delegators_of(user, today)), pending),
    ]
    conditions = [ApprovalRequest.status == "pending", pending]
    role_codes = sorted(user.role_codes)
    if role_codes:
        in_pool = sa.and_(step.approver_id.is_(None), step.role_code.in_(role_codes))
        candidates.append(sa.select(step.id).where(in_pool, pending))
        owners = visible_owner_ids(user, "read")
        if owners is not None:  # a pool step only for requesters in the reader's scope
            conditions.append(
                sa.or_(step.approver_id.is_not(None), ApprovalRequest.requester_id.in_(owners))
            )
    return (
        sa.select(ApprovalRequest)
        .join(
            step,
            sa.and_(
                step.request_id == ApprovalRequest.id,
                step.position == ApprovalRequest.current_position,
            ),
        )
        .where(
            step.id.in_(sa.union_all(*candidates)),
            *conditions,
            # Nobody approves their own request, not even as someone's delegate.
            ApprovalRequest.requester_id != user.id,
        )
    )


def current_step(request: ApprovalRequest) -> ApprovalStep | None:
    """The step now waiting for a decision, if the request is still pending."""
    if request.status != "pending":
        return None
    for candidate in request.steps:
        if candidate.position == request.current_position and candidate.status == "pending":
            return candidate
    return None


def can_act(request: ApprovalRequest, user: User, now: datetime | None = None) -> bool:
    """Whether ``user`` may approve, reject or return the request's current step now."""
    if user is None or not getattr(user, "active", False) or request.requester_id == user.id:
        return False
    if current_step(request) is None:
        return False
    statement = waiting_for(user, now).where(ApprovalRequest.id == request.id)
    return db.session.execute(statement.with_only_columns(sa.literal(1))).first() is not None


def can_read(request: ApprovalRequest, user: User, now: datetime | None = None) -> bool:
    """Whether ``user`` may see a request: it is in their read scope, or they are or were
    one of its approvers (personally, by acting, or as a delegate who may act now)."""
    if can_reach(request, user, "read"):
        return True
    involved = (
        sa.select(sa.literal(1))
        .where(
            ApprovalStep.request_id == request.id,
            sa.or_(
                ApprovalStep.approver_id == user.id,
                ApprovalStep.acted_by_id == user.id,
                ApprovalStep.on_behalf_of_id == user.id,
            ),
        )
        .limit(1)
    )
    if db.session.execute(involved).first() is not None:
        return True
    return can_act(request, user, now)


def decided_by(user: User) -> sa.Select:
    """A SELECT of the requests in which ``user`` acted on a step (for themselves or as
    a delegate), newest action first."""
    last_acted = (
        sa.select(ApprovalStep.request_id, sa.func.max(ApprovalStep.acted_at).label("acted_at"))
        .where(ApprovalStep.acted_by_id == user.id)
        .group_by(ApprovalStep.request_id)
        .subquery()
    )
    return (
        sa.select(ApprovalRequest)
        .join(last_acted, last_acted.c.request_id == ApprovalRequest.id)
        .order_by(last_acted.c.acted_at.desc(), ApprovalRequest.id.desc())
    )


def requested_by(user: User, status: str | None = None) -> sa.Select:
    """A SELECT of ``user``'s own requests, newest first, optionally of one status."""
    statement = sa.select(ApprovalRequest).where(ApprovalRequest.requester_id == user.id)
    if status:
        statement = statement.where(ApprovalRequest.status == status)
    return statement.order_by(ApprovalRequest.created_at.desc(), ApprovalRequest.id.desc())


BOXES = ("waiting", "mine", "decided")


def shown_with_steps() -> list[Any]:
    """Loader options for requests shown with their steps: the people on them by name
    only (not their roles, grants and units, which would cost statements per page)."""
    return [
        light_person(ApprovalRequest.requester),
        defaultload(ApprovalRequest.steps).options(
            light_person(ApprovalStep.approver), light_person(ApprovalStep.acted_by)
        ),
    ]


def box(user: User, name: str, status: str | None = None) -> sa.Select:
    """The list behind one box of the pages and the API: ``waiting`` for ``user`` (oldest
    first), ``mine`` (``status`` filters) or ``decided`` by them."""
    if name == "mine":
        statement = requested_by(user, status)
    elif name == "decided":
        statement = decided_by(user)
    else:
        statement = waiting_for(user).order_by(ApprovalRequest.created_at, ApprovalRequest.id)
    return statement.options(*shown_with_steps())


def get_readable_or_404(request_id: int, user: User) -> ApprovalRequest:
    """One request ``user`` may read (``can_read``), for the pages and the API alike;
    anything else answers 404, so its existence stays hidden."""
    found = db.session.get(ApprovalRequest, request_id, options=shown_with_steps())
    if found is None or not can_read(found, user):
        abort(404)
    return found


# -- resolving route names to people --------------------------------------------------


@dataclass
class _Planned:
    """One step before it is written: who (a person or a role pool) and why."""

    routes: list[str]
    approver: User | None = None
    role_code: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def key(self) -> tuple[int | None, str | None]:
        return (self.approver.id if self.approver else None, self.role_code)


def _ancestor_unit_ids(user: User) -> list[int]:
    unit = user.unit
    if unit is None:
        return []
    return [int(part) for part in unit.path.strip("/").split("/") if part]


def leader_chain(user: User) -> list[User]:
    """The active leaders above ``user``, nearest first, each once, never ``user``: the
    supervisor, then the supervisor's supervisor and so on (``LeaderChains``, the walk
    the escalation sweep uses too; two queries)."""
    ordered = LeaderChains().of_user(user)
    if not ordered:
        return []
    people = {
        person.id: person
        for person in db.session.scalars(
            sa.select(User).where(User.id.in_(ordered), User.active.is_(True))
        )
    }
    return [people[person_id] for person_id in ordered if person_id in people]


def pool_members(role_code: str, requester: User, limit: int = POOL_NOTIFY_LIMIT) -> list[User]:
    """Active holders of ``role_code`` other than the requester whose read scope reaches
    the requester: the people who may act on a pool step (three queries)."""
    holders = list(
        db.session.scalars(
            sa.select(User)
            .join(user_roles, user_roles.c.user_id == User.id)
            .join(Role, Role.id == user_roles.c.role_id)
            .where(Role.code == role_code, User.active.is_(True), User.id != requester.id)
            .order_by(User.id)
            .limit(limit)
        )
    )
    if not holders:
        return []
    ancestor_ids = _ancestor_unit_ids(requester)
    leading_above = set(
        db.session.scalars(
            sa.select(OrgUnit.leader_id).where(
                OrgUnit.id.in_(ancestor_ids), OrgUnit.leader_id.is_not(None)
            )
        )
        if ancestor_ids
        else []
    )
    members = []
    for holder in holders:
        scope = holder.scope_for("read")
        if scope == "all" or (scope == "team" and holder.id in leading_above):
            members.append(holder)
    return members


class _Resolver:
    """Turns the rule file's route names into planned steps for one requester."""

    def __init__(self, requester: User, names: Sequence[str]) -> None:
        self.requester = requester
        self.names = list(names)
        self.chain = leader_chain(requester)
        self.ranks = dict(db.session.execute(sa.select(Role.code, Role.rank)).all())
        self.level = 0  # how far up the chain the steps planned so far reach
        self.approver_ids: set[int] = set()  # people already approving in this plan
        self._pools: dict[str, set[int]] = {}

    def _pool(self, role_code: str) -> set[int]:
        if role_code not in self._pools:
            members = pool_members(role_code, self.requester, limit=50)
            self._pools[role_code] = {member.id for member in members}
        return self._pools[role_code]

    def _leader(self, index: int, routes: list[str], notes: list[str]) -> _Planned:
        self.level = max(self.level, index + 1)
        return _Planned(routes, approver=self.chain[index], notes=notes)

    def resolve(self, name: str) -> _Planned:
        """The step for one route name, escalated when nobody answers to it."""
        level = supervisor_level(name)
        if level is not None:
            if level <= len(self.chain):
                return self._leader(level - 1, [name], [])
            note = _("No supervisor at level %(n)s above the requester.", n=level)
            return self.escalate([name], note)
        if name in self.ranks:
            for index, leader in enumerate(self.chain):
                if name in leader.role_codes:
                    return self._leader(index, [name], [])
            if self._pool(name):
                return _Planned([name], role_code=name)
            note = _("Nobody other than the requester can act for the role %(role)s.", role=name)
            return self.escalate([name], note)
        return self.escalate([name], _("%(name)s names neither a level nor a role.", name=name))

    def escalate(self, routes: list[str], why: str) -> _Planned:
        """Where a step nobody answers to goes instead (see the module docstring)."""
        if self.level < len(self.chain):
            return self._leader(self.level, routes, [why, _("Sent to the next leader up.")])
        route_roles = sorted(
            {name for name in self.names if name in self.ranks},
            key=lambda code: (-self.ranks[code], code),
        )
        for code in route_roles:
            # A pool whose members all approve earlier steps anyway would add nothing.
            if self._pool(code) - self.approver_ids:
                note = _("Sent to everyone with the role %(role)s.", role=code)
                return _Planned(routes, role_code=code, notes=[why, note])
        top = self._top_leader()
        if top is not None:
            note = _("Sent to the head of the organisation.")
            return _Planned(routes, approver=top, notes=[why, note])
        raise ValidationFailed(
            {
                "approvers": [
                    _(
                        "Nobody can approve this request: %(why)s Ask an administrator to "
                        "complete the organisation or the roles.",
                        why=why,
                    )
                ]
            }
        )

    def _top_leader(self) -> User | None:
        return db.session.scalars(
            sa.select(User)
            .join(OrgUnit, OrgUnit.leader_id == User.id)
            .where(
                OrgUnit.parent_id.is_(None),
                User.active.is_(True),
                User.id != self.requester.id,
            )
            .order_by(OrgUnit.id)
            .limit(1)
        ).first()


def plan_steps(requester: User, names: Sequence[str]) -> list[_Planned]:
    """The steps for a route, in order, consecutive duplicates collapsed into one."""
    resolver = _Resolver(requester, names)
    planned: list[_Planned] = []
    if not names:
        planned.append(resolver.escalate([], _("The rule file named no approver.")))
        return planned
    for name in names:
        step = resolver.resolve(str(name))
        if step.approver is not None:
            resolver.approver_ids.add(step.approver.id)
        if planned and planned[-1].key == step.key:
            planned[-1].routes.extend(step.routes)
            planned[-1].notes.extend(step.notes)
            continue
        planned.append(step)
    return planned


def _route_names(outputs: Mapping[str, Any]) -> list[str] | None:
    """The route list of the outputs (None when the file gave none)."""
    for name in ROUTE_OUTPUTS:
        if name in outputs and outputs[name] is not None:
            value = outputs[name]
            if isinstance(value, str):
                return [value] if value else []
            return [str(item) for item in value]
    return None


# -- submitting ------------------------------------------------------------------------


def submit(
    kind: str,
    title: str,
    requester: User,
    facts: Mapping[str, Any],
    *,
    subject: Any = None,
    subject_link: str = "",
    now: datetime | None = None,
) -> ApprovalRequest:
    """Open a request of a declared ``kind`` and route it with the kind's rule file in
    force now; the caller commits. ``subject`` is the plugin's record, a ``(table, id)``
    pair or the record itself; ``subject_link`` its page. The request may come back
    already approved or rejected when the rule file decides at once (``on_decided`` has
    then been called). Raises ValidationFailed (an undeclared kind, facts the rule file
    refuses: per field) before anything is written."""
    declared = approval_kinds().get(kind)
    if declared is None:
        raise ValidationFailed({"kind": [_("Unknown approval kind: %(kind)s", kind=kind)]})
    title = (title or "").strip()
    if not title:
        raise ValidationFailed({"title": [_("Give the request a title.")]})
    if requester is None or not requester.active:
        raise ValidationFailed({"requester": [_("Only an active person can ask for approval.")]})
    subject_link = (subject_link or "").strip()
    if subject_link and (len(subject_link) > 500 or not is_portal_path(subject_link)):
        # Shown as a link on the request's page: never to another site or a script.
        raise ValidationFailed({"subject_link": [_("The link must be a path inside the portal.")]})
    subject_table, subject_id = _subject(subject)
    request = ApprovalRequest(
        kind=kind,
        title=title[:200],
        requester=requester,
        requester_id=requester.id,
        subject_table=subject_table,
        subject_id=subject_id,
        subject_link=subject_link,
        status="pending",
        current_position=0,
        round=1,
        facts=_json_safe(dict(facts or {})),
    )
    evaluation, active = _evaluate(declared, facts)
    _apply_route(request, declared, evaluation, active, actor=requester, now=now)
    return request


def _evaluate(declared: ApprovalKind, facts: Mapping[str, Any]) -> tuple[Any, Any]:
    """Evaluate the facts with the version of the kind's rule file in force now."""
    service = rules()
    try:
        active = service.active(declared.ruleset)
    except UnknownRuleset:
        message = _(
            "The rule file %(name)s that routes this request is missing.", name=declared.ruleset
        )
        raise ValidationFailed({"kind": [message]}) from None
    try:
        evaluation = service.runtime.evaluate(active.rule_file, facts, version=active.version)
    except RuleInputError as error:
        fields = {name: list(messages) for name, messages in error.fields.items()}
        raise ValidationFailed(fields) from None
    return evaluation, active


def _apply_route(
    request: ApprovalRequest,
    declared: ApprovalKind,
    evaluation: Any,
    active: Any,
    actor: User | None,
    now: datetime | None,
) -> None:
    """Record the explanation, then decide at once or write the steps of this round."""
    outputs = dict(evaluation.outputs)
    names = _route_names(outputs)
    decision = outputs.get("decision")
    planned: list[_Planned] = []
    if decision != "reject" and names != [] and not (names is None and decision in AUTO_DECISIONS):
        planned = plan_steps(request.requester, names or [])  # may refuse: nothing written yet
    db.session.add(request)
    request.ruleset = evaluation.ruleset
    request.rule_version = active.version
    request.rule_sha = evaluation.sha
    request.rule_id = ", ".join(evaluation.rules)[:120]
    request.reason = str(outputs.get("reason") or "")
    request.routes = list(names or [])
    db.session.flush()  # the id the stored decisions refer to
    rules().record(evaluation, (SUBJECT_TABLE, request.id), active.version_id)
    when = now or utcnow()
    if decision == "reject":
        _finish(request, "rejected", actor, when)
        return
    if not planned:
        _finish(request, "approved", actor, when)
        return
    first_position = max((step.position for step in request.steps), default=0) + 1
    new_steps = []
    for offset, plan in enumerate(planned):
        step = ApprovalStep(
            position=first_position + offset,
            round=request.round,
            route=", ".join(plan.routes)[:64] or "-",
            approver_id=plan.approver.id if plan.approver else None,
            role_code=plan.role_code,
            status="pending" if offset == 0 else "waiting",
            note=" ".join(plan.notes),
        )
        request.steps.append(step)
        new_steps.append(step)
    request.current_position = first_position
    db.session.flush()
    _tell_waiting(request, new_steps[0], now)


# -- acting ----------------------------------------------------------------------------


def _claim_step(step: ApprovalStep, values: dict[str, Any]) -> None:
    """Move a pending step on, or raise StateConflict when someone else already did:
    the one statement that makes concurrent clicks safe."""
    result = db.session.execute(
        sa.update(ApprovalStep)
        .where(ApprovalStep.id == step.id, ApprovalStep.status == "pending")
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise StateConflict(_("This step was already decided by someone else."))
    for key, value in values.items():
        set_committed_value(step, key, value)
    db.session.expire(step, ["acted_by", "on_behalf_of"])


def _check_comment(action: str, comment: str) -> str:
    comment = (comment or "").strip()
    if action in ("reject", "return") and not comment:
        raise ValidationFailed({"comment": [_("Say why: a comment is required.")]})
    if len(comment) > MAX_COMMENT:
        raise ValidationFailed(
            {"comment": [_("At most %(n)s characters.", n=MAX_COMMENT)]},
        )
    return comment


def act(
    request: ApprovalRequest,
    actor: User,
    action: str,
    comment: str = "",
    now: datetime | None = None,
) -> ApprovalRequest:
    """Approve, reject or return (for changes) the request's current step; the caller
    commits. Raises ValidationFailed (unknown action, missing comment), StateConflict
    (already decided, or decided by someone else meanwhile: nothing written) or
    NotAllowed (not this person's step)."""
    if action not in ACTIONS:
        raise ValidationFailed({"action": [_("Choose approve, reject or return.")]})
    step = current_step(request)
    if request.status != "pending" or step is None:
        raise StateConflict(_("This request was already decided."))
    if not can_act(request, actor, now):
        _raise_if_moved_on(step)
        raise NotAllowed(_("This step is not waiting for you."))
    # Only for the person in turn: nobody else learns what a decision would need.
    comment = _check_comment(action, comment)
    when = now or utcnow()
    on_behalf = step.approver_id if step.approver_id not in (None, actor.id) else None
    _claim_step(
        step,
        {
            "status": ACTION_STATUS[action],
            "acted_by_id": actor.id,
            "acted_at": when,
            "comment": comment,
            "on_behalf_of_id": on_behalf,
        },
    )
    try:
        if action == "approve":
            following = [
                later
                for later in request.steps
                if later.round == step.round
                and later.position > step.position
                and later.status == "waiting"
            ]
            if following:
                following[0].status = "pending"
                request.current_position = following[0].position
                db.session.flush()
                _tell_waiting(request, following[0], now)
            else:
                _finish(request, "approved", actor, when)
        else:
            _skip_rest(request, step.round)
            _finish(request, ACTION_STATUS[action], actor, when)
    except StaleDataError:
        raise StateConflict(_("This request was changed by someone else meanwhile.")) from None
    return request


def _raise_if_moved_on(step: ApprovalStep) -> None:
    """StateConflict when the database says the step was decided meanwhile (this
    session's copy may predate someone else's commit)."""
    status = db.session.scalar(sa.select(ApprovalStep.status).where(ApprovalStep.id == step.id))
    if status != "pending":
        raise StateConflict(_("This step was already decided by someone else."))


def _skip_rest(request: ApprovalRequest, round_number: int) -> None:
    for later in request.steps:
        if later.round == round_number and later.status == "waiting":
            later.status = "skipped"


def _finish(request: ApprovalRequest, status: str, actor: User | None, when: datetime) -> None:
    """A final outcome: the request, the plugin's record (``on_decided``, same
    transaction), the event and the requester's notification."""
    request.status = status
    request.current_position = 0
    request.decided_at = when
    db.session.flush()  # the optimistic lock is checked before the plugin writes
    declared = approval_kinds().get(request.kind)
    if declared is not None and declared.on_decided is not None:
        declared.on_decided(request)
    emit(
        "core.approval_decided",
        actor_id=getattr(actor, "id", None),
        request_id=request.id,
        kind=request.kind,
        status=status,
        subject_table=request.subject_table,
        subject_id=request.subject_id,
    )
    if actor is not None and actor.id == request.requester_id:
        return  # they did it themselves (submitted, cancelled): nothing to tell
    titles = {
        "approved": _l("Approved: %(title)s", title=request.title),
        "rejected": _l("Rejected: %(title)s", title=request.title),
        "returned": _l("Returned for changes: %(title)s", title=request.title),
        "cancelled": _l("Cancelled: %(title)s", title=request.title),
    }
    last = next((s for s in reversed(request.steps) if s.acted_at is not None), None)
    body = last.comment if last is not None and last.status == status else request.reason
    notify(
        request.requester_id,
        "core.approval_decided",
        titles[status],
        body or "",
        request_link(request.id),
    )


def _tell_waiting(request: ApprovalRequest, step: ApprovalStep, now: datetime | None) -> None:
    """Notify whoever may act on a newly pending step: the approver and their delegate
    of today, or the members of the role pool."""
    title = _l("Waiting for your approval: %(title)s", title=request.title)
    body = _l("%(kind)s from %(name)s", kind=kind_label(request.kind), name=_name(request))
    link = request_link(request.id)
    if step.approver_id is not None:
        people = [step.approver_id]
        today = local_today(now)
        people += list(
            db.session.scalars(
                sa.select(Delegation.delegate_id).where(
                    Delegation.user_id == step.approver_id,
                    Delegation.delegate_id != request.requester_id,
                    *_running_on(today),
                )
            )
        )
    else:
        people = [member.id for member in pool_members(step.role_code or "", request.requester)]
    for person_id in dict.fromkeys(people):
        notify(person_id, "core.approval_waiting", title, body, link)


def _name(request: ApprovalRequest) -> str:
    requester = request.requester or db.session.get(User, request.requester_id)
    return requester.display_name if requester else "?"


def resubmit(
    request: ApprovalRequest,
    actor: User,
    facts: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> ApprovalRequest:
    """Send a returned request again (the requester, after the changes asked for); the
    caller commits. It is routed anew by the rule file in force now, with new steps;
    the earlier rounds stay as history. ``facts`` replaces the stored facts."""
    if actor.id != request.requester_id:
        raise NotAllowed(_("Only the requester can send it again."))
    if request.status != "returned":
        raise StateConflict(_("Only a request returned for changes can be sent again."))
    declared = approval_kinds().get(request.kind)
    if declared is None:
        raise ValidationFailed({"kind": [_("Unknown approval kind: %(kind)s", kind=request.kind)]})
    given = dict(facts) if facts is not None else dict(request.facts or {})
    evaluation, active = _evaluate(declared, given)
    request.facts = _json_safe(given)
    request.status = "pending"
    request.decided_at = None
    request.round = request.round + 1
    try:
        _apply_route(request, declared, evaluation, active, actor=actor, now=now)
    except StaleDataError:
        raise StateConflict(_("This request was changed by someone else meanwhile.")) from None
    return request


def submit_or_resubmit(
    previous: ApprovalRequest | None,
    kind: str,
    title: str,
    requester: User,
    facts: Mapping[str, Any],
    *,
    subject: Any = None,
    subject_link: str = "",
    now: datetime | None = None,
) -> ApprovalRequest:
    """Send a plugin's record for approval (again): when its latest request ``previous``
    was returned for changes to this same requester, that request goes on as a new round
    with the new ``facts`` (one history per record); otherwise a new request is opened
    (``title``, ``subject`` and ``subject_link`` as for ``submit``). The caller commits;
    it first puts its record in its waiting state without the old request's id, since
    the rule file may decide at once and call ``on_decided`` inside."""
    if (
        previous is not None
        and previous.status == "returned"
        and previous.requester_id == requester.id
    ):
        return resubmit(previous, requester, facts, now=now)
    return submit(
        kind, title, requester, facts, subject=subject, subject_link=subject_link, now=now
    )


def cancel(request: ApprovalRequest, actor: User, now: datetime | None = None) -> ApprovalRequest:
    """Withdraw a pending request (the requester only); the caller commits. The kind's
    ``on_decided`` is called with the status ``cancelled`` so the plugin's record leaves
    its waiting state."""
    if actor.id != request.requester_id:
        raise NotAllowed(_("Only the requester can cancel it."))
    step = current_step(request)
    if request.status != "pending" or step is None:
        raise StateConflict(_("This request was already decided."))
    when = now or utcnow()
    note = " ".join(filter(None, [step.note, _("Cancelled by the requester.")]))
    _claim_step(step, {"status": "skipped", "acted_at": when, "note": note})
    try:
        _skip_rest(request, step.round)
        _finish(request, "cancelled", actor, when)
    except StaleDataError:
        raise StateConflict(_("This request was changed by someone else meanwhile.")) from None
    return request


# -- delegation ------------------------------------------------------------------------


def set_delegation(
    user: User,
    delegate: User | None,
    starts_on: date | None,
    ends_on: date | None,
    reason: str = "",
    now: datetime | None = None,
) -> Delegation:
    """Let ``delegate`` act on the approvals waiting for ``user`` from ``starts_on`` to
    ``ends_on`` (inclusive, company calendar days); the caller commits. Refused per
    field: oneself, an inactive person, dates in the wrong order or in the past, an
    overlap with another of the user's delegations, a delegate away themselves then."""
    errors: dict[str, list[str]] = {}
    today = local_today(now)
    if delegate is None or not delegate.active:
        errors["delegate_id"] = [_("Choose an active person.")]
    elif delegate.id == user.id:
        errors["delegate_id"] = [_("You cannot delegate to yourself.")]
    if starts_on is None:
        errors["starts_on"] = [_("Give the first day.")]
    if ends_on is None:
        errors["ends_on"] = [_("Give the last day.")]
    elif ends_on < today:
        errors["ends_on"] = [_("The last day is in the past.")]
    if starts_on and ends_on and ends_on < starts_on:
        errors["ends_on"] = [_("The last day cannot be before the first day.")]
    reason = (reason or "").strip()
    if len(reason) > 200:
        errors["reason"] = [_("At most %(n)s characters.", n=200)]
    if not errors:
        overlap = db.session.scalars(_overlapping(user.id, starts_on, ends_on)).first()
        if overlap is not None:
            errors["starts_on"] = [
                _(
                    "You already delegate to %(name)s from %(start)s to %(end)s.",
                    name=overlap.delegate.display_name,
                    start=overlap.starts_on.isoformat(),
                    end=overlap.ends_on.isoformat(),
                )
            ]
        away = db.session.scalars(_overlapping(delegate.id, starts_on, ends_on)).first()
        if away is not None:
            errors["delegate_id"] = [
                _(
                    "%(name)s is away then and delegates to %(other)s.",
                    name=delegate.display_name,
                    other=away.delegate.display_name,
                )
            ]
    if errors:
        raise ValidationFailed(errors)
    delegation = Delegation(
        user_id=user.id,
        delegate_id=delegate.id,
        starts_on=starts_on,
        ends_on=ends_on,
        reason=reason,
    )
    db.session.add(delegation)
    db.session.flush()
    return delegation


def _overlapping(user_id: int, starts_on: date, ends_on: date) -> sa.Select:
    """The delegations ``user_id`` gave that are not ended and share a day with the range."""
    return sa.select(Delegation).where(
        Delegation.user_id == user_id,
        Delegation.ended_at.is_(None),
        Delegation.starts_on <= ends_on,
        Delegation.ends_on >= starts_on,
    )


def end_delegation(delegation: Delegation, actor: User, now: datetime | None = None) -> Delegation:
    """End a delegation early (back from leave) or withdraw one not yet begun; the row
    stays as the record of who could act when. The caller commits."""
    if actor.id != delegation.user_id:
        raise NotAllowed(_("Only the person who delegated can end it."))
    if delegation.ended_at is not None or delegation.ends_on < local_today(now):
        raise StateConflict(_("This delegation has already ended."))
    delegation.ended_at = now or utcnow()
    db.session.flush()
    return delegation


def delegations_of(user: User) -> sa.Select:
    """A SELECT of the delegations ``user`` gave, newest first."""
    return (
        sa.select(Delegation)
        .where(Delegation.user_id == user.id)
        .order_by(Delegation.starts_on.desc(), Delegation.id.desc())
    )


def delegations_to(user: User, now: datetime | None = None) -> sa.Select:
    """A SELECT of the running or coming delegations given to ``user``."""
    return (
        sa.select(Delegation)
        .where(
            Delegation.delegate_id == user.id,
            Delegation.ended_at.is_(None),
            Delegation.ends_on >= local_today(now),
        )
        .order_by(Delegation.starts_on, Delegation.id)
    )


def delegation_state(delegation: Delegation, now: datetime | None = None) -> str:
    """``coming``, ``running``, ``ended`` (early) or ``over``."""
    today = local_today(now)
    if delegation.ended_at is not None:
        return "ended"
    if delegation.ends_on < today:
        return "over"
    return "coming" if delegation.starts_on > today else "running"


# -- where it stands -------------------------------------------------------------------


@dataclass(frozen=True)
class TimelineEntry:
    """One step as the requester and the approvers see it."""

    position: int
    round: int
    route: str
    approver: User | None
    role_code: str | None
    role_label: str | None
    status: str
    acted_by: User | None
    on_behalf_of: User | None
    acted_at: datetime | None
    comment: str
    note: str
    current: bool


def role_labels(codes: Iterable[str] | None = None) -> dict[str, str]:
    """Role code -> label in the reader's language, for pool steps (one query, without
    the roles' grants); ``codes`` limits it to those roles."""
    statement = sa.select(Role).options(lazyload(Role.grants))
    if codes is not None:
        statement = statement.where(Role.code.in_(set(codes)))
    return {role.code: role.label for role in db.session.scalars(statement)}


def timeline(request: ApprovalRequest) -> list[TimelineEntry]:
    """Every step of every round in order: route, approver or pool, status, who acted,
    when, with which comment, and why a step differs from its route name."""
    steps = sorted(request.steps, key=lambda step: step.position)
    codes = {step.role_code for step in steps if step.role_code}
    labels = role_labels(codes) if codes else {}
    people_ids = {step.on_behalf_of_id for step in steps if step.on_behalf_of_id}
    people = {}
    if people_ids:
        statement = sa.select(User).where(User.id.in_(people_ids))
        light = statement.options(lazyload(User.roles), lazyload(User.unit))
        people = {person.id: person for person in db.session.scalars(light)}
    return [
        TimelineEntry(
            position=step.position,
            round=step.round,
            route=step.route,
            approver=step.approver,
            role_code=step.role_code,
            role_label=labels.get(step.role_code or "", step.role_code),
            status=step.status,
            acted_by=step.acted_by,
            on_behalf_of=people.get(step.on_behalf_of_id),
            acted_at=as_utc(step.acted_at),
            comment=step.comment,
            note=step.note,
            current=request.status == "pending"
            and step.position == request.current_position
            and step.status == "pending",
        )
        for step in steps
    ]
