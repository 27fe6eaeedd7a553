"""A bounded YAML reader: safe types only, with limits that make hostile files fail fast.

PyYAML's ``safe_load`` builds only plain types, but it accepts a file of any
size, aliases that expand a few hundred bytes into billions of values, nesting
deep enough to exhaust the interpreter's stack, and a key given twice (the
last one silently wins). ``load_yaml`` refuses each of these with a
``ConfigError`` that names the file and the problem, within a fraction of a
second.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, SequenceNode

from engine.errors import ConfigError

#: Largest file read, in bytes; config files are a few kilobytes.
MAX_BYTES = 1_000_000
#: Deepest nesting of mappings and sequences.
MAX_DEPTH = 32
#: Most aliases (``*name``) in one file.
MAX_ALIASES = 100
#: Most values once every alias is expanded.
MAX_VALUES = 100_000


class _Refused(Exception):
    # A limit was hit while composing or constructing; carries the message.
    pass


class _BoundedLoader(yaml.SafeLoader):
    # SafeLoader that counts depth and aliases while composing, and refuses a
    # key repeated in one mapping while constructing.

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                line = self.peek_event().start_mark.line + 1
                raise _Refused(f"more than {MAX_ALIASES} aliases (line {line})")
            return super().compose_node(parent, index)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                line = self.peek_event().start_mark.line + 1
                raise _Refused(f"nesting deeper than {MAX_DEPTH} levels (line {line})")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = seen.get(key)
            except TypeError:
                continue  # an unhashable key; the constructor reports it
            if first is not None:
                raise _Refused(
                    f"key {key!r} is given twice (lines {first} and {line}); "
                    "expected each key once per mapping"
                )
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _expanded_values(root: Node) -> int:
    # Values in the document once aliases are expanded; aliased nodes are the
    # same object, so sizes are memoised by identity. A node that contains
    # itself is refused.
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            line = node.start_mark.line + 1
            raise _Refused(f"an alias refers to a node that contains it (line {line})")
        open_nodes.add(key)
        if isinstance(node, SequenceNode):
            children = node.value
        elif isinstance(node, MappingNode):
            children = [part for pair in node.value for part in pair]
        else:
            children = []
        total = 1
        for child in children:
            total += size(child)
            if total > MAX_VALUES:
                raise _Refused(f"aliases expand to more than {MAX_VALUES:,} values")
        open_nodes.discard(key)
        sizes[key] = total
        return total

    return size(root)


def load_yaml(path: Path) -> Any:
    """Return the one YAML document in ``path`` as plain Python values.

    Raises
    ------
    ConfigError
        If the file is missing, larger than ``MAX_BYTES``, not UTF-8 text,
        not valid YAML, nested deeper than ``MAX_DEPTH``, uses more than
        ``MAX_ALIASES`` aliases or expands beyond ``MAX_VALUES`` values, or
        gives a key twice in one mapping.
    """
    if not path.exists():
        raise ConfigError(f"{path}: no such file")
    if not path.is_file():
        raise ConfigError(f"{path}: not a file")
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise ConfigError(
                f"{path}: {size:,} bytes; expected a YAML file of at most {MAX_BYTES:,} bytes"
            )
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a YAML text file (it is not UTF-8 text)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror})") from None
    if "\x00" in text:
        raise ConfigError(f"{path}: not a YAML text file (it holds binary data)")
    try:
        return _compose_and_construct(text)
    except _Refused as exc:
        raise ConfigError(f"{path}: refused: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: YAML syntax error{where}: {problem}") from None


def _compose_and_construct(text: str) -> Any:
    loader = _BoundedLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None
        _expanded_values(root)
        return loader.construct_document(root)
    finally:
        loader.dispose()
