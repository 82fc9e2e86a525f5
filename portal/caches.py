"""What every app built in one process would otherwise compute again, the same way.

``create_app`` is called once per process in production but once per test in the suite
(and once per job in RQ's forking worker). Each piece here is keyed by everything its
result depends on, so an app with other routes, templates or settings gets its own:

- ``LazyBuilderRule``: URL builders are compiled when a rule first builds a URL;
- ``TemplateCodeCache``: compiled Jinja templates by name, file and source checksum;
- ``shared_engine``: one SQLAlchemy engine (dialect and statement cache) per database,
  for the apps whose config asks for it (the test suite, see ``portal.testing``).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import Any

import sqlalchemy as sa
from jinja2 import Environment
from jinja2.bccache import Bucket, BytecodeCache
from werkzeug.routing import Rule


class LazyBuilderRule(Rule):
    """A URL rule whose two URL builders are compiled when it first builds a URL.

    Werkzeug compiles both builder functions as each rule is added: most of the time an
    app with ~180 routes takes to build, while a process builds URLs of a few rules."""

    def _compile_builder(self, *args: Any, **kwargs: Any) -> Any:
        compiled: list[Any] = []
        compile_now = super()._compile_builder

        def build(rule: Rule, /, **values: Any) -> tuple[str, str]:  # "rule" may be a value
            if not compiled:
                compiled.append(compile_now(*args, **kwargs))
            return compiled[0](rule, **values)

        return build


def _callable_key(function: Any) -> Any:
    """A method of each app (Flask's ``select_jinja_autoescape``) as its function and class."""
    underlying = getattr(function, "__func__", None)
    if underlying is None:
        return function
    return (underlying, type(function.__self__))


def _environment_key(environment: Environment) -> tuple[Any, ...]:
    """The settings of a Jinja environment that change the code a template compiles to."""
    return (
        tuple(sorted(environment.extensions)),
        _callable_key(environment.autoescape),
        _callable_key(environment.finalize),
        environment.optimized,
        environment.is_async,
        environment.block_start_string,
        environment.block_end_string,
        environment.variable_start_string,
        environment.variable_end_string,
        environment.comment_start_string,
        environment.comment_end_string,
        environment.line_statement_prefix,
        environment.line_comment_prefix,
        environment.trim_blocks,
        environment.lstrip_blocks,
        environment.newline_sequence,
        environment.keep_trailing_newline,
        environment.code_generator_class,
    )


class TemplateCodeCache(BytecodeCache):
    """Compiled templates shared by the Jinja environments of one process, in memory.

    Jinja keys a bucket by template name and file and checks the source's checksum; the
    environment's compile-time settings are added to the key, so only environments that
    would compile a template identically share its code."""

    def __init__(self, size: int = 2000) -> None:
        self._codes: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    @staticmethod
    def _key(bucket: Bucket) -> tuple[Any, ...]:
        return (bucket.key, bucket.checksum, _environment_key(bucket.environment))

    def load_bytecode(self, bucket: Bucket) -> None:
        """Give the bucket the code compiled before for the same template and settings."""
        with self._lock:
            code = self._codes.get(self._key(bucket))
        if code is not None:
            bucket.code = code

    def dump_bytecode(self, bucket: Bucket) -> None:
        """Keep a freshly compiled template's code (code objects are immutable)."""
        with self._lock:
            self._codes[self._key(bucket)] = bucket.code
            while len(self._codes) > self._size:
                self._codes.popitem(last=False)


TEMPLATE_CODE = TemplateCodeCache()


def _engine_key(options: dict[str, Any]) -> str:
    # The process id too: a forked child never shares its parent's pooled connections.
    url = sa.engine.make_url(options["url"]).render_as_string(hide_password=False)
    settings = sorted((key, repr(value)) for key, value in options.items() if key != "url")
    return repr((os.getpid(), url, settings))


def shared_engine(
    engines: dict[str, sa.engine.Engine], options: dict[str, Any], make: Any
) -> sa.engine.Engine:
    """An engine of its own for one app (its event listeners stay its own) that shares the
    pool, the dialect and the compiled-statement cache of the first engine made with the
    same ``options`` in this process and kept in ``engines``. Without this every new app
    compiles every SQL statement again (SQLAlchemy's cache belongs to the engine)."""
    key = _engine_key(options)
    base = engines.get(key)
    if base is None:
        base = engines.setdefault(key, make())
    return base.execution_options()
