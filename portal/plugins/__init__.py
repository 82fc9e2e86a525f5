"""Public face of the plugin contract: the ``hookimpl`` marker and the data types.

A plugin imports from here (and from ``portal.extensions``, ``portal.scoping``,
``portal.events`` ...), never from another plugin.
"""

import pluggy

from .hookspecs import PROJECT
from .types import (
    ApiRoute,
    ApprovalKind,
    Event,
    EventType,
    FactProvider,
    Job,
    LinkTarget,
    LoopType,
    NavItem,
    NotificationKind,
    Permission,
    PluginMeta,
    RoleSpec,
    RuleAction,
    SettingSpec,
    UnitKind,
    Widget,
)

hookimpl = pluggy.HookimplMarker(PROJECT)

__all__ = [
    "ApiRoute",
    "ApprovalKind",
    "Event",
    "EventType",
    "FactProvider",
    "Job",
    "LinkTarget",
    "LoopType",
    "NavItem",
    "NotificationKind",
    "Permission",
    "PluginMeta",
    "RoleSpec",
    "RuleAction",
    "SettingSpec",
    "UnitKind",
    "Widget",
    "hookimpl",
]
