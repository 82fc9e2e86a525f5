"""Data that plugins return from hooks.

Plugins describe what they contribute with these frozen dataclasses; the core validates
them (namespacing, types) and registers them. Returning data instead of mutating the app
is what lets the core enforce the rules of the contract.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

ScopeLevel = Literal["none", "own", "team", "all"]
SCOPE_LEVELS: tuple[str, ...] = ("none", "own", "team", "all")


@dataclass(frozen=True)
class PluginMeta:
    """Who a plugin is. ``name`` must equal its entry-point name."""

    name: str
    title: str
    version: str = "0"
    clause: str = ""
    description: str = ""
    requires: Sequence[str] = ()


@dataclass(frozen=True)
class NavItem:
    """A link in the main navigation (``section="main"``) or the admin menu."""

    endpoint: str
    label: str
    order: int = 100
    permission: str | None = None
    section: Literal["main", "admin", "user"] = "main"
    url_kwargs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Widget:
    """A dashboard tile; its body is fetched from ``endpoint`` by htmx after the page loads."""

    name: str
    title: str
    endpoint: str
    order: int = 100
    permission: str | None = None


@dataclass(frozen=True)
class Permission:
    """A permission code ``<plugin>.<verb>`` and the roles that get it on first install."""

    code: str
    label: str
    default_roles: Sequence[str] = ()


@dataclass(frozen=True)
class RoleSpec:
    """A role offered to the installation. Roles become rows an admin can edit; the spec
    only seeds them. ``read_scope``/``write_scope`` say which owners' records the role
    reaches: own, team (the subtree of the units the person leads) or all."""

    code: str
    label: str
    read_scope: ScopeLevel = "own"
    write_scope: ScopeLevel = "own"
    rank: int = 0
    duties: Sequence[str] = ()
    clause: str = ""


@dataclass(frozen=True)
class UnitKind:
    """A kind of organisation unit (company, region, product line, team ...)."""

    code: str
    label: str
    order: int = 100


@dataclass(frozen=True)
class SettingSpec:
    """A setting ``<plugin>.<name>`` an admin may change without code."""

    key: str
    label: str
    type: Literal["str", "int", "bool", "choice"] = "str"
    default: Any = None
    help: str = ""
    choices: Sequence[str] = ()
    minimum: int | None = None
    maximum: int | None = None


@dataclass(frozen=True)
class Job:
    """A scheduled job ``<plugin>.<name>``; ``every_seconds`` is its period."""

    name: str
    func: Callable[..., Any]
    every_seconds: int
    description: str = ""


@dataclass(frozen=True)
class LoopType:
    """A kind of closed-loop item ``<plugin>.<name>`` (follow-up, complaint, meeting
    resolution, risk warning ...) and the policy clause it serves."""

    name: str
    label: str
    clause: str = ""
    description: str = ""


@dataclass(frozen=True)
class ApprovalKind:
    """Something that needs approval ``<plugin>.<name>``. ``ruleset`` names the rule file
    whose ``approvers`` output routes it; ``on_decided(request)`` is called in the same
    transaction when the request is approved, rejected, returned or cancelled, so the
    plugin updates its own record."""

    name: str
    label: str
    ruleset: str
    clause: str = ""
    on_decided: Callable[..., Any] | None = None
    description: str = ""


@dataclass(frozen=True)
class NotificationKind:
    """A kind of notification ``<plugin>.<name>``; people choose per kind whether it
    also reaches them by email (``email_default`` until they choose)."""

    name: str
    label: str
    email_default: bool = True
    description: str = ""


@dataclass(frozen=True)
class RuleAction:
    """A named action a rule file may call, with the arguments it takes and their types."""

    name: str
    func: Callable[..., Any]
    arguments: Mapping[str, type] = field(default_factory=dict)
    description: str = ""


@dataclass(frozen=True)
class FactProvider:
    """Facts a rule file may test: typed fields and the function that produces them."""

    name: str
    fields: Mapping[str, type]
    func: Callable[..., Mapping[str, Any]]
    description: str = ""


@dataclass(frozen=True)
class EventType:
    """An event a plugin emits, ``<plugin>.<name>``, with the payload keys it carries."""

    name: str
    description: str = ""
    payload: Sequence[str] = ()


@dataclass(frozen=True)
class Event:
    """One occurrence of an event, delivered to every ``portal_on_event`` implementation."""

    name: str
    payload: Mapping[str, Any]
    actor_id: int | None = None
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class LinkTarget:
    """A kind of record other plugins may point at (``<plugin>.<name>``, e.g. an expense
    line's customer) without importing the plugin that owns it. ``search(text, limit)``
    gives ``[(id, label)]`` of the records the *current user* may read that match
    ``text`` (at most ``limit``); ``describe(ids)`` gives ``{id: label}`` of those among
    ``ids`` the current user may read (the rest are left out); ``endpoint`` is the
    record's page, built with ``url_for(endpoint, **{id_arg: id})``."""

    kind: str
    label: str
    search: Callable[[str, int], Sequence[tuple[int, str]]]
    describe: Callable[[Sequence[int]], Mapping[int, str]]
    endpoint: str
    id_arg: str = "id"

    @property
    def name(self) -> str:
        """The namespaced name the registry checks (the same as ``kind``)."""
        return self.kind


@dataclass(frozen=True)
class ApiRoute:
    """A JSON API endpoint under ``/api/v1``. ``form`` (a FlaskForm class) validates the
    request body; ``schema`` describes the response for the OpenAPI document."""

    rule: str
    view: Callable[..., Any]
    methods: Sequence[str] = ("GET",)
    summary: str = ""
    permission: str | None = None
    form: type | None = None
    schema: Mapping[str, Any] | None = None
    paginated: bool = False
    tag: str = ""
