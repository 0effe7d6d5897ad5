"""Reading agentha's Grafana dashboards: panels, variables and PromQL queries.

Shared by the static dashboard checks and the end-to-end test (which imports it by path).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "grafana" / "dashboards"
# $name, ${name}, ${name:format}, ${name.path} and the old [[name]].
VARIABLE = re.compile(r"\$\{(\w+)[^}]*\}|\$(\w+)|\[\[(\w+)\]\]")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_NAME = re.compile(r"(?<![\w.])[a-zA-Z_:][\w:]*")
_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "inf", "nan", "atan2", "group_left", "group_right"}
)


def load() -> dict[str, dict[str, Any]]:
    """Every dashboard file, by file name."""
    return {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}


def panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows and the panels inside collapsed rows included."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def queries(dashboard: Mapping[str, Any]) -> Iterator[tuple[dict[str, Any], str]]:
    """(panel, expr) for every panel query."""
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            yield panel, target["expr"]


def annotation_queries(dashboard: Mapping[str, Any]) -> Iterator[tuple[dict[str, Any], str]]:
    """(annotation, expr) for every Prometheus annotation query (Grafana's built-ins have none)."""
    for annotation in dashboard.get("annotations", {}).get("list", []):
        expr = annotation.get("target", {}).get("expr")
        if expr:
            yield annotation, expr


def variables_used(text: str) -> set[str]:
    return {next(g for g in match.groups() if g) for match in VARIABLE.finditer(text)}


def substitute(expr: str, values: Mapping[str, str]) -> str:
    """The query with each variable replaced by ``values[name]``."""

    def value(match: re.Match[str]) -> str:
        return values[next(g for g in match.groups() if g)]

    return VARIABLE.sub(value, expr)


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (not functions, labels or keywords)."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    names = set()
    for match in _NAME.finditer(text):
        before = text[match.start() - 1] if match.start() else " "
        if before.isdigit() or match[0] in _KEYWORDS:
            continue  # the exponent of a number such as 1e3, or an operator
        if text[match.end() :].lstrip().startswith("("):
            continue  # a function or an aggregation
        names.add(match[0])
    return names
