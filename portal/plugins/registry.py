"""Turning what plugins return into a running portal, with the contract enforced.

Each plugin's setup contributions are staged and validated together; only a plugin
whose every contribution passes is wired into the app. One that breaks a rule is left
out with a message naming the rule, and the rest of the portal starts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from flask import Blueprint, Flask

from ..extensions import db
from .manager import CORE, SETUP_HOOKS, PluginError, PluginHost, check_namespace
from .types import (
    SCOPE_LEVELS,
    ApiRoute,
    ApprovalKind,
    EventType,
    FactProvider,
    Job,
    LinkTarget,
    LoopType,
    NotificationKind,
    Permission,
    RoleSpec,
    RuleAction,
    SettingSpec,
    UnitKind,
)


@dataclass
class PortalState:
    """Everything the enabled plugins contributed; ``app.extensions["portal"]``."""

    host: PluginHost
    roles: dict[str, tuple[str, RoleSpec]] = field(default_factory=dict)
    unit_kinds: dict[str, UnitKind] = field(default_factory=dict)
    permissions: dict[str, tuple[str, Permission]] = field(default_factory=dict)
    settings: dict[str, SettingSpec] = field(default_factory=dict)
    jobs: dict[str, Job] = field(default_factory=dict)
    rule_actions: dict[str, RuleAction] = field(default_factory=dict)
    fact_providers: dict[str, FactProvider] = field(default_factory=dict)
    event_types: dict[str, EventType] = field(default_factory=dict)
    api_routes: list[tuple[str, ApiRoute]] = field(default_factory=list)
    loop_types: dict[str, LoopType] = field(default_factory=dict)
    approval_kinds: dict[str, ApprovalKind] = field(default_factory=dict)
    notification_kinds: dict[str, NotificationKind] = field(default_factory=dict)
    link_targets: dict[str, LinkTarget] = field(default_factory=dict)
    migration_dirs: list[str] = field(default_factory=list)
    translation_dirs: list[str] = field(default_factory=list)
    public_endpoints: set[str] = field(default_factory=set)
    blueprints: list[tuple[str, Blueprint]] = field(default_factory=list)
    blueprint_owner: dict[str, str] = field(default_factory=dict)
    cli_commands: list[click.Command] = field(default_factory=list)


def _list_of(value: Any, kind: type, hook: str) -> list[Any]:
    items = list(value or [])
    for item in items:
        if not isinstance(item, kind):
            raise PluginError(f"{hook} must return a list of {kind.__name__}, got {item!r}")
    return items


def _unique(
    existing: dict[str, Any],
    key: str,
    what: str,
    staged: list[Any] | None = None,
    attribute: str = "",
) -> None:
    if key in existing:
        raise PluginError(f"{what} '{key}' is already declared by another plugin")
    if staged is not None and sum(getattr(item, attribute) == key for item in staged) > 1:
        raise PluginError(f"{what} '{key}' is declared twice")


def _check_blueprint(plugin: str, blueprint: Blueprint) -> None:
    if plugin == CORE:
        return
    if blueprint.name != plugin and not blueprint.name.startswith(f"{plugin}_"):
        raise PluginError(f"blueprint '{blueprint.name}' must be named '{plugin}' or '{plugin}_*'")
    if blueprint.template_folder:
        folder = Path(blueprint.root_path) / blueprint.template_folder
        if folder.is_dir():
            strays = [p.name for p in folder.iterdir() if p.name != plugin]
            if strays:
                raise PluginError(
                    f"templates must live in templates/{plugin}/, "
                    f"found: {', '.join(sorted(strays))}"
                )


class _Stage:
    """One plugin's contributions before they are accepted."""

    def __init__(self, plugin: str, state: PortalState) -> None:
        self.plugin = plugin
        self.state = state
        self.items: dict[str, list[Any]] = {}

    def take(self, hook: str, result: Any) -> None:
        handler: Callable[[Any], list[Any]] = getattr(self, f"_{hook}")
        self.items[hook] = handler(result)

    def _portal_models(self, result: Any) -> list[Any]:
        return []

    def _portal_migrations(self, result: Any) -> list[Any]:
        if result is None:
            return []
        if not Path(str(result)).is_dir():
            raise PluginError(f"portal_migrations returned '{result}', which is not a folder")
        return [str(result)]

    def _portal_blueprints(self, result: Any) -> list[Any]:
        blueprints = _list_of(result, Blueprint, "portal_blueprints")
        for blueprint in blueprints:
            _check_blueprint(self.plugin, blueprint)
        return blueprints

    def _portal_roles(self, result: Any) -> list[Any]:
        roles = _list_of(result, RoleSpec, "portal_roles")
        for role in roles:
            _unique(self.state.roles, role.code, "role", roles, "code")
            if role.read_scope not in SCOPE_LEVELS or role.write_scope not in SCOPE_LEVELS:
                raise PluginError(f"role '{role.code}': scopes must be one of {SCOPE_LEVELS}")
        return roles

    def _portal_unit_kinds(self, result: Any) -> list[Any]:
        kinds = _list_of(result, UnitKind, "portal_unit_kinds")
        for kind in kinds:
            _unique(self.state.unit_kinds, kind.code, "unit kind", kinds, "code")
        return kinds

    def _portal_permissions(self, result: Any) -> list[Any]:
        permissions = _list_of(result, Permission, "portal_permissions")
        for permission in permissions:
            check_namespace(self.plugin, permission.code, "permission")
            _unique(self.state.permissions, permission.code, "permission", permissions, "code")
        return permissions

    def _portal_settings(self, result: Any) -> list[Any]:
        settings = _list_of(result, SettingSpec, "portal_settings")
        for setting in settings:
            check_namespace(self.plugin, setting.key, "setting")
            _unique(self.state.settings, setting.key, "setting", settings, "key")
            if setting.type == "choice" and not setting.choices:
                raise PluginError(f"setting '{setting.key}' is a choice without choices")
        return settings

    def _portal_cli_commands(self, result: Any) -> list[Any]:
        commands = _list_of(result, click.Command, "portal_cli_commands")
        for command in commands:
            if self.plugin != CORE and command.name != self.plugin:
                raise PluginError(f"CLI command '{command.name}' must be named '{self.plugin}'")
        return commands

    def _named_callables(self, result: Any, kind: type, hook: str, existing: dict) -> list[Any]:
        items = _list_of(result, kind, hook)
        for item in items:
            check_namespace(self.plugin, item.name, kind.__name__)
            _unique(existing, item.name, kind.__name__, items, "name")
            if hasattr(item, "func") and not callable(item.func):
                raise PluginError(f"{kind.__name__} '{item.name}': func is not callable")
        return items

    def _portal_jobs(self, result: Any) -> list[Any]:
        jobs = self._named_callables(result, Job, "portal_jobs", self.state.jobs)
        for job in jobs:
            if job.every_seconds < 60:
                raise PluginError(f"job '{job.name}' runs more often than once a minute")
        return jobs

    def _portal_rule_actions(self, result: Any) -> list[Any]:
        return self._named_callables(
            result, RuleAction, "portal_rule_actions", self.state.rule_actions
        )

    def _portal_fact_providers(self, result: Any) -> list[Any]:
        return self._named_callables(
            result, FactProvider, "portal_fact_providers", self.state.fact_providers
        )

    def _portal_event_types(self, result: Any) -> list[Any]:
        return self._named_callables(
            result, EventType, "portal_event_types", self.state.event_types
        )

    def _portal_api_routes(self, result: Any) -> list[Any]:
        routes = _list_of(result, ApiRoute, "portal_api_routes")
        for route in routes:
            if not route.rule.startswith("/"):
                raise PluginError(f"API route '{route.rule}' must start with '/'")
            known = set(self.state.permissions) | {
                p.code for p in self.items.get("portal_permissions", [])
            }
            if route.permission and route.permission not in known:
                # A typo would otherwise answer 403 to everyone, silently.
                raise PluginError(
                    f"API route '{route.rule}' needs undeclared permission '{route.permission}'"
                )
        return routes

    def _portal_loop_types(self, result: Any) -> list[Any]:
        return self._named_callables(result, LoopType, "portal_loop_types", self.state.loop_types)

    def _portal_approval_kinds(self, result: Any) -> list[Any]:
        kinds = self._named_callables(
            result, ApprovalKind, "portal_approval_kinds", self.state.approval_kinds
        )
        for kind in kinds:
            if kind.on_decided is not None and not callable(kind.on_decided):
                raise PluginError(f"approval kind '{kind.name}': on_decided is not callable")
            if not kind.ruleset:
                raise PluginError(f"approval kind '{kind.name}' names no rule file")
        return kinds

    def _portal_notification_kinds(self, result: Any) -> list[Any]:
        return self._named_callables(
            result, NotificationKind, "portal_notification_kinds", self.state.notification_kinds
        )

    def _portal_link_targets(self, result: Any) -> list[Any]:
        targets = self._named_callables(
            result, LinkTarget, "portal_link_targets", self.state.link_targets
        )
        for target in targets:
            if not callable(target.search) or not callable(target.describe):
                raise PluginError(
                    f"link target '{target.kind}': search and describe must be callable"
                )
            if not target.endpoint or not target.id_arg:
                raise PluginError(f"link target '{target.kind}' names no endpoint")
        return targets

    def accept(self, app: Flask) -> None:
        """Wire the staged contributions into the app and the state."""
        state, plugin = self.state, self.plugin
        # Blueprints first: Flask may still refuse one (a name clash), and then nothing
        # else of the plugin has been taken in. A blueprint registered before the refusal
        # answers 404 from then on (see security._refuse_failed_plugins).
        for blueprint in self.items.get("portal_blueprints", []):
            prefix = blueprint.url_prefix if plugin == CORE else f"/{plugin}"
            app.register_blueprint(blueprint, url_prefix=prefix)
            state.blueprints.append((plugin, blueprint))
            state.blueprint_owner[blueprint.name] = plugin
            for endpoint in getattr(blueprint, "public_endpoints", ()):
                state.public_endpoints.add(f"{blueprint.name}.{endpoint}")
        state.migration_dirs += self.items.get("portal_migrations", [])
        for role in self.items.get("portal_roles", []):
            state.roles[role.code] = (plugin, role)
        for kind in self.items.get("portal_unit_kinds", []):
            state.unit_kinds[kind.code] = kind
        for permission in self.items.get("portal_permissions", []):
            state.permissions[permission.code] = (plugin, permission)
        for setting in self.items.get("portal_settings", []):
            state.settings[setting.key] = setting
        for job in self.items.get("portal_jobs", []):
            state.jobs[job.name] = job
        for action in self.items.get("portal_rule_actions", []):
            state.rule_actions[action.name] = action
        for provider in self.items.get("portal_fact_providers", []):
            state.fact_providers[provider.name] = provider
        for event_type in self.items.get("portal_event_types", []):
            state.event_types[event_type.name] = event_type
        for route in self.items.get("portal_api_routes", []):
            state.api_routes.append((plugin, route))
        for loop_type in self.items.get("portal_loop_types", []):
            state.loop_types[loop_type.name] = loop_type
        for approval_kind in self.items.get("portal_approval_kinds", []):
            state.approval_kinds[approval_kind.name] = approval_kind
        for notification_kind in self.items.get("portal_notification_kinds", []):
            state.notification_kinds[notification_kind.name] = notification_kind
        for target in self.items.get("portal_link_targets", []):
            state.link_targets[target.kind] = target
        for command in self.items.get("portal_cli_commands", []):
            app.cli.add_command(command)
            state.cli_commands.append(command)


def _check_tables(record: Any, new_tables: set[str]) -> None:
    """Every table the plugin's models define must be named ``<plugin>_*``: those created by
    its portal_models call and those of model classes in its package (imported earlier)."""
    prefix = f"{record.name}_"
    package = getattr(record.module, "__name__", None)
    owned = set(new_tables)
    if package:
        for mapper in db.Model.registry.mappers:
            module = mapper.class_.__module__
            if module == package or module.startswith(f"{package}."):
                owned |= {table.name for table in mapper.tables}
    strays = sorted(name for name in owned if not name.startswith(prefix))
    if strays:
        raise PluginError(f"tables must be named '{prefix}*': {', '.join(strays)}")


def install_plugins(app: Flask, host: PluginHost) -> PortalState:
    """Run every setup hook of every loaded plugin, accepting each plugin whole or not at all."""
    state = PortalState(host=host)
    for record in host.loaded():
        # Dependency order: a required plugin left out just above takes this one along.
        requires = record.meta.requires if record.meta else ()
        failed = [name for name in requires if not host.records[name].loaded]
        if failed:
            host.drop(record.name, f"requires plugin(s) that failed to start: {', '.join(failed)}")
            continue
        stage = _Stage(record.name, state)
        hook = SETUP_HOOKS[0]
        try:
            for hook in SETUP_HOOKS:
                before = set(db.metadata.tables)
                result = host.call_one(hook, record.name)
                if hook == "portal_models":
                    _check_tables(record, set(db.metadata.tables) - before)
                stage.take(hook, result)
            hook = "wiring the plugin in"
            stage.accept(app)
        except Exception as exc:  # a plugin that breaks the contract is left out, by name
            host.drop(record.name, f"{hook}: {exc}")
            continue
        if record.package_dir and (record.package_dir / "translations").is_dir():
            state.translation_dirs.append(str(record.package_dir / "translations"))
    return state


def run_startup(app: Flask, state: PortalState) -> None:
    """The last setup hook, once the app is complete."""
    state.host.call_each("portal_startup", strict=True, app=app)
