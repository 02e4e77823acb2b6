"""A YAML loader for untrusted input: no duplicate keys, bounded size, depth and aliases.

PyYAML's ``safe_load`` silently keeps the last of two equal keys, so a chip
description or layer list with ``rows: 512`` written twice would be accepted
with whichever came last. :class:`UniqueKeyLoader` is a
:class:`yaml.SafeLoader` that checks every mapping of the document before
building it and raises :class:`DuplicateKeyError` naming the YAML path of the
repeated key and both lines.

Hostile documents are bounded (:class:`YAMLLimitError`, checked while the
document is composed, before anything is built): at most :data:`MAX_YAML_CHARS`
characters of text, :data:`MAX_DEPTH` levels of nesting (a deeper document
would exhaust Python's recursion), :data:`MAX_ALIASES` aliases, and
:data:`MAX_EXPANDED_NODES` nodes once every alias is expanded (an "alias bomb",
"billion laughs", expands nine aliases of nine aliases ... to 10^9 nodes; a
consumer that walks or prints the value would hang). A recursive alias
(``&a [*a]``) is refused. Anchors with a few aliases, e.g. ``<<: *base`` merge
keys, stay allowed. The limits are assumed: a chip description is ~200 nodes,
the largest zoo layer list a few thousand.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

__all__ = ["DuplicateKeyError", "YAMLLimitError", "UniqueKeyLoader", "load_yaml_or_raise", "read_yaml_file", "safe_load_unique",
           "MAX_YAML_CHARS", "MAX_DEPTH", "MAX_ALIASES", "MAX_EXPANDED_NODES"]

#: Largest YAML text accepted, in characters (assumed; 2 MiB, far above any layer list).
MAX_YAML_CHARS = 2 * 1024 * 1024
#: Deepest nesting of mappings and sequences (assumed; a chip description has 3 levels).
MAX_DEPTH = 32
#: Most aliases (``*name``) in one document (assumed).
MAX_ALIASES = 256
#: Most nodes once aliases are expanded (assumed; 100,000).
MAX_EXPANDED_NODES = 100_000


class YAMLLimitError(yaml.YAMLError):
    """A document exceeds a size, depth or alias limit (the message names the limit and the line)."""


class DuplicateKeyError(yaml.YAMLError):
    """A mapping holds the same key twice.

    Members
    -------
    path : str
        YAML path of the repeated key, e.g. ``array.rows`` or ``layers[2].name``.
    line : int
        1-based line of the second occurrence.
    first_line : int
        1-based line of the first occurrence.
    """

    def __init__(self, path: str, line: int, first_line: int) -> None:
        self.path, self.line, self.first_line = path, line, first_line
        super().__init__(
            f"{path}: duplicate key at line {line} (first given at line {first_line}); "
            "each key may appear only once"
        )


def _join(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def _check(node: yaml.Node, path: str, seen_nodes: set[int]) -> None:
    if id(node) in seen_nodes:  # anchors / aliases: check each node once
        return
    seen_nodes.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first: dict[Any, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                _check(value_node, path, seen_nodes)
                continue
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else f"<{key_node.id}>"
            here = _join(path, key)
            line = key_node.start_mark.line + 1
            if key in first:
                raise DuplicateKeyError(here, line, first[key])
            first[key] = line
            _check(value_node, here, seen_nodes)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _check(item, _join(path, i), seen_nodes)


def _expanded_size(node: yaml.Node, memo: dict[int, int], visiting: set[int]) -> int:
    """Nodes under ``node`` with every alias expanded (shared nodes counted at each use)."""
    key = id(node)
    if key in memo:
        return memo[key]
    if key in visiting:
        line = node.start_mark.line + 1
        raise YAMLLimitError(f"recursive alias at line {line}; a value may not contain itself")
    visiting.add(key)
    total = 1
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            total += _expanded_size(k, memo, visiting) + _expanded_size(v, memo, visiting)
            if total > MAX_EXPANDED_NODES:
                break
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            total += _expanded_size(item, memo, visiting)
            if total > MAX_EXPANDED_NODES:
                break
    visiting.discard(key)
    memo[key] = total
    if total > MAX_EXPANDED_NODES:
        raise YAMLLimitError(f"more than {MAX_EXPANDED_NODES:,} values once aliases are expanded (an alias bomb?) "
                             f"under line {node.start_mark.line + 1}")
    return total


class UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that raises :class:`DuplicateKeyError` on a repeated key
    and :class:`YAMLLimitError` on a document beyond the limits of the module docstring.

    Keys are compared as written (``rows`` and ``'rows'`` are the same key);
    keys brought in by a ``<<`` merge may be overridden, as YAML allows.
    """

    _depth = 0
    _aliases = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                line = self.peek_event().start_mark.line + 1
                raise YAMLLimitError(f"more than {MAX_ALIASES} aliases (line {line}); write the values out")
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                line = self.peek_event().start_mark.line + 1
                raise YAMLLimitError(f"nesting deeper than {MAX_DEPTH} levels at line {line}")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_document(self, node: yaml.Node) -> Any:
        _expanded_size(node, {}, set())
        _check(node, "", set())
        return super().construct_document(node)


# YAML 1.2 floats: PyYAML (YAML 1.1) reads `1e-9` and `1e308` (no dot) as strings, which the strict
# chip schema would refuse; a user writes them as numbers.
UniqueKeyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def safe_load_unique(text: str) -> Any:
    """``yaml.safe_load`` that rejects duplicate keys.

    Raises
    ------
    DuplicateKeyError
        A mapping repeats a key (message: YAML path and lines).
    YAMLLimitError
        The text is longer than :data:`MAX_YAML_CHARS`, or beyond a depth or alias limit.
    yaml.YAMLError
        The text does not parse.
    """
    if len(text) > MAX_YAML_CHARS:
        raise YAMLLimitError(f"{len(text):,} characters; at most {MAX_YAML_CHARS:,} are read")
    return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass


if getattr(yaml, "__with_libyaml__", False):
    class _TrustedCLoader(yaml.CSafeLoader):
        """libyaml's parser (~7x faster than PyYAML's on a chip description) with :class:`UniqueKeyLoader`'s
        resolvers and duplicate-key check; the depth and alias limits are not checked while composing, so
        it reads packaged (trusted) text only, and any problem is re-read by :class:`UniqueKeyLoader`."""

        def construct_document(self, node: yaml.Node) -> Any:
            _expanded_size(node, {}, set())
            _check(node, "", set())
            return super().construct_document(node)

    _TrustedCLoader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
        list("-+0123456789"),
    )
else:  # pragma: no cover - PyYAML built without libyaml
    _TrustedCLoader = None


def load_yaml_or_raise(text: str, origin: str, error: type[Exception], *, trusted: bool = False) -> Any:
    """:func:`safe_load_unique`, turning every YAML problem into one line of ``error``.

    The message starts with ``origin`` and names the line and column where
    PyYAML found the problem, or the path of a duplicate key. ``trusted``
    (packaged text, e.g. a chip preset): parsed by libyaml when PyYAML has it,
    the same values (same resolvers, duplicate keys refused); on any problem
    the text is re-read by :class:`UniqueKeyLoader`, so errors are unchanged.

    Raises
    ------
    error
        YAML that does not parse, or a duplicate key.
    """
    if trusted and _TrustedCLoader is not None and len(text) <= MAX_YAML_CHARS:
        try:
            return yaml.load(text, Loader=_TrustedCLoader)  # noqa: S506 - a CSafeLoader subclass
        except Exception:  # noqa: BLE001 - re-read below for the one-line message
            pass
    try:
        return safe_load_unique(text)
    except (DuplicateKeyError, YAMLLimitError) as exc:
        raise error(f"{origin}: {_short(str(exc), 200)}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise error(f"{origin}: YAML does not parse{where}: {_short(problem, 120)}") from None
    except RecursionError:  # PyYAML's parser recurses too; the depth check normally comes first
        raise error(f"{origin}: nesting too deep; at most {MAX_DEPTH} levels") from None


def read_yaml_file(path: Any, origin: str, error: type[Exception]) -> str:
    """The text of a YAML file, refusing one larger than :data:`MAX_YAML_CHARS` bytes before reading it.

    Raises
    ------
    error
        The file is too large, cannot be read or is not UTF-8 (one line starting with ``origin``).
    """
    from pathlib import Path

    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_YAML_CHARS:
            raise error(f"{origin}: {size:,} bytes; a YAML input may have at most {MAX_YAML_CHARS:,}")
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else _short(str(exc), 120)
        raise error(f"{origin}: cannot read file: {reason}") from None


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
