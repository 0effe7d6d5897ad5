"""YAML that remembers where things are.

PyYAML's composer gives a node tree with positions; we walk it once to map every field path
(``('environments', 0, 'name')``) to its line and to catch duplicate keys, which PyYAML would
otherwise accept silently, keeping the last value. Then the same tree is constructed into data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from monitor.problems import Loc

MERGE_TAG = "tag:yaml.org,2002:merge"


class YamlSyntaxError(Exception):
    """The text is not YAML; ``message`` comes from the parser, without any source excerpt."""

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


@dataclass
class YamlDocument:
    data: Any
    lines: dict[Loc, int] = field(default_factory=dict)
    # (path of the repeated key, its line, line of the first occurrence)
    duplicate_keys: list[tuple[Loc, int, int]] = field(default_factory=list)

    def line_of(self, loc: Loc) -> int | None:
        """The line of ``loc``, or of its nearest ancestor that has one (a missing key)."""
        loc = tuple(loc)
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return self.lines.get(())


# libyaml's parser when PyYAML was built with it: the same nodes and positions, composed in
# less than half the time (most of loading a 10,000-agent inventory).
_FAST = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(text: str) -> YamlDocument:
    """Parse one YAML document (safe tags only). Raises ``YamlSyntaxError``."""
    try:
        return _load(text, _FAST)
    except YamlSyntaxError:
        if _FAST is yaml.SafeLoader:
            raise
    # libyaml's messages leave things out ("found character that cannot start any token",
    # not which): the pure-Python parser says it whole.
    return _load(text, yaml.SafeLoader)


def _load(text: str, loader_class: type) -> YamlDocument:
    loader = loader_class(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return YamlDocument(data=None)
        doc = YamlDocument(data=None)
        _walk(node, (), doc, set())
        doc.data = loader.construct_document(node)
        return doc
    except yaml.MarkedYAMLError as exc:
        # Never str(exc): it quotes the source line, which may hold a secret.
        mark = exc.problem_mark or exc.context_mark
        parts = [p for p in (exc.context, exc.problem) if p]
        raise YamlSyntaxError(", ".join(parts) or "invalid YAML", _line(mark)) from None
    except yaml.YAMLError:
        raise YamlSyntaxError("invalid YAML", None) from None
    finally:
        loader.dispose()


def _line(mark: yaml.Mark | None) -> int | None:
    return None if mark is None else mark.line + 1


def _walk(node: yaml.Node, loc: Loc, doc: YamlDocument, seen: set[int]) -> None:
    # An alias repeats a node already walked: keep the first position, and never loop.
    if id(node) in seen:
        return
    seen.add(id(node))
    doc.lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        first_line: dict[Any, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                continue
            key = key_node.value
            line = key_node.start_mark.line + 1
            if key in first_line:
                doc.duplicate_keys.append(((*loc, key), line, first_line[key]))
                continue
            first_line[key] = line
            doc.lines[(*loc, key)] = line
            _walk(value_node, (*loc, key), doc, seen)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*loc, index), doc, seen)
