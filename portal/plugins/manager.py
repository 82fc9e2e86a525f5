"""Finding, loading and isolating plugins, and collecting what they contribute.

Every contribution is collected plugin by plugin (not through pluggy's combined call)
so the core knows who contributed what: that is how namespacing is enforced and how a
failing plugin is named and left out while the rest of the portal runs.
"""

from __future__ import annotations

import logging
import re
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy

from . import hookspecs
from .types import PluginMeta

log = logging.getLogger("portal.plugins")

ENTRY_POINT_GROUP = "portal.plugins"
CORE = "core"
BUILT_IN_DISTRIBUTION = "salesloop"
# Lower-case letters and digits only: "<name>_" and "<name>." prefixes of two plugins can
# then never overlap (a plugin "sales" cannot claim the tables of a plugin "sales_report").
PLUGIN_NAME = re.compile(r"^[a-z][a-z0-9]{1,31}$")
# Names the core uses for its own blueprints, URL prefixes and tables: a plugin taking one
# would replace or shadow the core.
RESERVED_NAMES = frozenset(
    {
        "core",
        "api",
        "admin",
        "auth",
        "web",
        "people",
        "audit",
        "rules",
        "static",
        "vendor",
        "login",
        "logout",
        "account",
        "healthz",
    }
)

# Hooks called once at start-up, in this order (the order of hookspecs.py).
SETUP_HOOKS = (
    "portal_models",
    "portal_migrations",
    "portal_blueprints",
    "portal_roles",
    "portal_unit_kinds",
    "portal_permissions",
    "portal_settings",
    "portal_cli_commands",
    "portal_jobs",
    "portal_rule_actions",
    "portal_fact_providers",
    "portal_event_types",
    "portal_api_routes",
    "portal_loop_types",
    "portal_approval_kinds",
    "portal_notification_kinds",
    "portal_link_targets",
)


class PluginError(Exception):
    """A plugin broke the contract; the message says how, for the admin."""


@dataclass
class PluginRecord:
    """What the portal knows about one plugin, for ``portal plugins list`` and the admin page."""

    name: str
    source: str
    enabled: bool = True
    loaded: bool = False
    version: str = ""
    title: Any = ""
    error: str = ""
    module: Any = None
    meta: PluginMeta | None = None
    hooks: list[str] = field(default_factory=list)
    package_dir: Path | None = None

    def fail(self, message: str) -> None:
        """Mark the plugin as failed with a message an admin can act on."""
        self.loaded = False
        self.error = message
        log.error("plugin %s left out: %s", self.name, message)


def _short_traceback(exc: BaseException) -> str:
    lines = traceback.format_exception_only(type(exc), exc)
    return "".join(lines).strip()


class PluginHost:
    """The plugin manager of one application (never module-global, so tests can build many)."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.records: dict[str, PluginRecord] = {}
        self._order: list[PluginRecord] | None = None

    # -- discovery ---------------------------------------------------------

    def load(
        self,
        core_module: ModuleType,
        enabled: Iterable[str] | None,
        extra: Iterable[tuple[str, Any]] = (),
    ) -> None:
        """Register the core, the enabled entry-point plugins and ``extra`` (name, object)
        pairs (throwaway plugins in tests); leave out and report any that fail."""
        self._register(CORE, core_module, source="core")
        allow = None if enabled is None else list(enabled)
        found: set[str] = set()
        for entry_point in sorted(
            metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name
        ):
            if entry_point.name in found:
                continue
            found.add(entry_point.name)
            source = entry_point.dist.name if entry_point.dist else entry_point.value
            if allow is not None and entry_point.name not in allow:
                self.records[entry_point.name] = PluginRecord(
                    entry_point.name, source=source, enabled=False
                )
                continue
            try:
                plugin = entry_point.load()
            except Exception as exc:  # a broken plugin must not take the portal down
                record = PluginRecord(entry_point.name, source=source)
                self.records[entry_point.name] = record
                record.fail(f"import failed: {_short_traceback(exc)}")
                continue
            self._register(entry_point.name, plugin, source=source)
        for name, plugin in extra:
            found.add(name)
            self._register(name, plugin, source="test")
        for name in allow or ():
            if name not in found and name != CORE:
                record = PluginRecord(name, source="config")
                self.records[name] = record
                record.fail(
                    f"plugin '{name}' is enabled in config (PORTAL_PLUGINS) but not installed"
                )
        self._check_metadata()
        self._check_requirements()

    def _register(self, name: str, plugin: Any, source: str) -> None:
        if name in self.records:
            # Never replace a plugin already known (least of all the core): the newcomer is
            # reported under a name of its own and stays out.
            taken = PluginRecord(f"{name}@{source}", source=source, module=plugin)
            self.records[taken.name] = taken
            taken.fail(f"the plugin name '{name}' is already taken")
            return
        record = PluginRecord(name, source=source, module=plugin)
        self.records[name] = record
        self._order = None
        if source != "core" and name in RESERVED_NAMES:
            record.fail(f"the plugin name '{name}' is reserved for the portal's core")
            return
        if not PLUGIN_NAME.match(name):
            record.fail(f"plugin name '{name}' must be 2-32 lower-case letters and digits")
            return
        file = getattr(plugin, "__file__", None)
        if file:
            record.package_dir = Path(file).parent
        try:
            self.pm.register(plugin, name=name)
            # Misspelled hooks are caught here, per plugin, instead of silently never called.
            self.pm.check_pending()
        except Exception as exc:
            if self.pm.is_registered(plugin):
                self.pm.unregister(plugin)
            record.fail(f"registration failed: {_short_traceback(exc)}")
            return
        record.loaded = True
        record.hooks = sorted(
            hook_name
            for hook_name in dir(self.pm.hook)
            if hook_name.startswith("portal_")
            and any(impl.plugin_name == name for impl in self.impls(hook_name))
        )

    def _check_metadata(self) -> None:
        for record in self.loaded():
            impls = [i for i in self.impls("portal_plugin_meta") if i.plugin_name == record.name]
            if not impls:
                self.drop(record.name, "does not implement portal_plugin_meta")
                continue
            try:
                meta = impls[0].function()
            except Exception as exc:
                self.drop(record.name, f"portal_plugin_meta raised: {_short_traceback(exc)}")
                continue
            if not isinstance(meta, PluginMeta) or meta.name != record.name:
                self.drop(
                    record.name,
                    f"portal_plugin_meta must return PluginMeta(name='{record.name}', ...)",
                )
                continue
            record.meta = meta
            record.version = meta.version
            record.title = meta.title  # lazy: shown in the reader's language
        self._order = None  # the order depends on the requirements just read

    def _check_requirements(self) -> None:
        changed = True
        while changed:
            changed = False
            for record in self.loaded():
                missing = [
                    name
                    for name in (record.meta.requires if record.meta else ())
                    if not (self.records.get(name) and self.records[name].loaded)
                ]
                if missing:
                    self.drop(record.name, f"requires plugin(s) not enabled: {', '.join(missing)}")
                    changed = True

    # -- access ------------------------------------------------------------

    def drop(self, name: str, message: str) -> None:
        """Leave a plugin out from now on and record why."""
        record = self.records[name]
        plugin = self.pm.get_plugin(name)
        if plugin is not None:
            self.pm.unregister(plugin)
        self._order = None
        record.fail(message)

    def loaded(self) -> list[PluginRecord]:
        """Loaded plugins in dependency order: the core, then the built-in chapter plugins,
        then third-party ones, each after the plugins it requires. Built-ins come first so
        a third-party plugin cannot claim a role or unit kind code before them."""
        if self._order is None:
            self._order = self._dependency_order()
        return list(self._order)

    def _dependency_order(self) -> list[PluginRecord]:
        ordered: list[PluginRecord] = []
        seen: set[str] = set()
        pending = {r.name: r for r in self.records.values() if r.loaded}

        def visit(name: str, trail: tuple[str, ...] = ()) -> None:
            if name in seen or name not in pending or name in trail:
                return
            record = pending[name]
            for required in record.meta.requires if record.meta else ():
                visit(required, (*trail, name))
            seen.add(name)
            ordered.append(record)

        visit(CORE)
        for name in sorted(pending, key=lambda n: (pending[n].source != BUILT_IN_DISTRIBUTION, n)):
            visit(name)
        return ordered

    def impls(self, hook_name: str) -> list[Any]:
        """The implementations of one hook, in pluggy's call order."""
        return list(reversed(getattr(self.pm.hook, hook_name).get_hookimpls()))

    def call_each(self, hook_name: str, strict: bool, **kwargs: Any) -> list[tuple[str, Any]]:
        """Call every implementation of ``hook_name`` one by one, in dependency order.

        Returns (plugin name, result) pairs, skipping None. With ``strict`` (start-up)
        a raising plugin is dropped from the portal; otherwise (request time) the error
        is logged and that plugin's contribution is skipped for this call.
        """
        order = {record.name: index for index, record in enumerate(self.loaded())}
        impls = sorted(
            (i for i in self.impls(hook_name) if i.plugin_name in order),
            key=lambda i: order[i.plugin_name],
        )
        results: list[tuple[str, Any]] = []
        for impl in impls:
            arguments = {name: kwargs[name] for name in impl.argnames if name in kwargs}
            try:
                result = impl.function(**arguments)
            except Exception as exc:
                if strict:
                    self.drop(impl.plugin_name, f"{hook_name} raised: {_short_traceback(exc)}")
                else:
                    log.exception("plugin %s: %s raised; skipped", impl.plugin_name, hook_name)
                continue
            if result is not None:
                results.append((impl.plugin_name, result))
        return results

    def call_one(self, hook_name: str, plugin_name: str, **kwargs: Any) -> Any:
        """Call one plugin's implementation of ``hook_name`` (None if it has none); raises."""
        for impl in self.impls(hook_name):
            if impl.plugin_name == plugin_name:
                arguments = {name: kwargs[name] for name in impl.argnames if name in kwargs}
                return impl.function(**arguments)
        return None

    def contributions(self, hook_name: str, kind: type, **kwargs: Any) -> list[tuple[str, Any]]:
        """Flatten list-returning hooks at request time into (plugin, item) pairs; an item
        that is not a ``kind`` is logged and skipped, so one plugin cannot break a page."""
        items: list[tuple[str, Any]] = []
        for plugin, result in self.call_each(hook_name, strict=False, **kwargs):
            for item in result if isinstance(result, list | tuple) else [result]:
                if isinstance(item, kind):
                    items.append((plugin, item))
                else:
                    log.error(
                        "plugin %s: %s returned %r, not a %s; skipped",
                        plugin,
                        hook_name,
                        item,
                        kind.__name__,
                    )
        return items


def check_namespace(plugin: str, value: str, what: str, separator: str = ".") -> None:
    """Raise PluginError unless ``value`` lives in the plugin's namespace."""
    if plugin == CORE and not value.startswith(f"{CORE}{separator}") and what in ("table",):
        raise PluginError(f"core {what} '{value}' must start with '{CORE}{separator}'")
    if plugin != CORE and not value.startswith(f"{plugin}{separator}"):
        raise PluginError(f"{what} '{value}' must start with '{plugin}{separator}'")
