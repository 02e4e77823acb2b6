"""A YAML loader that refuses duplicate mapping keys.

PyYAML's ``safe_load`` silently keeps the last of two equal keys, so a chip
description or layer list with ``rows: 512`` written twice would be accepted
with whichever came last. :class:`UniqueKeyLoader` is a
:class:`yaml.SafeLoader` that checks every mapping of the document before
building it and raises :class:`DuplicateKeyError` naming the YAML path of the
repeated key and both lines.
"""

from __future__ import annotations

from typing import Any

import yaml

__all__ = ["DuplicateKeyError", "UniqueKeyLoader", "load_yaml_or_raise", "safe_load_unique"]


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
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else repr(key_node)
            here = _join(path, key)
            line = key_node.start_mark.line + 1
            if key in first:
                raise DuplicateKeyError(here, line, first[key])
            first[key] = line
            _check(value_node, here, seen_nodes)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _check(item, _join(path, i), seen_nodes)


class UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that raises :class:`DuplicateKeyError` on a repeated key.

    Keys are compared as written (``rows`` and ``'rows'`` are the same key);
    keys brought in by a ``<<`` merge may be overridden, as YAML allows.
    """

    def construct_document(self, node: yaml.Node) -> Any:
        _check(node, "", set())
        return super().construct_document(node)


def safe_load_unique(text: str) -> Any:
    """``yaml.safe_load`` that rejects duplicate keys.

    Raises
    ------
    DuplicateKeyError
        A mapping repeats a key (message: YAML path and lines).
    yaml.YAMLError
        The text does not parse.
    """
    return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass


def load_yaml_or_raise(text: str, origin: str, error: type[Exception]) -> Any:
    """:func:`safe_load_unique`, turning every YAML problem into one line of ``error``.

    The message starts with ``origin`` and names the line and column where
    PyYAML found the problem, or the path of a duplicate key.

    Raises
    ------
    error
        YAML that does not parse, or a duplicate key.
    """
    try:
        return safe_load_unique(text)
    except DuplicateKeyError as exc:
        raise error(f"{origin}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise error(f"{origin}: YAML does not parse{where}: {problem}") from None
