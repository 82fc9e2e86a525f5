"""Reading a rule file: YAML to plain data, remembering where every value stood.

Errors must point an admin at the file, line and column of the mistake, so the loader
keeps a map from each value's path (``("rules", 2, "when", "amount")``) to its position.
YAML's implicit typing is narrowed on purpose: only JSON-like scalars (no dates, no
"yes"/"no" booleans, no octal), so ``no`` stays the string "no" and nothing surprises
an admin who writes a value the way it reads.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import yaml
from flask_babel import gettext as _

Path_ = tuple[Any, ...]

_INT = re.compile(r"^[-+]?[0-9]+$")
_FLOAT = re.compile(r"^[-+]?([0-9]+\.[0-9]*|\.[0-9]+)$")


@dataclass
class Located:
    """Parsed data plus the (line, column) of every path in it, both 1-based."""

    data: Any
    positions: dict[Path_, tuple[int, int]] = field(default_factory=dict)

    def position(self, path: Path_) -> tuple[int, int]:
        """Where ``path`` stood, or its nearest enclosing value."""
        while path:
            if path in self.positions:
                return self.positions[path]
            path = path[:-1]
        return self.positions.get((), (1, 1))


class SourceError(ValueError):
    """The file is not readable YAML; ``line``/``column`` say where."""

    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(message)
        self.message, self.line, self.column = message, line, column


def _scalar(node: yaml.ScalarNode) -> Any:
    value = node.value
    if node.style is not None:  # quoted: always a string
        return value
    if value in ("true", "True", "TRUE"):
        return True
    if value in ("false", "False", "FALSE"):
        return False
    if value in ("null", "Null", "NULL", "~", ""):
        return None
    if _INT.match(value):
        try:
            return int(value)
        except ValueError:  # more digits than Python converts: left as text, refused later
            return value
    if _FLOAT.match(value):
        return float(value)
    return value


MAX_VALUES = 20_000  # YAML aliases can multiply a small file; a rule file never needs more
MAX_DEPTH = 40  # a rule file nests a few levels; a recursive alias nests forever


def _build(
    node: yaml.Node,
    path: Path_,
    positions: dict[Path_, tuple[int, int]],
    at: yaml.Mark | None = None,
) -> Any:
    if len(positions) > MAX_VALUES:
        raise SourceError(_("the file is too large or nests aliases too deeply"), 1, 1)
    mark = at or node.start_mark  # a mapping entry stands where its key stands
    if len(path) > MAX_DEPTH:
        raise SourceError(_("the values nest too deeply"), mark.line + 1, mark.column + 1)
    positions[path] = (mark.line + 1, mark.column + 1)
    if isinstance(node, yaml.ScalarNode):
        return _scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*path, index), positions) for index, item in enumerate(node.value)]
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise SourceError(
                    _("a key must be a plain word"),
                    key_node.start_mark.line + 1,
                    key_node.start_mark.column + 1,
                )
            key = _scalar(key_node)
            if key in result:
                raise SourceError(
                    _("'%(key)s' appears twice", key=key),
                    key_node.start_mark.line + 1,
                    key_node.start_mark.column + 1,
                )
            result[key] = _build(value_node, (*path, key), positions, key_node.start_mark)
        return result
    raise SourceError(_("unsupported YAML"), node.start_mark.line + 1, node.start_mark.column + 1)


# Composed documents of the texts read last, by text. Every version in force is parsed
# again when a process loads it (publishing checks the text, the refresh loads it back) and
# PyYAML's pure-Python composer is by far the slowest step; nodes are only read here.
# A text is kept from its second reading on, so drafts checked once (an admin's edits, a
# fuzzer's) cost no memory; the nodes take some 50 bytes per character of text.
_NODES: OrderedDict[str, yaml.Node] = OrderedDict()
_READ_ONCE: OrderedDict[int, None] = OrderedDict()
_NODES_LOCK = threading.Lock()
NODE_CACHE_CHARS = 1 << 18  # of text in all (~13 MB of nodes); one text at most a quarter


def _compose(text: str) -> yaml.Node | None:
    """``yaml.compose`` remembering the documents composed more than once: the same text
    always composes to the same nodes, which ``_build`` never changes. Only successes are
    kept, so an error is raised (and worded in the reader's language) every time."""
    with _NODES_LOCK:
        node = _NODES.get(text)
        if node is not None:
            _NODES.move_to_end(text)
            return node
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    if node is None or len(text) > NODE_CACHE_CHARS // 4:
        return node
    key = hash(text)
    with _NODES_LOCK:
        if key not in _READ_ONCE:
            _READ_ONCE[key] = None
            if len(_READ_ONCE) > 1024:
                _READ_ONCE.popitem(last=False)
            return node
        _NODES[text] = node
        kept = sum(map(len, _NODES))
        while kept > NODE_CACHE_CHARS:
            oldest, _node = _NODES.popitem(last=False)
            kept -= len(oldest)
    return node


def parse(text: str) -> Located:
    """Parse one YAML document into data and positions, or raise SourceError."""
    try:
        node = _compose(text)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise SourceError(str(error.problem or error), line, column) from None
    except yaml.YAMLError as error:
        raise SourceError(str(error), 1, 1) from None
    except RecursionError:  # PyYAML's composer recurses once per nesting level
        raise SourceError(_("the values nest too deeply"), 1, 1) from None
    if node is None:
        raise SourceError(_("the file is empty"), 1, 1)
    positions: dict[Path_, tuple[int, int]] = {}
    data = _build(node, (), positions)
    return Located(data, positions)
