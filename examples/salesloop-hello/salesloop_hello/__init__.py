"""salesloop-hello: the smallest complete third-party Salesloop plugin.

Hook implementations only, kept thin: the page and the API view live in ``views.py``,
the template in ``templates/hello/``, the Chinese strings in ``translations/zh_CN``.
The plugin's name, ``hello``, is its entry-point name (see pyproject.toml); everything
it contributes lives in that namespace.
"""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l

from portal.plugins import ApiRoute, NavItem, Permission, PluginMeta, hookimpl

NAME = "hello"
__version__ = "0.1.0"


@hookimpl
def portal_plugin_meta() -> PluginMeta:
    return PluginMeta(
        name=NAME,
        title=_l("Hello"),
        version=__version__,
        description=_l("An example plugin that greets the person logged in."),
    )


@hookimpl
def portal_permissions() -> list[Permission]:
    return [
        Permission(
            "hello.greet",
            _l("See the greeting page"),
            default_roles=("salesperson", "supervisor", "manager", "admin"),
        )
    ]


@hookimpl
def portal_blueprints() -> list[Any]:
    from .views import bp

    return [bp]  # registered by the core under /hello


@hookimpl
def portal_nav_items(user: Any) -> list[NavItem]:
    return [NavItem("hello.index", _l("Hello"), order=95, permission="hello.greet")]


@hookimpl
def portal_api_routes() -> list[ApiRoute]:
    from .views import GREETING_SCHEMA, greeting

    # Served at /api/v1/hello/greeting with bearer-token auth.
    return [
        ApiRoute(
            "/greeting",
            greeting,
            summary="A greeting for the token's owner",
            permission="hello.greet",
            schema=GREETING_SCHEMA,
        )
    ]
