"""Static checks of the Grafana dashboards: structure, variables, units, and PromQL that parses.

Whether every query returns data, and whether every metric it names is in the monitor's real
exposition, is checked against a real Prometheus in tests/rules/test_rules_end_to_end.py.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import dashboard_queries as dq
import pytest
import yaml

pytestmark = pytest.mark.timeout(30)

DASHBOARDS = dq.load()
BUILTIN = {
    "__rate_interval",
    "__interval",
    "__interval_ms",
    "__range",
    "__range_s",
    "__field",
    "__value",
    "__series",
    "__data",
    "__url_time_range",
    "__from",
    "__to",
}
# Values that make every query valid PromQL for promtool (not meant to return data).
CHECK_VALUES = {
    "datasource": "x",
    "environment": "prod",
    "group": "orders",
    "agent": "a1",
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "1h",
}


def test_dashboards_exist_with_unique_uids() -> None:
    assert set(DASHBOARDS) == {"fleet-overview.json", "agent-detail.json"}
    uids = [d["uid"] for d in DASHBOARDS.values()]
    assert len(set(uids)) == len(uids)
    for uid in uids:
        assert uid.startswith("agentha-") and len(uid) <= 40


def test_files_are_formatted_json() -> None:
    for path in sorted(dq.DASHBOARDS.glob("*.json")):
        text = path.read_text()
        assert text == json.dumps(json.loads(text), indent=2, ensure_ascii=False) + "\n", path


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_panel_ids_unique_and_every_panel_described_with_unit(name: str) -> None:
    dashboard = DASHBOARDS[name]
    ids = [panel["id"] for panel in dq.panels(dashboard)]
    assert len(set(ids)) == len(ids), f"{name}: duplicate panel ids"
    for panel in dq.panels(dashboard):
        if panel["type"] == "row":
            continue
        where = f"{name}: panel {panel['id']} {panel['title']!r}"
        assert panel.get("description", "").strip(), f"{where}: no description"
        assert panel["fieldConfig"]["defaults"].get("unit"), f"{where}: no unit"
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, where
        assert panel["targets"], f"{where}: no query"
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"], where


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_every_variable_is_declared(name: str) -> None:
    dashboard = DASHBOARDS[name]
    declared = [v["name"] for v in dashboard["templating"]["list"]]
    assert declared[0] == "datasource"
    assert dashboard["templating"]["list"][0]["type"] == "datasource"
    assert {"environment", "group", "agent"} <= set(declared)
    used = dq.variables_used(json.dumps(dashboard))
    assert used - BUILTIN <= set(declared), f"{name}: undeclared {used - BUILTIN - set(declared)}"


def test_every_query_parses_as_promql(tmp_path: Path) -> None:
    """Each panel and variable query, with variables filled in, loaded by promtool as a rule."""
    rules = []
    for name, dashboard in DASHBOARDS.items():
        for panel, expr in dq.queries(dashboard):
            rules.append(
                {
                    "record": f"panel_{len(rules)}",
                    "expr": dq.substitute(expr, CHECK_VALUES),
                    "labels": {"where": f"{name} panel {panel['id']}"},
                }
            )
        for annotation, expr in dq.annotation_queries(dashboard):
            rules.append(
                {
                    "record": f"annotation_{len(rules)}",
                    "expr": dq.substitute(expr, CHECK_VALUES),
                    "labels": {"where": f"{name} annotation {annotation['name']}"},
                }
            )
        for variable in dashboard["templating"]["list"]:
            if variable["type"] == "query":
                # label_values(SELECTOR, label) is Grafana's; its selector must be PromQL.
                query = variable["query"]["query"]
                selector = query.removeprefix("label_values(").rsplit(",", 1)[0]
                rules.append(
                    {"record": f"var_{len(rules)}", "expr": dq.substitute(selector, CHECK_VALUES)}
                )
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    done = subprocess.run(
        ["promtool", "check", "rules", str(path)], capture_output=True, text=True, timeout=20
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules)} rules found" in done.stdout


def test_metric_names_are_read_from_queries() -> None:
    expr = (
        'sum by (le, probe) (rate(agentha_probe_duration_seconds_bucket{probe="x"}[5m]))'
        " / on (job) group_left agentha:ratio_1h or vector(1e3) > bool up"
    )
    assert dq.metric_names(expr) == {
        "agentha_probe_duration_seconds_bucket",
        "agentha:ratio_1h",
        "up",
    }


def test_fleet_overview_shows_what_the_issue_asks() -> None:
    exprs = " ".join(expr for _, expr in dq.queries(DASHBOARDS["fleet-overview.json"]))
    for metric in (
        "agentha_group_status",
        "agentha_group_redundancy",
        "agentha_agent_state",
        "agentha_probe_duration_seconds_bucket",
        "agentha_tls_chain_expiry_timestamp_seconds",
        "agentha_tls_legacy_accepted",
        "agentha_plaintext_served",
        "agentha_entrypoint_success",
        "agentha_chaos_run_active",
        "agentha_chaos_fault_active",
        "agentha_chaos_runs_ended_total",
        "agentha_audit_finding",
        "agentha_audit_check_error",
        "agentha_audit_last_run_timestamp_seconds",
    ):
        assert metric in exprs
    titles = [
        panel["title"]
        for panel in dq.panels(DASHBOARDS["fleet-overview.json"])
        if panel["type"] == "row"
    ]
    assert {"Chaos runs", "Audit findings"} <= set(titles)


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_fault_windows_are_annotated_from_the_selected_agents(name: str) -> None:
    """Both dashboards mark chaos faults on their time series, through $datasource."""
    ((annotation, expr),) = [
        (a, e)
        for a, e in dq.annotation_queries(DASHBOARDS[name])
        if "agentha_chaos_fault_active" in e
    ]
    assert annotation["enable"] and annotation["name"] == "Chaos faults"
    assert annotation["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    assert annotation["target"]["datasource"] == annotation["datasource"]
    assert {"environment", "group", "agent"} <= dq.variables_used(expr)
    assert "{{action}}" in annotation["titleFormat"]


def test_provisioning_points_at_the_dashboards_and_one_datasource() -> None:
    provisioning = dq.ROOT / "grafana" / "provisioning"
    sources = yaml.safe_load((provisioning / "datasources" / "agentha.yaml").read_text())
    (source,) = sources["datasources"]
    assert source["type"] == "prometheus" and source["uid"] == "agentha-prometheus"
    providers = yaml.safe_load((provisioning / "dashboards" / "agentha.yaml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file" and provider["folder"] == "agentha"
    # Opt-in examples carry a name Grafana does not load (it reads .yaml, .yml and .json).
    for example in ("contact-points.yaml.example", "notification-policies.yaml.example"):
        assert yaml.safe_load((provisioning / "alerting" / example).read_text())["apiVersion"] == 1
    policy = (provisioning / "alerting" / "notification-policies.yaml.example").read_text()
    assert "REPLACES" in policy
