"""JSON API plumbing: bearer tokens, JSON errors, pagination, form validation, OpenAPI.

Plugins add endpoints with ``portal_api_routes``; each gets the same authentication,
scoping (the views call ``portal.scoping``), error shape and a place in the OpenAPI
document, which is built from the same declarations that register the routes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request
from flask_babel import gettext as _
from flask_sqlalchemy.pagination import Pagination
from werkzeug.datastructures import MultiDict
from wtforms import BooleanField, IntegerField, SelectField, SelectMultipleField
from wtforms.validators import DataRequired, InputRequired, Length

from ..extensions import csrf
from ..loops.errors import REFUSALS, refusal_of
from ..org.services import ValidationFailed
from ..plugins.manager import CORE
from ..plugins.registry import PortalState
from ..plugins.types import ApiRoute

API_PREFIX = "/api/v1"
# Pieces of the response schemas (``ApiRoute.schema``) every resource writes alike.
TIME_SCHEMA = {"type": ["string", "null"], "format": "date-time"}  # ``iso_time``
DATE_SCHEMA = {"type": ["string", "null"], "format": "date"}


class ApiError(Exception):
    """An error answered as ``{"error": {"code", "message", "fields"}}``."""

    def __init__(
        self, status: int, code: str, message: str, fields: Mapping[str, list[str]] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.fields = status, code, message, fields or {}


def error_response(
    status: int, code: str, message: str, fields: Mapping[str, list[str]] | None = None
) -> Response:
    """The one JSON error shape of the API."""
    response = jsonify(error={"code": code, "message": str(message), "fields": dict(fields or {})})
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="salesloop"'
    return response


def current_api_user() -> Any:
    """The person the bearer token belongs to."""
    return g.api_user


def json_body() -> dict[str, Any]:
    """The request body as a JSON object, or a 400 with a clear message."""
    if not request.is_json:
        raise ApiError(
            415, "unsupported_media_type", _("Send a JSON body (Content-Type: application/json).")
        )
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "bad_json", _("The body is not a JSON object."))
    return body


def invalid(fields: Mapping[str, Any]) -> ApiError:
    """The API's 422: the messages per field (a form's ``errors``, or any name: list of
    messages); raise it."""
    return ApiError(
        422,
        "validation_failed",
        _("Some fields are not valid."),
        {name: [str(message) for message in messages] for name, messages in fields.items()},
    )


def refuse_unknown(body: Mapping[str, Any], known: Iterable[str]) -> None:
    """400 naming each key of ``body`` not in ``known``: a typo must not be silently
    ignored."""
    unknown = sorted(set(body) - set(known))
    if unknown:
        raise ApiError(
            400,
            "unknown_fields",
            _("Unknown fields: %(names)s", names=", ".join(unknown)),
            {name: [_("Unknown field.")] for name in unknown},
        )


def validated(form_class: type, body: Mapping[str, Any], **form_kwargs: Any) -> Any:
    """Validate a JSON object with the same form class the web page uses.

    Unknown keys are refused (a typo must not be silently ignored).
    """
    form = form_class(formdata=MultiDict(), meta={"csrf": False}, **form_kwargs)
    fields = {field.name: field for field in form}
    refuse_unknown(body, fields)
    # JSON types must fit the field: true/false for a yes/no field (the string "no" is
    # not false), a list only for a multiple choice, never an object.
    formdata = MultiDict()
    wrong: dict[str, list[str]] = {}
    for key, value in body.items():
        field = fields[key]
        if isinstance(field, BooleanField):
            if not isinstance(value, bool):
                wrong[key] = [_("Use true or false.")]
            elif value:
                formdata[key] = "y"
        elif isinstance(field, SelectMultipleField):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                wrong[key] = [_("Use a list of values.")]
            else:
                formdata.setlist(key, value)
        elif value is None:
            formdata[key] = ""
        elif isinstance(value, dict | list | bool):
            wrong[key] = [_("Use a single value.")]
        else:
            formdata[key] = str(value)
    if wrong:
        raise invalid(wrong)
    form = form_class(formdata=formdata, meta={"csrf": False}, **form_kwargs)
    if not form.validate():
        raise invalid(form.errors)
    return form


@contextmanager
def service_errors(
    stale_message: str | None = None, renamed: Mapping[str, str] | None = None
) -> Iterator[None]:
    """Answer what a service refuses the API's one way (the API rolls the transaction
    back): ``ValidationFailed`` is 422 with the messages per field (``renamed`` maps a
    service's field name to the body's), ``NotAllowed`` 403, ``StateConflict`` 409, and
    ``StaleDataError`` (someone changed the record meanwhile) 409 with ``stale_message``.

    ::

        with service_errors(_("Someone changed this claim meanwhile; read it again.")):
            approve_claim(claim, current_api_user())
            db.session.commit()
    """
    try:
        yield
    except ValidationFailed as error:
        fields: dict[str, list[str]] = {}
        for name, messages in error.fields.items():
            fields.setdefault((renamed or {}).get(name, name), []).extend(messages)
        raise invalid(fields) from None
    except REFUSALS as error:
        status, message = refusal_of(
            error, stale_message or _("Someone changed this item meanwhile; read it again.")
        )
        code = "forbidden" if status == 403 else "conflict"
        raise ApiError(status, code, message) from None


def iso_day(day: Any) -> str | None:
    """A date as the API shows it: YYYY-MM-DD, or None."""
    return day.isoformat() if day is not None else None


def iso_time(moment: Any) -> str | None:
    """A stored time as the API shows it: ISO 8601 in UTC (SQLite hands back naive)."""
    from ..models import as_utc

    return as_utc(moment).isoformat() if moment is not None else None


def page_response(page: Pagination, serialize: Callable[[Any], dict[str, Any]]) -> Response:
    """A page of items with its position, the API's one list shape."""
    return jsonify(
        items=[serialize(item) for item in page.items],
        page=page.page,
        per_page=page.per_page,
        total=page.total,
        pages=page.pages,
    )


def _authenticate() -> Response | None:
    if request.endpoint == "api.openapi":
        return None
    from ..auth.services import user_for_token

    header = request.headers.get("Authorization", "")
    scheme, _sep, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return error_response(401, "unauthenticated", _("Send 'Authorization: Bearer <token>'."))
    user = user_for_token(token.strip())
    if user is None:
        return error_response(
            401, "invalid_token", _("The token is unknown, revoked, or its owner is disabled.")
        )
    g.api_user = user
    request.api_user = user  # type: ignore[attr-defined]
    return None


def _route_path(plugin: str, route: ApiRoute) -> str:
    return route.rule if plugin == CORE else f"/{plugin}{route.rule}"


def _wrap(plugin: str, route: ApiRoute) -> Callable[..., Any]:
    def view(**kwargs: Any) -> Any:
        if not current_app.extensions["portal"].host.records[plugin].loaded:
            return error_response(404, "not_found", _("Not found."))
        if route.permission and not g.api_user.can(route.permission):
            return error_response(
                403, "forbidden", _("You lack the permission %(code)s.", code=route.permission)
            )
        try:
            return route.view(**kwargs)
        except ApiError as error:
            from ..extensions import db

            db.session.rollback()
            return error_response(error.status, error.code, error.message, error.fields)

    return view


def build_api(state: PortalState) -> Blueprint:
    """A fresh API blueprint for one app, with every declared route."""
    bp = Blueprint("api", __name__, url_prefix=API_PREFIX)
    csrf.exempt(bp)  # bearer tokens are not ambient credentials: CSRF does not apply
    bp.before_request(_authenticate)
    bp.add_url_rule("/openapi.json", "openapi", lambda: jsonify(openapi_document(state)))
    for plugin, route in state.api_routes:
        path = _route_path(plugin, route)
        # The rule is part of the name: one view may serve several rules (/items, /items/<id>).
        endpoint = f"{plugin}:{route.view.__name__}:{'-'.join(route.methods)}:{route.rule}"
        endpoint = endpoint.replace(".", "_")
        bp.add_url_rule(path, endpoint, _wrap(plugin, route), methods=list(route.methods))
    return bp


# -- OpenAPI -------------------------------------------------------------------

_CONVERTER = re.compile(r"<(?:(\w+):)?(\w+)>")


def _field_schema(field: Any) -> dict[str, Any]:
    if isinstance(field, BooleanField):
        schema: dict[str, Any] = {"type": "boolean"}
    elif isinstance(field, IntegerField):
        schema = {"type": "integer"}
    elif isinstance(field, SelectMultipleField):
        schema = {"type": "array", "items": {"type": "string"}}
    elif isinstance(field, SelectField) and field.coerce is not str:
        schema = {"type": ["integer", "null"]}
    else:
        schema = {"type": "string"}
    for validator in field.validators:
        if isinstance(validator, Length) and schema.get("type") == "string":
            if validator.max and validator.max > 0:
                schema["maxLength"] = validator.max
            if validator.min and validator.min > 0:
                schema["minLength"] = validator.min
    if field.description:
        schema["description"] = str(field.description)
    return schema


def form_schema(form_class: type) -> dict[str, Any]:
    """A JSON schema of a form's fields (outside a request: no choices are loaded)."""
    from wtforms import Form

    unbound = [
        (name, value) for name, value in vars(form_class).items() if hasattr(value, "field_class")
    ]
    for base in form_class.__mro__[1:]:
        unbound += [
            (n, v)
            for n, v in vars(base).items()
            if hasattr(v, "field_class") and n not in dict(unbound)
        ]
    properties: dict[str, Any] = {}
    required: list[str] = []
    holder = Form()
    for name, unbound_field in unbound:
        if name == "csrf_token":
            continue
        field = unbound_field.bind(form=holder, name=name)
        properties[name] = _field_schema(field)
        if any(isinstance(v, DataRequired | InputRequired) for v in field.validators):
            required.append(name)
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        schema["required"] = sorted(required)
    return schema


ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "fields": {
                    "type": "object",
                    "additionalProperties": {"type": "array", "items": {"type": "string"}},
                },
            },
            "required": ["code", "message", "fields"],
        }
    },
}


def openapi_document(state: PortalState) -> dict[str, Any]:
    """OpenAPI 3.1 for every declared route; readable without login, holds no data."""
    paths: dict[str, Any] = {}
    for plugin, route in state.api_routes:
        path = API_PREFIX + _CONVERTER.sub(r"{\2}", _route_path(plugin, route))
        parameters = [
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": {"type": "integer" if converter == "int" else "string"},
            }
            for converter, name in _CONVERTER.findall(route.rule)
        ]
        if route.paginated:
            parameters += [
                {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1}},
                {
                    "name": "per_page",
                    "in": "query",
                    "schema": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": current_app.config["API_MAX_PAGE_SIZE"],
                    },
                },
            ]
        item_schema = dict(route.schema or {"type": "object"})
        body_schema = (
            {
                "type": "object",
                "properties": {
                    "items": {"type": "array", "items": item_schema},
                    "page": {"type": "integer"},
                    "per_page": {"type": "integer"},
                    "total": {"type": "integer"},
                    "pages": {"type": "integer"},
                },
            }
            if route.paginated
            else item_schema
        )
        errors = {
            str(code): {
                "description": text,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            }
            for code, text in (
                (401, "No or bad token"),
                (403, "Permission missing"),
                (404, "Not found or outside your scope"),
            )
        }
        for method in route.methods:
            operation: dict[str, Any] = {
                "summary": route.summary or route.view.__doc__ or "",
                "tags": [route.tag or plugin],
                "operationId": re.sub(r"[^A-Za-z0-9]+", "_", f"{method.lower()}{path}").strip("_"),
                "parameters": parameters,
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": {"application/json": {"schema": body_schema}},
                    },
                    **errors,
                },
            }
            if route.permission:
                operation["x-permission"] = route.permission
            if route.form is not None and method in ("POST", "PUT", "PATCH"):
                operation["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": form_schema(route.form)}},
                }
                operation["responses"]["422"] = {
                    "description": "Validation failed",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    },
                }
            paths.setdefault(path, {})[method.lower()] = operation
    paths[API_PREFIX + "/openapi.json"] = {
        "get": {
            "summary": "This document",
            "tags": ["core"],
            "operationId": "core_openapi_get",
            "security": [],
            "responses": {"200": {"description": "OpenAPI 3.1 document"}},
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "Salesloop API", "version": "1"},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": ERROR_SCHEMA},
        },
        "paths": paths,
    }
