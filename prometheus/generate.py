#!/usr/bin/env python3
"""Generate agentha's Prometheus rules and Grafana-managed alert rules from one definition.

The definition is prometheus/alerts.yaml. Both outputs are committed; a test regenerates them
and fails when they drift. Needs only PyYAML (an agentha dependency).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEFINITION = ROOT / "prometheus" / "alerts.yaml"
PROMETHEUS_OUT = ROOT / "prometheus" / "rules" / "agentha.rules.yml"
GRAFANA_OUT = ROOT / "grafana" / "provisioning" / "alerting" / "agentha-alerts.yaml"
HEADER = "# Generated from prometheus/alerts.yaml by prometheus/generate.py: edit that file.\n"
SEVERITIES = ("critical", "warning")
ALERT_KEYS = {"alert", "expr", "for", "severity", "runbook", "summary", "description"}
RECORD_KEYS = {"record", "expr"}
# Grafana's way to turn a Prometheus alert expression into a condition: every series the
# query returns is an alerting instance, whatever its value (its own importer does the same).
GRAFANA_CONDITION = "is_number($A) || is_nan($A) || is_inf($A)"
_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w)")
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_ANCHOR = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")

EPILOG = """\
examples:
  python3 prometheus/generate.py            rewrite both generated files
  python3 prometheus/generate.py --check    exit 1 when they differ from the definition
  python3 prometheus/generate.py --datasource-uid my-prom \\
      --grafana-out /etc/grafana/provisioning/alerting/agentha.yaml
  python3 prometheus/generate.py --runbook-base https://wiki.example.com/agentha/runbooks.md \\
      --prometheus-out /etc/prometheus/rules/agentha.yml
"""


class DefinitionError(Exception):
    """The definition file is not what the generator expects."""


def seconds(duration: str) -> float:
    """A Prometheus duration such as ``90s``, ``4h`` or ``1h30m`` in seconds."""
    parts = _DURATION.findall(duration)
    if not parts or "".join(n + unit for n, unit in parts) != duration:
        raise DefinitionError(f"bad duration {duration!r}: expected e.g. 30s, 5m, 1h30m")
    return sum(int(n) * _SECONDS[unit] for n, unit in parts)


def load_definition(path: Path = DEFINITION) -> dict[str, Any]:
    """Read and check the definition; DefinitionError names the file and the rule."""
    try:
        definition = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise DefinitionError(f"{path}: cannot read: {exc}") from None
    if not isinstance(definition, dict) or not isinstance(definition.get("groups"), list):
        raise DefinitionError(f"{path}: expected a mapping with a 'groups' list")
    names: set[str] = set()
    for group in definition["groups"]:
        for rule in group.get("rules", []):
            name = rule.get("alert") or rule.get("record")
            where = f"{path}: group {group.get('name')!r}, rule {name!r}"
            keys = ALERT_KEYS if "alert" in rule else RECORD_KEYS
            if set(rule) != keys:
                raise DefinitionError(f"{where}: expected exactly the keys {sorted(keys)}")
            if name in names:
                raise DefinitionError(f"{where}: the name is used twice")
            names.add(name)
            if "alert" in rule:
                if rule["severity"] not in SEVERITIES:
                    raise DefinitionError(f"{where}: severity must be one of {SEVERITIES}")
                if len(_grafana_uid(name)) > 40:
                    raise DefinitionError(f"{where}: name too long for a Grafana uid (40)")
                if not _ANCHOR.match(rule["runbook"]):
                    raise DefinitionError(f"{where}: runbook must be a section anchor")
                try:
                    seconds(rule["for"])
                except DefinitionError as exc:
                    raise DefinitionError(f"{where}: {exc}") from None
    return definition


def _runbook_url(definition: dict[str, Any], rule: dict[str, Any], base: str | None) -> str:
    return f"{(base or definition['runbook_base']).rstrip('#')}#{rule['runbook']}"


def prometheus_rules(
    definition: dict[str, Any],
    *,
    runbook_base: str | None = None,
    max_for: str | None = None,
) -> dict[str, Any]:
    """The Prometheus rule file; ``max_for`` caps every ``for`` (for end-to-end tests)."""
    groups = []
    for group in definition["groups"]:
        rules = []
        for rule in group["rules"]:
            if "record" in rule:
                rules.append({"record": rule["record"], "expr": rule["expr"]})
                continue
            wait = rule["for"]
            if max_for is not None and seconds(wait) > seconds(max_for):
                wait = max_for
            rules.append(
                {
                    "alert": rule["alert"],
                    "expr": rule["expr"],
                    "for": wait,
                    "labels": {"severity": rule["severity"]},
                    "annotations": {
                        "summary": rule["summary"],
                        "description": rule["description"],
                        "runbook_url": _runbook_url(definition, rule, runbook_base),
                    },
                }
            )
        groups.append({"name": group["name"], "rules": rules})
    return {"groups": groups}


def _inline_records(expr: str, records: dict[str, str]) -> str:
    for name, body in records.items():
        expr = re.sub(rf"(?<![\w:]){re.escape(name)}(?![\w:])", f"({body})", expr)
    return expr


def _grafana_uid(alert: str) -> str:
    words = re.findall(r"[A-Z][a-z0-9]*", alert)
    return "-".join(w.lower() for w in words)  # AgenthaAgentDown -> agentha-agent-down


def grafana_rules(
    definition: dict[str, Any],
    *,
    runbook_base: str | None = None,
    datasource_uid: str | None = None,
) -> dict[str, Any]:
    """Grafana-managed alert rules (file provisioning), one Grafana group per alert group.

    Recording rules are inlined into the expressions, so Grafana needs only the raw metrics.
    """
    settings = definition["grafana"]
    source = datasource_uid or settings["datasource_uid"]
    records = {
        rule["record"]: rule["expr"]
        for group in definition["groups"]
        for rule in group["rules"]
        if "record" in rule
    }
    groups = []
    for group in definition["groups"]:
        alerts = [rule for rule in group["rules"] if "alert" in rule]
        if not alerts:
            continue
        rules = []
        for rule in alerts:
            query = {
                "refId": "A",
                "datasource": {"type": "prometheus", "uid": source},
                "expr": _inline_records(rule["expr"], records),
                "instant": True,
                "range": False,
            }
            condition = {
                "refId": "B",
                "datasource": {"type": "__expr__", "uid": "__expr__"},
                "type": "math",
                "expression": GRAFANA_CONDITION,
            }
            rules.append(
                {
                    "uid": _grafana_uid(rule["alert"]),
                    "title": rule["alert"],
                    "condition": "B",
                    "data": [
                        {
                            "refId": "A",
                            "relativeTimeRange": {"from": 600, "to": 0},
                            "datasourceUid": source,
                            "model": query,
                        },
                        {"refId": "B", "datasourceUid": "__expr__", "model": condition},
                    ],
                    "noDataState": "OK",
                    "execErrState": "Error",
                    "for": rule["for"],
                    "labels": {"severity": rule["severity"]},
                    "annotations": {
                        # In Grafana $value is a text listing every query; the number is here.
                        "summary": rule["summary"].replace("$value", "$values.A.Value"),
                        "description": rule["description"].replace("$value", "$values.A.Value"),
                        "runbook_url": _runbook_url(definition, rule, runbook_base),
                    },
                    "isPaused": False,
                }
            )
        groups.append(
            {
                "orgId": 1,
                "name": group["name"],
                "folder": settings["folder"],
                "interval": settings["interval"],
                "rules": rules,
            }
        )
    return {"apiVersion": 1, "groups": groups}


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, text: str) -> yaml.Node:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _str)


def dump(document: dict[str, Any]) -> str:
    """YAML text with the generated-file header; multi-line strings as literal blocks."""
    body = yaml.dump(document, Dumper=_Dumper, sort_keys=False, width=1000, allow_unicode=True)
    return HEADER + body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="prometheus/generate.py",
        description="Write the Prometheus rules and the Grafana-managed alert rules "
        "from prometheus/alerts.yaml.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--definition", type=Path, default=DEFINITION, metavar="FILE")
    parser.add_argument("--prometheus-out", type=Path, default=PROMETHEUS_OUT, metavar="FILE")
    parser.add_argument("--grafana-out", type=Path, default=GRAFANA_OUT, metavar="FILE")
    parser.add_argument("--runbook-base", metavar="URL", help="where docs/runbooks.md is published")
    parser.add_argument(
        "--datasource-uid", metavar="UID", help="Grafana Prometheus data source the rules query"
    )
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 when an output differs"
    )
    args = parser.parse_args(argv)
    try:
        definition = load_definition(args.definition)
    except DefinitionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    outputs = {
        args.prometheus_out: dump(prometheus_rules(definition, runbook_base=args.runbook_base)),
        args.grafana_out: dump(
            grafana_rules(
                definition, runbook_base=args.runbook_base, datasource_uid=args.datasource_uid
            )
        ),
    }
    stale = 0
    for path, text in outputs.items():
        if args.check:
            current = path.read_text() if path.exists() else None
            if current != text:
                print(f"{path}: differs from {args.definition}; run {parser.prog}", file=sys.stderr)
                stale += 1
            continue
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        except OSError as exc:
            print(f"error: {path}: cannot write: {exc.strerror or exc}", file=sys.stderr)
            return 2
        print(f"wrote {path}", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
