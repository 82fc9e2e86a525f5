"""Prospects, customers, the shared pool and contacts (P3.1.2 screening and the prospect
database, P3.1.3 contact and follow-up).

Services only: every write of the customer file goes through here so the pages, the
JSON API, the import and the jobs apply the same checks (duplicates, screening, scope,
optimistic locks). Nothing commits except the scheduler job; callers commit once.

The policy's numbers live in rule files, never here:
- ``rules/prospect_screening.yaml`` judges a prospect each time its file is saved (the
  verdict is stored in ``Customer.qualified`` and the decision with the record, so the
  page can say why); its input declarations are also the industry and region choices.
- ``rules/follow_up.yaml`` gives the follow-up cadence per stage and grade, says when a
  follow-up is overdue and whom to tell, and when a neglected prospect goes back to the
  shared pool (公海). Its optional parameter ``pool_claims_per_day`` caps claims.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from portal.audit.recorder import acting_as
from portal.auth.models import User
from portal.database import keyset_batches
from portal.events import emit
from portal.extensions import db
from portal.listing import id_arg, like_pattern
from portal.loops import service as loops
from portal.loops.errors import NotAllowed, StateConflict
from portal.loops.models import OPEN_STATUSES, LoopItem
from portal.loops.notifications import notify, portal_path
from portal.models import as_utc, utcnow
from portal.org.services import ValidationFailed
from portal.rules.engine import Evaluation, RuleInputError
from portal.rules.service import (
    RuleBlocked,
    UnknownRuleset,
    apply_actions,
    evaluate_distinct,
    rules,
)
from portal.scoping import can_reach, scoped

from .common import customers_for
from .models import (
    ACTIVITY_KINDS,
    COMPANY_SIZES,
    CUSTOMER_GRADES,
    CUSTOMER_SOURCES,
    CUSTOMER_STAGES,
    Activity,
    ContactPerson,
    Customer,
    Opportunity,
)
from .vocabulary import label

log = logging.getLogger("plugins.sales.customers")

SCREENING_RULESET = "prospect_screening"
FOLLOW_UP_RULESET = "follow_up"
# The inputs of rules/follow_up.yaml, in the order of a sweep's input tuple.
SWEEP_FACTS = ("record_type", "grade", "days_since_last_contact", "has_open_opportunity")
SUBJECT_TABLE = Customer.__tablename__  # loop items and rule decisions name customers so
FOLLOW_UP_TYPE = "sales.follow_up"
SWEEP_ACTOR = "job:sales.follow_up_sweep"
CLAIM_CAP_PARAMETER = "pool_claims_per_day"

# The fields of the customer file a person (form, API, import row) may give.
FIELDS = (
    "name",
    "phone",
    "tax_id",
    "email",
    "industry",
    "size",
    "region",
    "city",
    "address",
    "source",
    "need",
    "grade",
    "notes",
    "stage",
)
LENGTHS = {
    "name": 200,
    "phone": 40,
    "tax_id": 40,
    "email": 200,
    "city": 80,
    "address": 300,
    "need": 10_000,
    "notes": 10_000,
}
MAX_TEXT = 10_000
UNKNOWN = "unknown"  # the screening file's word for "not given"
# Who an overdue follow-up is escalated to, in rising order (follow_up.yaml escalate_to).
ESCALATION_RANK = {"none": 0, "supervisor": 1, "manager": 2}
# How far a contact may be recorded ahead of the clock (phones and servers disagree).
CLOCK_SKEW = timedelta(minutes=10)

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# The unified social credit code (统一社会信用代码, GB 32100-2015) never uses I, O, Z, S, V.
_USCC_CHARS = frozenset("0123456789ABCDEFGHJKLMNPQRTUWXY")
_OLD_TAX_ID = re.compile(r"^[0-9A-Z]{15}$")


# -- normalising for the duplicate check -------------------------------------------------


def name_key(name: str | None) -> str:
    """A company name as the duplicate check compares it: full-width folded to
    half-width, lower-cased, without spaces, punctuation or symbols. Company suffixes
    (有限公司, Co. Ltd) are kept: "华为技术" and "华为技术有限公司" are different files."""
    text = unicodedata.normalize("NFKC", name or "").casefold()
    return "".join(c for c in text if unicodedata.category(c)[0] in "LN")[:200]


def phone_key(phone: str | None) -> str | None:
    """Digits only, without the country code of China (+86, 0086): "+86 138-0013-8000"
    and "13800138000" are one number; "+86 21 6123 4567" is "02161234567"."""
    raw = (phone or "").strip()
    digits = "".join(c for c in unicodedata.normalize("NFKC", raw) if c.isdigit())
    if not digits:
        return None
    stripped = False
    if digits.startswith("0086"):
        digits, stripped = digits[4:], True
    elif raw.startswith("+86") or (len(digits) == 13 and digits.startswith("861")):
        digits, stripped = digits[2:], True
    if stripped and digits and not digits.startswith(("0", "1")):
        digits = "0" + digits  # a landline: the trunk prefix the country code replaced
    return digits or None


def normalize_tax_id(tax_id: str | None) -> str | None:
    """Upper-case, without spaces and hyphens; None when empty."""
    text = unicodedata.normalize("NFKC", tax_id or "")
    text = "".join(c for c in text if not c.isspace() and c != "-").upper()
    return text or None


def tax_id_problem(tax_id: str) -> str | None:
    """Why a (normalised) tax ID cannot be right, or None: 18 characters of the unified
    social credit code, or 15 of an old tax registration number."""
    if len(tax_id) == 18:
        if not set(tax_id) <= _USCC_CHARS:
            return _(
                "A unified social credit code uses digits and capital letters except "
                "I, O, Z, S and V."
            )
        return None
    if len(tax_id) == 15:
        if not _OLD_TAX_ID.match(tax_id):
            return _("An old tax registration number uses digits and capital letters only.")
        return None
    return _(
        "A tax ID has 18 characters (unified social credit code) or 15 (old tax "
        "registration number); this one has %(n)s.",
        n=len(tax_id),
    )


# -- duplicates --------------------------------------------------------------------------


def find_duplicates(
    name: str | None, phone: str | None, tax_id: str | None, exclude_id: int | None = None
) -> list[Customer]:
    """Existing customers with the same normalised name, phone or tax ID, whoever owns
    them (an unscoped read: the caller says no more than "exists, owner X" about them).
    One query on three indexed columns."""
    conditions = []
    key = name_key(name)
    if key:
        conditions.append(Customer.name_key == key)
    number = phone_key(phone)
    if number:
        conditions.append(Customer.phone_key == number)
    tax = normalize_tax_id(tax_id)
    if tax:
        conditions.append(Customer.tax_id == tax)
    if not conditions:
        return []
    statement = sa.select(Customer).where(sa.or_(*conditions))
    if exclude_id is not None:
        statement = statement.where(Customer.id != exclude_id)
    statement = statement.options(loops.light_person(Customer.owner))
    return list(db.session.scalars(statement.order_by(Customer.id).limit(20)))


def _held_by(customer: Customer) -> str:
    if customer.owner_id is None:
        return _("in the shared pool")
    return _("owner %(name)s", name=customer.owner.display_name if customer.owner else "?")


def _may_name(found: Customer, viewer: User | None) -> bool:
    """Whether a duplicate's own name may be told to ``viewer``: a pool prospect (the
    pool is open to all) or a file in their read scope. Anyone else's customer is only
    "on file (owner X)": a phone number or tax ID must not reveal whose customer it is."""
    if viewer is None:
        return False
    return found.owner_id is None or can_reach(found, viewer)


def duplicate_errors(
    name: str | None,
    phone: str | None,
    tax_id: str | None,
    exclude_id: int | None = None,
    viewer: User | None = None,
) -> dict[str, list[str]]:
    """Per-field messages saying each duplicate key is on file and who holds it; the
    existing record's name only when ``viewer`` may read it (P2 scope)."""
    errors: dict[str, list[str]] = {}
    key, number, tax = name_key(name), phone_key(phone), normalize_tax_id(tax_id)
    for found in find_duplicates(name, phone, tax_id, exclude_id):
        held = _held_by(found)
        named = _may_name(found, viewer)
        if key and found.name_key == key and "name" not in errors:
            errors["name"] = [
                _(
                    "A customer with this name already exists: %(name)s (%(held)s).",
                    name=found.name,
                    held=held,
                )
                if named
                else _("A customer with this name already exists (%(held)s).", held=held)
            ]
        if number and found.phone_key == number and "phone" not in errors:
            errors["phone"] = [
                _(
                    "This phone number is already on file: %(name)s (%(held)s).",
                    name=found.name,
                    held=held,
                )
                if named
                else _("This phone number is already on file (%(held)s).", held=held)
            ]
        if tax and found.tax_id == tax and "tax_id" not in errors:
            errors["tax_id"] = [
                _(
                    "This tax ID is already on file: %(name)s (%(held)s).",
                    name=found.name,
                    held=held,
                )
                if named
                else _("This tax ID is already on file (%(held)s).", held=held)
            ]
    return errors


# -- screening (rules/prospect_screening.yaml) ----------------------------------------------


def screening_codes(input_name: str) -> list[str]:
    """The codes the screening file declares for ``industry`` or ``region`` (without
    "unknown"): the choices of the customer form, so adding one is a rule-file change."""
    try:
        declared = rules().active(SCREENING_RULESET).rule_file.inputs.get(input_name)
    except UnknownRuleset:
        return []
    values = list(getattr(declared, "values", None) or ())
    return [value for value in values if value != UNKNOWN]


def industry_choices() -> list[tuple[str, str]]:
    """(code, label) of the industries, for select fields (market notes use them too)."""
    return [(code, label("industry", code)) for code in screening_codes("industry")]


def region_choices() -> list[tuple[str, str]]:
    """(code, label) of the sales regions."""
    return [(code, label("region", code)) for code in screening_codes("region")]


# Words people type (imports, the API) for the industry and region codes, besides the
# codes and their labels. Provinces name their sales region.
INDUSTRY_ALIASES = {
    "manufacturing": (
        "manufacture",
        "manufacturer",
        "factory",
        "制造",
        "制造业",
        "生产制造",
        "工厂",
    ),
    "machinery": (
        "machine",
        "machines",
        "equipment",
        "机械",
        "设备",
        "装备",
        "机械设备",
        "装备制造",
    ),
    "electronics": (
        "electronic",
        "electrical",
        "semiconductor",
        "电子",
        "电子电器",
        "半导体",
        "电器",
    ),
    "automotive": ("auto", "automobile", "car", "cars", "汽车", "汽配", "汽车零部件"),
    "medical": (
        "healthcare",
        "health",
        "pharma",
        "pharmaceutical",
        "hospital",
        "医疗",
        "医药",
        "医院",
        "医疗器械",
        "生物医药",
    ),
    "energy": (
        "utilities",
        "utility",
        "power",
        "oil",
        "gas",
        "能源",
        "电力",
        "新能源",
        "光伏",
        "石油",
    ),
    "chemicals": ("chemical", "化工", "化学"),
    "food": ("beverage", "foodandbeverage", "食品", "饮料", "食品饮料"),
    "construction": (
        "realestate",
        "building",
        "property",
        "建筑",
        "建材",
        "房地产",
        "地产",
        "工程",
    ),
    "logistics": ("transport", "transportation", "shipping", "物流", "运输", "快递", "仓储"),
    "retail": (
        "wholesale",
        "ecommerce",
        "trade",
        "trading",
        "零售",
        "批发",
        "电商",
        "商贸",
        "贸易",
    ),
    "education": ("school", "university", "教育", "学校", "培训"),
    "government": ("publicsector", "public", "gov", "政府", "政府机关", "事业单位", "公共事业"),
    "it_services": (
        "it",
        "software",
        "internet",
        "itservices",
        "软件",
        "互联网",
        "信息技术",
        "IT服务",
    ),
    "finance": ("banking", "bank", "insurance", "financial", "金融", "银行", "保险", "证券"),
    "agriculture": ("farming", "农业", "农林牧渔", "养殖"),
    "other": ("others", "其他", "其它"),
}
REGION_ALIASES = {
    "east": ("eastchina", "华东", "上海", "江苏", "浙江", "安徽", "福建", "江西", "山东"),
    "north": ("northchina", "华北", "北京", "天津", "河北", "山西", "内蒙古"),
    "south": ("southchina", "华南", "广东", "广西", "海南", "深圳", "广州"),
    "central": ("centralchina", "华中", "河南", "湖北", "湖南"),
    "southwest": ("southwestchina", "西南", "重庆", "四川", "贵州", "云南", "西藏"),
    "northwest": ("northwestchina", "西北", "陕西", "甘肃", "青海", "宁夏", "新疆"),
    "northeast": ("northeastchina", "东北", "辽宁", "吉林", "黑龙江"),
    "overseas": ("abroad", "international", "foreign", "海外", "国外", "境外"),
}


def canonical_code(group: str, value: str | None) -> str | None:
    """The industry or region code ``value`` means: a code, its label in the reader's
    language, or a common word for it ("制造业", "East", "浙江"); None when unknown.
    Only codes the screening file declares are answered."""
    wanted = name_key(value)
    if not wanted:
        return None
    aliases = INDUSTRY_ALIASES if group == "industry" else REGION_ALIASES
    for code in screening_codes(group):
        words = {code, label(group, code), *aliases.get(code, ())}
        if wanted in {name_key(word) for word in words}:
            return code
    return None


def screening_facts(data: Mapping[str, Any]) -> dict[str, Any]:
    """The facts the screening file is asked with; a value it does not declare (an
    industry an admin removed) counts as not given."""
    facts: dict[str, Any] = {"has_need": bool(str(data.get("need") or "").strip())}
    for name in ("industry", "size", "region", "source"):
        value = str(data.get(name) or "")
        if name == "size":
            allowed = COMPANY_SIZES
        elif name == "source":
            allowed = CUSTOMER_SOURCES
        else:
            allowed = tuple(screening_codes(name))
        if value and value in allowed:
            facts[name] = value
    return facts


def _screen(data: Mapping[str, Any]) -> tuple[Evaluation, int]:
    """Ask the screening file (before anything is written: see loops.close)."""
    active = rules().active(SCREENING_RULESET)
    evaluation = rules().runtime.evaluate(
        active.rule_file, screening_facts(data), version=active.version
    )
    try:
        apply_actions(evaluation, {})
    except RuleBlocked as blocked:
        raise ValidationFailed({"qualified": [str(blocked)]}) from None
    return evaluation, active.version_id


def latest_screening(customer: Customer) -> Any:
    """The stored screening decision of the customer's last save (rule, inputs,
    outputs, version), or None: what the page shows as "why"."""
    from portal.rules.models import RuleDecision

    return db.session.scalars(
        sa.select(RuleDecision)
        .where(
            RuleDecision.subject_table == SUBJECT_TABLE,
            RuleDecision.subject_id == str(customer.id),
            RuleDecision.ruleset == SCREENING_RULESET,
        )
        .order_by(RuleDecision.id.desc())
        .limit(1)
    ).first()


# -- the customer file ------------------------------------------------------------------------


def _text(value: Any) -> str:
    return ("" if value is None else str(value)).strip()


def customer_values(customer: Customer) -> dict[str, Any]:
    """The file's editable values, as forms and the API take them."""
    return {name: getattr(customer, name) or "" for name in FIELDS}


def _validated(
    values: Mapping[str, Any], current: Customer | None
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Every field checked at once: (clean values, per-field messages). Fields left out
    of ``values`` keep the record's value (an API PATCH sends only what changes)."""
    base = customer_values(current) if current is not None else {}
    data: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for name in FIELDS:
        raw = values[name] if name in values else base.get(name, "")
        text = _text(raw)
        limit = LENGTHS.get(name)
        if limit and len(text) > limit:
            errors[name] = [_("At most %(n)s characters.", n=limit)]
        data[name] = text
    if not data["name"]:
        errors["name"] = [_("Give the company's name.")]
    elif not name_key(data["name"]):
        errors["name"] = [_("The name needs at least one letter or digit.")]
    if data["phone"] and "phone" not in errors:
        number = phone_key(data["phone"])
        if number is None or not 5 <= len(number) <= 20:
            errors["phone"] = [_("Not a phone number: give 5 to 20 digits.")]
    if data["tax_id"] and "tax_id" not in errors:
        data["tax_id"] = normalize_tax_id(data["tax_id"]) or ""
        problem = tax_id_problem(data["tax_id"])
        if problem:
            errors["tax_id"] = [problem]
    if data["email"] and "email" not in errors and not _EMAIL.match(data["email"]):
        errors["email"] = [_("Not an email address.")]
    for name in ("industry", "region"):
        if data[name] and name not in errors:
            code = canonical_code(name, data[name])
            if code is None:
                allowed = ", ".join(label(name, c) for c in screening_codes(name))
                if name == "industry":
                    message = _("Unknown industry; choose one of: %(values)s.", values=allowed)
                else:
                    message = _("Unknown region; choose one of: %(values)s.", values=allowed)
                errors[name] = [message]
            else:
                data[name] = code
    choices = {
        "size": COMPANY_SIZES,
        "grade": CUSTOMER_GRADES,
    }
    for name, allowed in choices.items():
        if data[name] and data[name] not in allowed:
            errors[name] = [_("Choose one of: %(values)s.", values=", ".join(allowed))]
    data["source"] = data["source"] or "other"
    if data["source"] not in CUSTOMER_SOURCES:
        errors["source"] = [_("Choose one of: %(values)s.", values=", ".join(CUSTOMER_SOURCES))]
    data["stage"] = data["stage"] or (current.stage if current is not None else "prospect")
    if data["stage"] not in CUSTOMER_STAGES:
        errors["stage"] = [_("Choose one of: %(values)s.", values=", ".join(CUSTOMER_STAGES))]
    elif current is not None and current.stage == "customer" and data["stage"] == "prospect":
        errors["stage"] = [_("A customer does not become a prospect again.")]
    return data, errors


def validation_errors(
    values: Mapping[str, Any], current: Customer | None = None, viewer: User | None = None
) -> dict:
    """Every per-field problem of ``values`` (fields and duplicates) without writing:
    a page whose form already failed shows these too, so all messages come at once."""
    data, errors = _validated(values, current)
    exclude = current.id if current is not None else None
    for field, messages in duplicate_errors(
        data["name"], data["phone"], data["tax_id"], exclude_id=exclude, viewer=viewer
    ).items():
        errors.setdefault(field, messages)
    return errors


_ACTOR: Any = object()  # create_customer's default owner: whoever creates it


def _check_owner(owner: User | None, actor: User, errors: dict[str, list[str]]) -> None:
    if owner is None or owner.id == actor.id:
        return
    if not owner.active:
        errors["owner_id"] = [_("Choose an active person as owner.")]
    elif not loops.in_write_scope(actor, owner):
        errors["owner_id"] = [_("You can only give customers to people you are responsible for.")]


def create_customer(
    values: Mapping[str, Any],
    actor: User,
    *,
    owner: User | None = _ACTOR,
    now: datetime | None = None,
) -> Customer:
    """Add a prospect or customer to the session (the caller commits). Refused with
    per-field messages (model field names) when a field is wrong or the name, phone or
    tax ID is already on file; judged by the screening file, whose verdict and reason
    are stored. ``owner=None`` puts it straight into the shared pool."""
    now = as_utc(now) or utcnow()
    owner = actor if owner is _ACTOR else owner
    data, errors = _validated(values, None)
    _check_owner(owner, actor, errors)
    for field, messages in duplicate_errors(
        data["name"], data["phone"], data["tax_id"], viewer=actor
    ).items():
        errors.setdefault(field, messages)
    if errors:
        raise ValidationFailed(errors)
    evaluation, version_id = _screen(data)
    suggested = evaluation.outputs.get("grade")
    customer = Customer(
        name=data["name"],
        name_key=name_key(data["name"]),
        phone=data["phone"],
        phone_key=phone_key(data["phone"]),
        tax_id=data["tax_id"] or None,
        email=data["email"],
        industry=data["industry"],
        size=data["size"],
        region=data["region"],
        city=data["city"],
        address=data["address"],
        source=data["source"],
        need=data["need"],
        grade=data["grade"] or suggested or "C",
        notes=data["notes"],
        stage=data["stage"],
        qualified=bool(evaluation.outputs.get("qualified")),
        owner=owner,
        owner_id=owner.id if owner is not None else None,
        in_pool=owner is None,
        released_at=now if owner is None else None,
        created_by_id=actor.id,
        became_customer_at=now if data["stage"] == "customer" else None,
        created_at=now,
        updated_at=now,
    )
    db.session.add(customer)
    db.session.flush()
    _record(evaluation, customer.id, version_id, now)
    if customer.stage == "customer":
        emit("sales.customer_won", actor_id=actor.id, customer_id=customer.id)
    return customer


def update_customer(
    customer: Customer,
    values: Mapping[str, Any],
    actor: User,
    *,
    owner: User | None = _ACTOR,
    expected_version: int | None = None,
    now: datetime | None = None,
) -> Customer:
    """Change the file (fields left out keep their value), judged again by the
    screening file. ``expected_version`` is the lock version the person read: a file
    changed since is a conflict (StateConflict, 409), never a silent overwrite.
    ``owner`` hands the customer (and its open follow-ups) to someone else; a pool
    prospect given an owner leaves the pool as a claim does (new clock, first
    follow-up), and ``owner=None`` leaves it in the pool."""
    now = as_utc(now) or utcnow()
    if expected_version is not None and expected_version != customer.lock_version:
        raise StateConflict(conflict_text())
    data, errors = _validated(values, customer)
    new_owner = customer.owner if owner is _ACTOR else owner
    from_pool = customer.owner_id is None and new_owner is not None
    if owner is not _ACTOR and new_owner is None and customer.owner_id is not None:
        errors["owner_id"] = [_("Release a prospect to the shared pool with its own button.")]
    elif new_owner is not None and new_owner.id != customer.owner_id:
        _check_owner(new_owner, actor, errors)
    if new_owner is None and data["stage"] == "customer" and customer.stage == "prospect":
        errors.setdefault("stage", []).append(
            _("A prospect in the shared pool becomes a customer once someone owns it.")
        )
    for field, messages in duplicate_errors(
        data["name"], data["phone"], data["tax_id"], exclude_id=customer.id, viewer=actor
    ).items():
        errors.setdefault(field, messages)
    if errors:
        raise ValidationFailed(errors)
    evaluation, version_id = _screen(data)
    promoted = customer.stage == "prospect" and data["stage"] == "customer"
    grade = data["grade"] or evaluation.outputs.get("grade") or customer.grade or "C"
    cadence = None
    if from_pool:  # the rule file first, before anything is written
        cadence = _cadence_evaluation(customer.stage, grade, has_open_opportunity(customer.id))
    for name in FIELDS:
        if name in ("stage", "tax_id", "grade"):
            continue
        setattr(customer, name, data[name])
    customer.name_key = name_key(data["name"])
    customer.phone_key = phone_key(data["phone"])
    customer.tax_id = data["tax_id"] or None
    customer.grade = grade
    customer.qualified = bool(evaluation.outputs.get("qualified"))
    customer.updated_at = now
    if new_owner is not None and new_owner.id != customer.owner_id:
        _hand_over_follow_ups(customer, new_owner, actor, now)
        customer.owner = new_owner
    if from_pool:
        customer.in_pool = False
        customer.claimed_at = now  # the follow-up clock starts again, as on a claim
    db.session.flush()
    _record(evaluation, customer.id, version_id, now)
    if from_pool:
        _schedule_follow_up(customer, actor, None, "", cadence, now)
    if promoted:
        promote_to_customer(customer, actor, now=now)
    return customer


def _hand_over_follow_ups(customer: Customer, new_owner: User, actor: User, now: datetime) -> None:
    for item in open_follow_ups(customer.id):
        if item.owner_id == new_owner.id:
            continue
        try:
            loops.reassign(item, actor, new_owner, note=_("The customer changed hands."), now=now)
        except (NotAllowed, StateConflict):
            continue  # left with its owner, who may still close it


def _record(evaluation: Evaluation, customer_id: int, version_id: int, now: datetime) -> None:
    for row in rules().record(evaluation, (SUBJECT_TABLE, customer_id), version_id):
        row.at = now


def conflict_text() -> str:
    return _("Someone changed this customer meanwhile. Here it is as it stands now.")


def mark_contacted(customer: Customer, at: datetime) -> None:
    """The customer was contacted at ``at``: the follow-up clock starts again (a
    contact recorded late never moves it backwards)."""
    at = as_utc(at)
    current = as_utc(customer.last_contact_at)
    if current is None or at > current:
        customer.last_contact_at = at


def promote_to_customer(customer: Customer, actor: User, now: datetime | None = None) -> None:
    """A prospect becomes a customer (a signed contract, or by hand): the stage, the
    date, and the event ``sales.customer_won``. Nothing happens to a customer."""
    if customer.stage == "customer":
        return
    now = as_utc(now) or utcnow()
    customer.stage = "customer"
    customer.became_customer_at = now
    db.session.flush()
    emit("sales.customer_won", actor_id=getattr(actor, "id", None), customer_id=customer.id)


def customer_path(customer_id: int) -> str:
    """The customer's page (also outside a request: jobs link to it)."""
    return portal_path("sales_customers.detail", customer_id=customer_id)


# -- contact persons -------------------------------------------------------------------------


CONTACT_LENGTHS = {"name": 100, "title": 100, "phone": 40, "email": 200}


def save_contact(
    customer: Customer,
    values: Mapping[str, Any],
    contact: ContactPerson | None = None,
) -> ContactPerson:
    """Add or change a person at the customer. There is always one primary contact
    when there is any: the first one added, or whoever is marked primary."""
    data = {name: _text(values.get(name)) for name in CONTACT_LENGTHS}
    errors: dict[str, list[str]] = {}
    for name, limit in CONTACT_LENGTHS.items():
        if len(data[name]) > limit:
            errors[name] = [_("At most %(n)s characters.", n=limit)]
    if not data["name"]:
        errors["name"] = [_("Give the person's name.")]
    if data["phone"] and "phone" not in errors:
        number = phone_key(data["phone"])
        if number is None or not 5 <= len(number) <= 20:
            errors["phone"] = [_("Not a phone number: give 5 to 20 digits.")]
    if data["email"] and "email" not in errors and not _EMAIL.match(data["email"]):
        errors["email"] = [_("Not an email address.")]
    if errors:
        raise ValidationFailed(errors)
    primary = bool(values.get("is_primary"))
    others = db.session.scalar(
        sa.select(sa.func.count())
        .select_from(ContactPerson)
        .where(
            ContactPerson.customer_id == customer.id,
            ContactPerson.is_primary.is_(True),
            ContactPerson.id != (contact.id if contact is not None else -1),
        )
    )
    if not others:
        primary = True  # the only one, or nobody else is primary
    if contact is None:
        contact = ContactPerson(customer_id=customer.id)
        db.session.add(contact)
    for name, value in data.items():
        setattr(contact, name, value)
    contact.is_primary = primary
    db.session.flush()
    if primary:
        for other in db.session.scalars(
            sa.select(ContactPerson).where(
                ContactPerson.customer_id == customer.id,
                ContactPerson.id != contact.id,
                ContactPerson.is_primary.is_(True),
            )
        ):
            other.is_primary = False
    return contact


def delete_contact(contact: ContactPerson) -> None:
    """Remove a person; if they were the primary contact, the longest-known other
    person becomes primary."""
    customer_id, was_primary = contact.customer_id, contact.is_primary
    db.session.delete(contact)
    db.session.flush()
    if was_primary:
        successor = db.session.scalars(
            sa.select(ContactPerson)
            .where(ContactPerson.customer_id == customer_id)
            .order_by(ContactPerson.id)
            .limit(1)
        ).first()
        if successor is not None:
            successor.is_primary = True


def contacts_of(customer: Customer) -> list[ContactPerson]:
    """The customer's people, the primary contact first."""
    return list(
        db.session.scalars(
            sa.select(ContactPerson)
            .where(ContactPerson.customer_id == customer.id)
            .order_by(ContactPerson.is_primary.desc(), ContactPerson.name, ContactPerson.id)
            .limit(200)
        )
    )


# -- lists ---------------------------------------------------------------------------------

SORTS: dict[str, Any] = {
    "recent": lambda: (Customer.id.desc(),),
    "name": lambda: (Customer.name, Customer.id),
    "last_contact": lambda: (Customer.last_contact_at.asc().nulls_first(), Customer.id),
    "next_follow_up": lambda: (Customer.next_follow_up_at.asc().nulls_last(), Customer.id),
    "grade": lambda: (Customer.grade, Customer.name, Customer.id),
}
SORT_LABELS = {
    "recent": _l("Newest first"),
    "name": _l("Name"),
    "last_contact": _l("Longest without contact"),
    "next_follow_up": _l("Next follow-up"),
    "grade": _l("Grade"),
}
TRUE_WORDS = ("1", "true", "yes", "on")


def _arg(args: Mapping[str, Any], key: str, longest: int = 100) -> str:
    value = args.get(key)
    return str(value).strip()[:longest] if value not in (None, "") else ""


def search_condition(words: str) -> Any:
    """Name, phone or tax ID containing ``words`` (LIKE with the person's own % and _
    taken literally)."""
    conditions = [Customer.name.ilike(like_pattern(words), escape="\\")]
    digits = "".join(c for c in words if c.isdigit())
    if len(digits) >= 3:
        conditions.append(Customer.phone_key.like(like_pattern(digits), escape="\\"))
    tax = normalize_tax_id(words)
    if tax and len(tax) >= 4:
        conditions.append(Customer.tax_id.like(like_pattern(tax), escape="\\"))
    return sa.or_(*conditions)


def filter_customers(
    statement: sa.Select, args: Mapping[str, Any], now: datetime | None = None
) -> sa.Select:
    """The list's filters: ``q`` (name, phone, tax ID), ``stage``, ``grade``,
    ``industry``, ``region``, ``source``, ``size``, ``qualified`` (1/0), ``owner`` (id),
    ``overdue`` (1: the next follow-up is past). Unknown values filter nothing out."""
    now = as_utc(now) or utcnow()
    words = _arg(args, "q")
    if words:
        statement = statement.where(search_condition(words))
    for key, column, allowed in (
        ("stage", Customer.stage, CUSTOMER_STAGES),
        ("grade", Customer.grade, CUSTOMER_GRADES),
        ("source", Customer.source, CUSTOMER_SOURCES),
        ("size", Customer.size, COMPANY_SIZES),
        ("industry", Customer.industry, None),
        ("region", Customer.region, None),
    ):
        value = _arg(args, key, 80)
        if value and (allowed is None or value in allowed):
            statement = statement.where(column == value)
    qualified = _arg(args, "qualified", 5)
    if qualified in ("0", "1"):
        statement = statement.where(Customer.qualified.is_(qualified == "1"))
    owner = id_arg(_arg(args, "owner", 20))
    if owner is not None:
        statement = statement.where(Customer.owner_id == owner)
    if _arg(args, "overdue", 5).lower() in TRUE_WORDS:
        statement = statement.where(Customer.next_follow_up_at < now)
    return statement


def customer_list(user: User, args: Mapping[str, Any], now: datetime | None = None) -> sa.Select:
    """The customers ``user`` may read (not the pool: it has its own page), filtered
    and sorted (``sort``: recent, name, last_contact, next_follow_up, grade). The owner
    comes in the same query, by name only."""
    statement = customers_for(user).where(Customer.owner_id.is_not(None))
    statement = filter_customers(statement, args, now)
    sort = _arg(args, "sort", 20)
    order = SORTS.get(sort, SORTS["recent"])()
    return statement.options(loops.light_person(Customer.owner)).order_by(*order)


# -- the shared pool (公海) -------------------------------------------------------------------


def pool_list(args: Mapping[str, Any]) -> sa.Select:
    """The prospects in the shared pool, most recently released first.

    This is the one query of customers that is NOT scoped by owner, on purpose: a pool
    prospect has no owner, and the policy's pool exists so that any salesperson may take
    up a prospect someone else neglected. The pages and the API only call it for people
    holding ``sales.claim_pool``, and it only ever returns rows without an owner."""
    statement = sa.select(Customer).where(Customer.in_pool.is_(True), Customer.owner_id.is_(None))
    statement = filter_customers(statement, {k: v for k, v in args.items() if k != "owner"})
    return statement.order_by(Customer.released_at.desc().nulls_last(), Customer.id.desc())


def get_pool_prospect(customer_id: int) -> Customer | None:
    """One prospect of the pool (the pool's own, unscoped read: see ``pool_list``)."""
    return db.session.scalars(
        sa.select(Customer).where(
            Customer.id == customer_id, Customer.in_pool.is_(True), Customer.owner_id.is_(None)
        )
    ).first()


def people_names(ids: Sequence[int | None]) -> dict[int, str]:
    """Display names of some people in one query (former owners on the pool page)."""
    wanted = sorted({person for person in ids if person})
    if not wanted:
        return {}
    rows = db.session.execute(sa.select(User.id, User.display_name).where(User.id.in_(wanted)))
    return {row.id: row.display_name for row in rows}


def claim_cap() -> int:
    """How many prospects one person may claim per day: the parameter
    ``pool_claims_per_day`` of rules/follow_up.yaml, when the company set one (0 or
    absent: no limit)."""
    try:
        declared = rules().active(FOLLOW_UP_RULESET).rule_file.parameters
    except UnknownRuleset:
        return 0
    entry = declared.get(CLAIM_CAP_PARAMETER)
    if entry is None:
        return 0
    value = entry[1] if isinstance(entry, tuple) else getattr(entry, "value", entry)
    try:
        return max(int(value), 0)
    except (TypeError, ValueError):
        return 0


def claims_today(user: User, now: datetime | None = None) -> int:
    """Prospects ``user`` claimed today (the portal's day) and still holds."""
    start = loops.local_midnight(loops.local_today(now))
    return int(
        db.session.scalar(
            sa.select(sa.func.count())
            .select_from(Customer)
            .where(Customer.owner_id == user.id, Customer.claimed_at >= start)
        )
        or 0
    )


def claim(customer_id: int, actor: User, now: datetime | None = None) -> Customer:
    """Take a prospect from the pool. One conditional UPDATE (still in the pool, still
    without owner), so when two people claim at once exactly one wins and the other is
    told (StateConflict, 409). The claimer gets a follow-up at the prospects' cadence."""
    now = as_utc(now) or utcnow()
    if not actor.can("sales.claim_pool"):
        raise NotAllowed(_("You may not claim prospects from the shared pool."))
    prospect = get_pool_prospect(customer_id)
    if prospect is None:
        # A prospect that was in the pool and is gone: someone was quicker (409). Any
        # other record is not the pool's business: not found.
        found = db.session.get(Customer, customer_id)
        if found is None or found.released_at is None:
            raise LookupError(customer_id)
        raise StateConflict(_("Someone else has claimed this prospect already."))
    cap = claim_cap()
    if cap and claims_today(actor, now) >= cap:
        raise StateConflict(
            _(
                "You have claimed %(n)s prospects today, the daily limit. Follow up the ones "
                "you have first.",
                n=cap,
            )
        )
    cadence = _cadence_evaluation(prospect.stage, prospect.grade, False)
    version = prospect.lock_version
    # Literal values (the audit log records them); the conditions are what makes it safe.
    taken = db.session.execute(
        sa.update(Customer)
        .where(
            Customer.id == customer_id,
            Customer.in_pool.is_(True),
            Customer.owner_id.is_(None),
            Customer.lock_version == version,
        )
        .values(
            owner_id=actor.id,
            in_pool=False,
            claimed_at=now,
            updated_at=now,
            lock_version=version + 1,
        )
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount != 1:
        db.session.expire(prospect)
        if get_pool_prospect(customer_id) is not None:
            raise StateConflict(_("This prospect changed meanwhile; try again."))
        raise StateConflict(_("Someone else has claimed this prospect already."))
    customer = db.session.get(Customer, customer_id, populate_existing=True)
    _schedule_follow_up(customer, actor, None, "", cadence, now)
    return customer


def release_to_pool(
    customer: Customer, actor: User, reason: str, now: datetime | None = None
) -> Customer:
    """The owner (or someone above them) gives a prospect up: it goes to the pool with
    the reason, its open follow-ups are closed with that reason. Customers stay."""
    now = as_utc(now) or utcnow()
    reason = _text(reason)
    if not reason:
        raise ValidationFailed({"reason": [_("Say why you release this prospect.")]})
    if len(reason) > 500:
        raise ValidationFailed({"reason": [_("At most %(n)s characters.", n=500)]})
    if customer.owner_id is None:
        raise StateConflict(_("This prospect is already in the shared pool."))
    if customer.stage != "prospect":
        raise StateConflict(_("Only prospects go to the shared pool; a customer keeps its owner."))
    note = _("Released to the shared pool: %(reason)s", reason=reason)
    for item in open_follow_ups(customer.id):
        _close_quietly(item, actor, note, now)
    customer.previous_owner_id = customer.owner_id
    customer.owner = None
    customer.owner_id = None
    customer.in_pool = True
    customer.released_at = now
    customer.release_reason = reason
    customer.claimed_at = None
    customer.follow_up_loop_id = None
    customer.next_follow_up_at = None
    customer.updated_at = now
    db.session.flush()
    return customer


def _close_quietly(item: LoopItem, actor: User, note: str, now: datetime) -> bool:
    """Close an open follow-up the actor may close; one they may not stays open."""
    try:
        loops.close(item, actor, note[:MAX_TEXT], now=now)
    except (NotAllowed, StateConflict):
        return False
    return True


# -- contacts and follow-ups (P3.1.3) -----------------------------------------------------------


def open_follow_ups(customer_id: int) -> list[LoopItem]:
    """The customer's unfinished follow-up items (normally one)."""
    return list(
        db.session.scalars(
            sa.select(LoopItem)
            .where(
                LoopItem.subject_table == SUBJECT_TABLE,
                LoopItem.subject_id == str(customer_id),
                LoopItem.type == FOLLOW_UP_TYPE,
                LoopItem.status.in_(OPEN_STATUSES),
            )
            .order_by(LoopItem.due_at, LoopItem.id)
        )
    )


def has_open_opportunity(customer_id: int) -> bool:
    return (
        db.session.scalar(
            sa.select(Opportunity.id)
            .where(Opportunity.customer_id == customer_id, Opportunity.status == "open")
            .limit(1)
        )
        is not None
    )


def _cadence_evaluation(stage: str, grade: str, open_opportunity: bool) -> Evaluation | None:
    """follow_up.yaml asked about a customer just contacted: its next_follow_up_days."""
    facts = {
        "record_type": stage,
        "grade": grade,
        "days_since_last_contact": 0,
        "has_open_opportunity": open_opportunity,
    }
    try:
        return rules().evaluate(FOLLOW_UP_RULESET, facts)
    except (RuleInputError, UnknownRuleset) as error:
        log.error("follow_up cannot judge %s: %s", facts, error)
        return None


def cadence_days(customer: Customer) -> int | None:
    """Days to the next follow-up of this customer by follow_up.yaml (None: no rule)."""
    evaluation = _cadence_evaluation(
        customer.stage, customer.grade, has_open_opportunity(customer.id)
    )
    days = evaluation.outputs.get("next_follow_up_days") if evaluation is not None else None
    return int(days) if days else None


def _schedule_follow_up(
    customer: Customer,
    actor: User | None,
    day: date | None,
    next_step: str,
    cadence: Evaluation | None,
    now: datetime,
) -> LoopItem:
    """Raise the customer's next follow-up: on ``day``, else after the cadence of
    follow_up.yaml (from today), else whenever loop_policy says."""
    if day is None and cadence is not None and cadence.outputs.get("next_follow_up_days"):
        day = loops.local_today(now) + timedelta(days=int(cadence.outputs["next_follow_up_days"]))
    owner = customer.owner if customer.owner is not None and customer.owner.active else actor
    item = loops.raise_loop(
        FOLLOW_UP_TYPE,
        _("Follow up %(name)s", name=customer.name)[:200],
        owner,
        raised_by=actor,
        due_at=loops.due_at_from_date(day) if day is not None else None,
        subject=(SUBJECT_TABLE, customer.id),
        subject_link=customer_path(customer.id),
        description=next_step,
        now=now,
    )
    customer.follow_up_loop_id = item.id
    customer.next_follow_up_at = item.due_at
    return item


def _aware(moment: datetime) -> datetime:
    """A time a person typed (no zone) is the portal's local time."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=loops.portal_zone())
    return moment.astimezone(UTC)


def _opportunity_of(customer: Customer, opportunity_id: Any) -> int | None:
    if opportunity_id in (None, ""):
        return None
    try:
        wanted = int(opportunity_id)
    except (TypeError, ValueError):
        return -1
    found = db.session.scalar(
        sa.select(Opportunity.id).where(
            Opportunity.id == wanted, Opportunity.customer_id == customer.id
        )
    )
    return found if found is not None else -1


def log_activity(
    customer: Customer,
    values: Mapping[str, Any],
    actor: User,
    now: datetime | None = None,
) -> Activity:
    """Record a call, email, visit or meeting on the customer file. The contact counts
    for the follow-up clock; the customer's open follow-up is closed with a note naming
    this contact; the next follow-up is raised as a loop item (on the date given, else
    after the cadence of follow_up.yaml) and kept on the activity and the customer.
    Everything is checked before anything is written."""
    now = as_utc(now) or utcnow()
    if customer.owner_id is None:
        raise StateConflict(_("Claim this prospect from the shared pool before logging contacts."))
    errors: dict[str, list[str]] = {}
    kind = _text(values.get("kind")) or "call"
    if kind not in ACTIVITY_KINDS:
        errors["kind"] = [_("Choose one of: %(values)s.", values=", ".join(ACTIVITY_KINDS))]
    occurred = values.get("occurred_at")
    occurred_at = now
    if isinstance(occurred, datetime):
        try:
            occurred_at = _aware(occurred)
        except (OverflowError, ValueError):
            errors["occurred_at"] = [_("Not a valid time.")]
    elif occurred not in (None, ""):
        errors["occurred_at"] = [_("Not a valid time.")]
    if "occurred_at" not in errors:
        if occurred_at > now + CLOCK_SKEW:
            errors["occurred_at"] = [
                _("A contact cannot be in the future: plan it as the next follow-up.")
            ]
        elif occurred_at < now - timedelta(days=loops.MAX_DUE_DAYS):
            errors["occurred_at"] = [_("That is more than ten years ago.")]
    texts = {"summary": 300, "details": MAX_TEXT, "location_note": 200, "next_step": 300}
    data = {name: _text(values.get(name)) for name in texts}
    for name, limit in texts.items():
        if len(data[name]) > limit:
            errors[name] = [_("At most %(n)s characters.", n=limit)]
    if not data["summary"]:
        errors["summary"] = [_("Say in a line what the contact was about.")]
    opportunity_id = _opportunity_of(customer, values.get("opportunity_id"))
    if opportunity_id == -1:
        errors["opportunity_id"] = [_("Choose an opportunity of this customer.")]
    day = values.get("next_follow_up_on")
    if day not in (None, "") and not isinstance(day, date):
        errors["next_follow_up_on"] = [_("Not a valid date.")]
        day = None
    if isinstance(day, date):
        if day < loops.local_today(now):
            errors["next_follow_up_on"] = [_("The next follow-up cannot be in the past.")]
        elif day > loops.latest_due_date(now):
            errors["next_follow_up_on"] = [_("That is too far away: at most ten years from now.")]
    if errors:
        raise ValidationFailed(errors)
    # The rule file first, before anything is written (see portal.loops.service.close).
    cadence = None
    if not day:
        cadence = _cadence_evaluation(
            customer.stage, customer.grade, has_open_opportunity(customer.id)
        )
    activity = Activity(
        customer_id=customer.id,
        opportunity_id=opportunity_id,
        owner_id=actor.id,
        owner=actor,
        kind=kind,
        occurred_at=occurred_at,
        summary=data["summary"],
        details=data["details"],
        location_note=data["location_note"],
        next_step=data["next_step"],
        created_at=now,
        updated_at=now,
    )
    db.session.add(activity)
    db.session.flush()
    mark_contacted(customer, occurred_at)
    when = loops.local_today(occurred_at).isoformat()
    note = _(
        "Contact logged (%(kind)s, %(when)s): %(summary)s",
        kind=label("activity_kind", kind),
        when=when,
        summary=data["summary"],
    )
    evidence = f"{customer_path(customer.id)}#activity-{activity.id}"
    for item in open_follow_ups(customer.id):
        try:
            loops.close(item, actor, note, evidence, now=now)
        except (NotAllowed, StateConflict):
            continue
    item = _schedule_follow_up(customer, actor, day or None, data["next_step"], cadence, now)
    activity.follow_up_loop_id = item.id
    activity.next_follow_up_on = loops.local_today(item.due_at)
    customer.updated_at = now
    db.session.flush()
    return activity


def timeline(
    customer_id: int, page: int = 1, per_page: int = 10
) -> tuple[list[Activity], bool, dict[int, str]]:
    """One page of the customer's contacts, newest first: (activities, whether more
    follow, {opportunity id: name}). No count: "load more" only needs to know if there
    is more."""
    page = min(max(page, 1), 100_000)
    rows = list(
        db.session.scalars(
            sa.select(Activity)
            .options(loops.light_person(Activity.owner))
            .where(Activity.customer_id == customer_id)
            .order_by(Activity.occurred_at.desc(), Activity.id.desc())
            .offset((page - 1) * per_page)
            .limit(per_page + 1)
        )
    )
    more = len(rows) > per_page
    rows = rows[:per_page]
    return rows, more, opportunity_names({row.opportunity_id for row in rows})


def opportunity_names(ids: set[int | None]) -> dict[int, str]:
    wanted = sorted(i for i in ids if i)
    if not wanted:
        return {}
    rows = db.session.execute(
        sa.select(Opportunity.id, Opportunity.name).where(Opportunity.id.in_(wanted))
    )
    return {row.id: row.name for row in rows}


def activities_for_opportunity(opportunity: Any, user: User, limit: int = 20) -> list[Activity]:
    """The contacts recorded about one opportunity that ``user`` may read (scoped
    through the customer), newest first."""
    statement = scoped(
        sa.select(Activity)
        .join(Customer, Activity.customer_id == Customer.id)
        .options(loops.light_person(Activity.owner))
        .where(Activity.opportunity_id == opportunity.id),
        Customer,
        user,
    )
    return list(
        db.session.scalars(
            statement.order_by(Activity.occurred_at.desc(), Activity.id.desc()).limit(limit)
        )
    )


def my_week(user: User, now: datetime | None = None) -> dict[str, Any]:
    """The dashboard tile: follow-ups due until Sunday (the first few), how many are
    overdue, how many contacts were logged this week. Two queries."""
    now = as_utc(now) or utcnow()
    today = loops.local_today(now)
    week_start = loops.local_midnight(today - timedelta(days=today.weekday()))
    week_end = loops.local_midnight(today + timedelta(days=7 - today.weekday()))
    mine = sa.and_(
        LoopItem.owner_id == user.id,
        LoopItem.status.in_(OPEN_STATUSES),
        LoopItem.type == FOLLOW_UP_TYPE,
    )
    logged = (
        sa.select(sa.func.count())
        .select_from(Activity)
        .where(Activity.owner_id == user.id, Activity.occurred_at >= week_start)
        .scalar_subquery()
    )
    counts = db.session.execute(
        sa.select(
            sa.func.count(sa.case((LoopItem.due_at < now, 1))),
            sa.func.count(
                sa.case((sa.and_(LoopItem.due_at >= now, LoopItem.due_at < week_end), 1))
            ),
            logged,
        ).where(mine, LoopItem.due_at < week_end)
    ).one()
    upcoming = list(
        db.session.execute(
            sa.select(LoopItem.id, LoopItem.title, LoopItem.due_at, LoopItem.subject_link)
            .where(mine, LoopItem.due_at < week_end)
            .order_by(LoopItem.due_at, LoopItem.id)
            .limit(6)
        )
    )
    return {
        "overdue": int(counts[0] or 0),
        "due_this_week": int(counts[1] or 0),
        "logged_this_week": int(counts[2] or 0),
        "items": upcoming,
        "now": now,
    }


# -- the follow-up sweep (job sales.follow_up_sweep) ---------------------------------------------


def _days_since_contact(row: Any, now: datetime) -> int:
    """Whole days since the last contact (or since the file was created, or since the
    present owner claimed it from the pool, whichever is latest)."""
    moments = [as_utc(row.last_contact_at) or as_utc(row.created_at), as_utc(row.claimed_at)]
    start = max(moment for moment in moments if moment is not None)
    return max((now - start).days, 0)


def _round_start(row: Any) -> datetime:
    moments = [as_utc(row.last_contact_at) or as_utc(row.created_at), as_utc(row.claimed_at)]
    return max(moment for moment in moments if moment is not None)


def _manager_of(chain: list[int], people: dict[int, User]) -> int | None:
    """The nearest leader above holding the manager role, else the top of the chain."""
    for person_id in chain:
        person = people.get(person_id)
        if person is not None and "manager" in person.role_codes:
            return person_id
    return chain[-1] if chain else None


def run_follow_up_sweep(now: datetime | None = None, batch_size: int = 500) -> dict[str, int]:
    """The scheduled sweep (job ``sales.follow_up_sweep``): every owned prospect and
    customer is put to rules/follow_up.yaml with the days since its last contact.

    - ``return_to_pool`` (a neglected prospect): it goes back to the shared pool (owner
      cleared, previous owner, time and reason kept, open follow-ups closed); the former
      owner, and whoever ``escalate_to`` names, is told once per run.
    - ``overdue``: the customer gets an open ``sales.follow_up`` loop item for its owner
      (due at once) unless it has one; the people ``escalate_to`` names are told, one
      message per person per run listing the customers, once per level per contact
      round (the stored decisions say what was announced).

    Running again at the same time changes nothing. Built like the core's escalation:
    keyset batches by id, one rule evaluation per distinct input tuple in the run, the
    batch's opportunities, follow-ups, decisions and leaders read in a few queries, one
    commit per batch."""
    now = as_utc(now) or utcnow()
    counts = {
        "checked": 0,
        "returned_to_pool": 0,
        "follow_ups_raised": 0,
        "escalated": 0,
        "notified": 0,
    }
    with acting_as(SWEEP_ACTOR):
        active = rules().active(FOLLOW_UP_RULESET)
        answers: dict[tuple[Any, ...], Evaluation | None] = {}
        chains = loops.LeaderChains()
        statement = sa.select(
            Customer.id,
            Customer.name,
            Customer.owner_id,
            Customer.stage,
            Customer.grade,
            Customer.last_contact_at,
            Customer.created_at,
            Customer.claimed_at,
            Customer.lock_version,
        ).where(Customer.owner_id.is_not(None))
        for rows in keyset_batches(statement, (Customer.id,), batch_size):
            counts["checked"] += len(rows)
            try:
                _sweep_batch(rows, now, active, answers, chains, counts)
                db.session.commit()
            except Exception:
                db.session.rollback()
                log.exception("follow-up sweep: the batch from id %s failed", rows[0].id)
    return counts


def _sweep_batch(
    rows: Sequence[Any],
    now: datetime,
    active: Any,
    answers: dict[tuple[Any, ...], Evaluation | None],
    chains: loops.LeaderChains,
    counts: dict[str, int],
) -> None:
    ids = [row.id for row in rows]
    with_opportunity = set(
        db.session.scalars(
            sa.select(Opportunity.customer_id)
            .where(Opportunity.customer_id.in_(ids), Opportunity.status == "open")
            .distinct()
        )
    )
    keys = [
        (row.stage, row.grade, _days_since_contact(row, now), row.id in with_opportunity)
        for row in rows
    ]
    evaluate_distinct(active, SWEEP_FACTS, keys, answers)
    returning: list[tuple[Any, Evaluation]] = []
    overdue: list[tuple[Any, Evaluation]] = []
    for row, key in zip(rows, keys, strict=True):
        evaluation = answers.get(key)
        if evaluation is None or not evaluation.decided:
            continue
        if evaluation.outputs.get("return_to_pool") and row.stage == "prospect":
            returning.append((row, evaluation))
        elif evaluation.outputs.get("overdue"):
            overdue.append((row, evaluation))
    if not returning and not overdue:
        return
    owners = {row.owner_id for row, _evaluation in returning + overdue}
    chain_of = chains.of_people(owners)
    people = {
        person.id: person
        for person in db.session.scalars(
            sa.select(User).where(
                User.id.in_(owners | {p for chain in chain_of.values() for p in chain})
            )
        )
    }
    # {person: [(customer name, customer id)]} per kind of message
    returned_to: dict[int, list[tuple[str, int]]] = defaultdict(list)
    overdue_to: dict[int, list[tuple[str, int]]] = defaultdict(list)
    if returning:
        _return_to_pool(returning, now, active, people, chain_of, returned_to, counts)
    if overdue:
        _follow_up_overdue(overdue, now, active, people, chain_of, overdue_to, counts)
    counts["notified"] += _tell(returned_to, overdue_to, people)


def _escalation_targets(
    evaluation: Evaluation, owner_id: int, chain_of: dict[int, list[int]], people: dict[int, User]
) -> list[int]:
    target = str(evaluation.outputs.get("escalate_to") or "none")
    chain = chain_of.get(owner_id, [])
    if target == "supervisor":
        return chain[:1]
    if target == "manager":
        found = _manager_of(chain, people)
        return [found] if found is not None else []
    return []


def _return_to_pool(
    returning: list[tuple[Any, Evaluation]],
    now: datetime,
    active: Any,
    people: dict[int, User],
    chain_of: dict[int, list[int]],
    told: dict[int, list[tuple[str, int]]],
    counts: dict[str, int],
) -> None:
    # One UPDATE per (owner, lock version) seen: every value written is a literal, so
    # the audit log's bulk-update row says exactly what was written.
    groups: dict[tuple[int, int], list[tuple[Any, Evaluation]]] = defaultdict(list)
    for row, evaluation in returning:
        groups[(row.owner_id, row.lock_version)].append((row, evaluation))
    written: list[tuple[Any, Evaluation]] = []
    reason = _("No contact recorded in time: returned by the follow-up rules.")
    for (owner_id, version), members in groups.items():
        by_id = {row.id: (row, evaluation) for row, evaluation in members}
        # The conditions repeat what the scan saw: a prospect contacted, claimed or
        # edited since (its lock version moved on) is left for the next run.
        statement = (
            sa.update(Customer)
            .where(
                Customer.id.in_(sorted(by_id)),
                Customer.lock_version == version,
                Customer.owner_id == owner_id,
                Customer.stage == "prospect",
            )
            .values(
                previous_owner_id=owner_id,
                owner_id=None,
                in_pool=True,
                released_at=now,
                release_reason=reason,
                claimed_at=None,
                follow_up_loop_id=None,
                next_follow_up_at=None,
                updated_at=now,
                lock_version=version + 1,
            )
            .returning(Customer.id)
            .execution_options(synchronize_session=False)
        )
        for (customer_id,) in db.session.execute(statement).all():
            written.append(by_id[customer_id])
    if not written:
        return
    owner_of = {row.id: row.owner_id for row, _evaluation in written}
    items = db.session.scalars(
        sa.select(LoopItem).where(
            LoopItem.subject_table == SUBJECT_TABLE,
            LoopItem.subject_id.in_([str(customer_id) for customer_id in owner_of]),
            LoopItem.type == FOLLOW_UP_TYPE,
            LoopItem.status.in_(OPEN_STATUSES),
        )
    ).all()
    for item in items:
        former = people.get(owner_of[int(item.subject_id)])
        if former is not None and item.owner_id == former.id:
            _close_quietly(
                item, former, _("The prospect went back to the shared pool (no contact)."), now
            )
    for row, evaluation in written:
        counts["returned_to_pool"] += 1
        _record(evaluation, row.id, active.version_id, now)
        told[row.owner_id].append((row.name, row.id))
        for person in _escalation_targets(evaluation, row.owner_id, chain_of, people):
            told[person].append((row.name, row.id))
    db.session.flush()


def _announced_ranks(overdue: list[tuple[Any, Evaluation]]) -> dict[int, int]:
    """For each customer, the highest escalation already announced in the present
    contact round (decisions stored by earlier runs since the last contact)."""
    from portal.rules.models import RuleDecision

    starts = {row.id: _round_start(row) for row, _evaluation in overdue}
    ranks: dict[int, int] = {}
    statement = sa.select(RuleDecision.subject_id, RuleDecision.at, RuleDecision.outputs).where(
        RuleDecision.subject_table == SUBJECT_TABLE,
        RuleDecision.subject_id.in_([str(customer_id) for customer_id in starts]),
        RuleDecision.ruleset == FOLLOW_UP_RULESET,
        RuleDecision.at >= min(starts.values()),
    )
    for subject_id, at, outputs in db.session.execute(statement):
        customer_id = int(subject_id)
        if as_utc(at) < starts[customer_id]:
            continue
        rank = ESCALATION_RANK.get(str((outputs or {}).get("escalate_to") or "none"), 0)
        ranks[customer_id] = max(ranks.get(customer_id, -1), rank)
    return ranks


def _follow_up_overdue(
    overdue: list[tuple[Any, Evaluation]],
    now: datetime,
    active: Any,
    people: dict[int, User],
    chain_of: dict[int, list[int]],
    told: dict[int, list[tuple[str, int]]],
    counts: dict[str, int],
) -> None:
    have_item = set(
        db.session.scalars(
            sa.select(LoopItem.subject_id).where(
                LoopItem.subject_table == SUBJECT_TABLE,
                LoopItem.subject_id.in_([str(row.id) for row, _evaluation in overdue]),
                LoopItem.type == FOLLOW_UP_TYPE,
                LoopItem.status.in_(OPEN_STATUSES),
            )
        )
    )
    announced = _announced_ranks(overdue)
    raised: dict[int, LoopItem] = {}
    for row, evaluation in overdue:
        rank = ESCALATION_RANK.get(str(evaluation.outputs.get("escalate_to") or "none"), 0)
        needs_item = str(row.id) not in have_item
        escalates = rank > announced.get(row.id, 0)
        if not needs_item and not escalates:
            continue
        if needs_item:
            owner = people.get(row.owner_id)
            if owner is None or not owner.active:
                continue  # a disabled owner: the customer needs a new owner, not an item
            item = loops.raise_loop(
                FOLLOW_UP_TYPE,
                _("Follow-up overdue: %(name)s", name=row.name)[:200],
                owner,
                raised_by=None,
                due_at=now + timedelta(seconds=1),  # due at once (raise_loop refuses the past)
                subject=(SUBJECT_TABLE, row.id),
                subject_link=customer_path(row.id),
                description=_(
                    "No contact recorded for %(days)s days (rules/follow_up.yaml).",
                    days=evaluation.inputs.get("days_since_last_contact"),
                ),
                now=now,
            )
            raised[row.id] = item
            counts["follow_ups_raised"] += 1
        _record(evaluation, row.id, active.version_id, now)
        if escalates:
            targets = _escalation_targets(evaluation, row.owner_id, chain_of, people)
            if targets:
                counts["escalated"] += 1
            for person in targets:
                told[person].append((row.name, row.id))
    if raised:
        # The customers point at their new follow-up (one UPDATE each: few per batch).
        for customer_id, item in raised.items():
            db.session.execute(
                sa.update(Customer)
                .where(Customer.id == customer_id)
                .values(follow_up_loop_id=item.id, next_follow_up_at=item.due_at)
                .execution_options(synchronize_session=False)
            )
    db.session.flush()


def _list_body(entries: Sequence[tuple[str, int]]) -> str:
    lines = [f"- {name}" for name, _customer_id in entries[:20]]
    if len(entries) > 20:
        lines.append(f"- ... (+{len(entries) - 20})")
    return "\n".join(lines)


def _tell(
    returned_to: dict[int, list[tuple[str, int]]],
    overdue_to: dict[int, list[tuple[str, int]]],
    people: dict[int, User],
) -> int:
    """One message per person and kind for the batch, listing the customers."""
    notified = 0
    for person_id, entries in returned_to.items():
        person = people.get(person_id)
        if person is None:
            continue
        if len(entries) == 1:
            title = _l("Back in the shared pool: %(name)s", name=entries[0][0])
        else:
            title = _l("%(count)s prospects went back to the shared pool", count=len(entries))
        body = _list_body(entries)
        if notify(
            person, "sales.returned_to_pool", title, body, portal_path("sales_customers.pool")
        ):
            notified += 1
    for person_id, entries in overdue_to.items():
        person = people.get(person_id)
        if person is None:
            continue
        if len(entries) == 1:
            title = _l("Customer follow-up overdue: %(name)s", name=entries[0][0])
            link = customer_path(entries[0][1])
        else:
            title = _l("%(count)s customer follow-ups are overdue", count=len(entries))
            link = portal_path("sales_customers.index", overdue=1, sort="last_contact")
        if notify(person, "sales.follow_up_overdue", title, _list_body(entries), link):
            notified += 1
    return notified
