"""The same stop-one-agent run as in test_chaos_run, behind an HAProxy without health checks.

HAProxy keeps sending calls to the stopped agent (no checks, no retries), so clients see
errors: the run must fail (exit 1), and every report must name the failing window.
"""

from __future__ import annotations

import json

import pytest
from chaos_stack import chaos_stack
from junitparser import Failure, JUnitXml
from load_helpers import agentha

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def test_stopping_one_agent_without_health_checks_fails_and_names_the_window(tmp_path) -> None:
    with chaos_stack(tmp_path / "stack", checks=False) as stack:
        assert set(stack.backend_states().values()) == {"no check"}
        experiment = stack.experiment("naive")
        out = tmp_path / "run"
        done = agentha(
            "chaos", "run", str(experiment), "--out", str(out), env=stack.env, timeout=150
        )
        assert stack.conditions("stage/orders/orders-2")["stopped"] is False  # reverted
    assert done.returncode == 1, done.stdout + done.stderr
    assert "result: fail (exit 1)" in done.stdout
    record = json.loads((out / "run.json").read_text())
    by_phase = {c["phase"]: c for c in record["checks"] if c["expected"] == "success>=99%"}
    assert by_phase["baseline"]["passed"]  # the stack was fine before the fault
    check = by_phase["fault"]
    assert not check["passed"]
    assert check["expected"] == "success>=99%" and check["detail"].startswith("window ")
    fault_stats = next(s for s in record["stats"] if s["phase"] == "fault")
    assert fault_stats["fail"] > 0
    # The failover time is the whole fault: the errors only end when the agent is back.
    (fault,) = record["faults"]
    assert fault["failover_s"] >= 4
    # JUnit: exactly that case failed, with the window in its message.
    suite = next(iter(JUnitXml.fromfile(str(out / "junit.xml"))))
    failures = {case.name: case for case in suite if not case.is_passed}
    failed_checks = {c["name"] for c in record["checks"] if not c["passed"]}
    assert set(failures) == failed_checks and check["name"] in failures
    (result,) = failures[check["name"]].result
    assert isinstance(result, Failure) and "window " in (result.message or "") + (result.text or "")
    assert check["detail"] in (out / "summary.md").read_text()
    html = (out / "report.html").read_text()
    assert "<svg" in html and "FAIL" in html.upper()
