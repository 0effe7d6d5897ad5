"""`agentha chaos` on bad input, the production guard, pruning old runs, and --help."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import yaml
from load_helpers import agentha

INVENTORY = """\
version: 1
environments:
  - name: prod
    profile: production
    groups:
      - name: orders
        entrypoint: https://orders.example.com
        min_healthy: 1
        api_checks: [{name: list-orders, path: /api/orders}]
        agents:
          - {name: orders-1, url: 'https://orders-1.example.com'}
          - {name: orders-2, url: 'https://orders-2.example.com'}
"""


def _experiment(tmp_path: Path, name: str = "experiment", **overrides) -> Path:
    (tmp_path / "inventory.yaml").write_text(INVENTORY)
    data = {
        "title": "prod stop",
        "inventory": "inventory.yaml",
        "group": "prod/orders",
        "monitor": {"url": "http://127.0.0.1:9"},
        "method": [{"fault": {"action": "stop", "targets": "one", "duration": "5s"}}],
        "drivers": {"fleetsim": {"fleet_json": "fleet.json"}},
        **overrides,
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_production_needs_yes_and_nothing_starts_without_it(tmp_path: Path) -> None:
    done = agentha("chaos", "run", str(_experiment(tmp_path)), "--out", str(tmp_path / "run"))
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "agentha: error: prod/orders is in a production environment: add --yes to run faults "
        "on it (try --dry-run first)"
    )
    assert not (tmp_path / "run").exists()


def test_bad_input_is_one_line_with_exit_3(tmp_path: Path) -> None:
    explode = [{"fault": {"action": "explode", "targets": "one", "duration": "5s"}}]
    cases = [
        (tmp_path / "missing.yaml", "missing.yaml: cannot read the file"),
        (_experiment(tmp_path, "nope", group="prod/nope"), "no group 'prod/nope'"),
        (_experiment(tmp_path, "explode", method=explode), "explode"),
    ]
    for path, message in cases:
        done = agentha("chaos", "run", str(path), "--dry-run")
        assert done.returncode == 3, done.stderr
        assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
        assert "Traceback" not in done.stderr


def test_dry_run_without_a_monitor_says_so(tmp_path: Path) -> None:
    done = agentha("chaos", "run", str(_experiment(tmp_path)), "--dry-run")
    assert done.returncode == 3
    assert "step 1: stop prod/orders/orders-" in done.stdout
    assert "guard: cannot read the monitor" in done.stdout


def _run_folder(root: Path, name: str, ops: list[str], age_days: float) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    fault = {"id": "s1/a", "driver": "fleetsim", "action": "stop", "agent": "e/g/a",
             "params": {}, "ttl_s": None}  # fmt: skip
    lines = []
    for op in ops:
        entry = {"t": 0, "op": op}
        entry.update({"fault": fault, "driver_settings": {}} if op == "inject" else
                     {"fault_id": "s1/a", "error": None})  # fmt: skip
        lines.append(json.dumps(entry))
    (folder / "journal.jsonl").write_text("\n".join(lines) + "\n")
    then = time.time() - age_days * 86400
    os.utime(folder, (then, then))
    return folder


def test_prune_keeps_runs_with_faults_still_applied(tmp_path: Path) -> None:
    root = tmp_path / "chaos-runs"
    old_clean = _run_folder(root, "old-clean", ["inject", "injected", "revert"], 40)
    old_held = _run_folder(root, "old-held", ["inject", "injected"], 40)
    recent = _run_folder(root, "recent", ["inject", "injected", "revert"], 1)
    dry = agentha("chaos", "prune", str(root), "--keep-days", "30", "--dry-run")
    assert dry.returncode == 0 and f"would delete {old_clean}" in dry.stdout
    assert old_clean.exists()
    done = agentha("chaos", "prune", str(root), "--keep-days", "30")
    assert done.returncode == 0, done.stderr
    assert f"deleted {old_clean} (40 days old)" in done.stdout
    assert f"kept {old_held}: faults may still be applied" in done.stdout
    assert not old_clean.exists() and old_held.exists() and recent.exists()


def test_help_teaches_with_examples_and_exit_codes() -> None:
    done = agentha("chaos", "run", "--help")
    assert done.returncode == 0
    for text in ("exit codes:", "agentha chaos recover", "--dry-run", "journal.jsonl"):
        assert text in done.stdout
