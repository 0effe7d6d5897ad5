"""Reports made from hand-built run records: JUnit read back by junitparser, the Markdown
summary, and the HTML page parsed and searched for its chart and verdict."""

from __future__ import annotations

import logging
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from junitparser import Error, Failure, JUnitXml, TestSuite

from chaos.record import (
    Check,
    FaultWindow,
    Phase,
    PhaseStats,
    RunRecord,
    Second,
    StateChange,
)
from chaos.reports import REPORT_FILES, html_report, junit_xml, markdown_summary, write_reports
from chaos.reports.chart import MAX_POINTS, points, time_span

pytestmark = pytest.mark.timeout(30)

T0 = 1_764_459_300.0
ALL_FORMATS = ["json", "junit", "markdown", "html"]


def make_record(
    *,
    verdict: str = "pass",
    seconds: int = 60,
    title: str = "Stop one agent",
    failed_checks: int = 0,
) -> RunRecord:
    """A run on test/orders: baseline, one stop fault at 20-35 s, recovery."""
    exit_code = {"pass": 0, "fail": 1, "aborted": 2, "error": 3}[verdict]
    record = RunRecord(
        title=title,
        experiment="examples/chaos/stop-one-agent.yaml",
        group="test/orders",
        started=T0,
        ended=T0 + seconds,
        verdict=verdict,  # type: ignore[arg-type]
        exit_code=exit_code,
    )
    third = seconds / 3
    record.phases = [
        Phase("preflight", T0, T0 + 1),
        Phase("warmup", T0 + 1, T0 + 5),
        Phase("baseline", T0 + 5, T0 + third),
        Phase("fault", T0 + third, T0 + 2 * third),
        Phase("recovery", T0 + 2 * third, T0 + seconds),
    ]
    record.faults = [
        FaultWindow(
            fault_id="step-0/orders-1",
            driver="fleetsim",
            action="stop",
            agent="test/orders/orders-1",
            description="stop orders-1 (fleetsim)",
            step=0,
            injected_at=T0 + third,
            reverted_at=T0 + third + 15,
            detection_s=2.4,
            failover_s=3.0,
            recovery_s=4.2,
        )
    ]
    for s in range(seconds):
        fail = 3 if third <= s < third + 3 else 0
        record.timeline.append(
            Second(t=int(T0) + s, requests=10, ok=10 - fail, fail=fail, p50_ms=4, p95_ms=9 + s % 5)
        )
    record.states = [
        StateChange(T0 + 1, "test/orders", "group", "unknown", "ok"),
        StateChange(T0 + 1, "test/orders/orders-1", "agent", "unknown", "up"),
        StateChange(T0 + 1, "test/orders/orders-2", "agent", "unknown", "degraded"),
        StateChange(
            T0 + third + 2, "test/orders/orders-1", "agent", "up", "down", "connection refused"
        ),
        StateChange(T0 + third + 2, "test/orders", "group", "ok", "at_risk"),
        StateChange(T0 + third + 19, "test/orders/orders-1", "agent", "down", "up"),
        StateChange(T0 + third + 19, "test/orders", "group", "at_risk", "ok"),
    ]
    record.stats = [
        PhaseStats("baseline", 150, 0, 1.0, 4.0, 9.0, 12.0),
        PhaseStats("fault", 200, 9, 0.955, 4.0, 11.0, 30.0),
        PhaseStats("recovery", 200, 0, 1.0, 4.0, 9.0, 13.0),
    ]
    names = [
        ("success>=99.9% in every 10 s window", "fault", ">= 99.9%", "95.5%"),
        ("p95<300ms in every 10 s window", "fault", "< 300 ms", "14 ms"),
        ("group status in ok, at_risk", "fault", "ok, at_risk", "ok, at_risk"),
        ("detection within 10 s", "run", "<= 10 s", "2.4 s"),
    ]
    for i, (name, phase, expected, observed) in enumerate(names):
        passed = i >= failed_checks
        detail = "" if passed else "window 3 (20-30 s): 95.5%"
        record.checks.append(Check(name, phase, passed, expected, observed, detail))
    record.guard = ["stop orders-1: allowed, 1 of 2 agents stays healthy (min_healthy 1)"]
    if verdict in ("aborted", "error"):
        record.reason = "success ratio 12% over the last 5 s, below 50%"
    return record


# --- write_reports ---


def test_every_format_is_written_and_run_json_reads_back(tmp_path: Path) -> None:
    record = make_record()
    out = tmp_path / "run"
    written = write_reports(record, out, ALL_FORMATS)
    assert written == [out / REPORT_FILES[f] for f in ALL_FORMATS]
    assert [p.name for p in written] == ["run.json", "junit.xml", "summary.md", "report.html"]
    assert all(p.stat().st_size > 0 for p in written)
    assert RunRecord.read(out / "run.json") == record


def test_only_the_chosen_formats(tmp_path: Path) -> None:
    assert write_reports(make_record(), tmp_path, ["html", "junit", "html"]) == [
        tmp_path / "report.html",
        tmp_path / "junit.xml",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junit.xml", "report.html"]


def test_unknown_format_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown report format pdf; expected one of json"):
        write_reports(make_record(), tmp_path, ["html", "pdf"])
    assert list(tmp_path.iterdir()) == []


def test_a_report_that_fails_does_not_stop_the_others(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "junit.xml").mkdir()  # writing the file there fails
    with caplog.at_level(logging.ERROR, logger="chaos.reports"):
        written = write_reports(make_record(), tmp_path, ALL_FORMATS)
    assert [p.name for p in written] == ["run.json", "summary.md", "report.html"]
    assert "could not write" in caplog.text and "junit.xml" in caplog.text
    assert "Traceback" not in caplog.text


def test_reports_can_be_made_again_from_run_json(tmp_path: Path) -> None:
    record = make_record(verdict="fail", failed_checks=1)
    record.write(tmp_path / "run.json")
    again = RunRecord.read(tmp_path / "run.json")
    assert html_report(again) == html_report(record)
    assert junit_xml(again) == junit_xml(record)


# --- JUnit ---


def _suite(path: Path) -> TestSuite:
    xml = JUnitXml.fromfile(str(path))
    suites = list(xml)
    assert len(suites) == 1
    return suites[0]


def test_junit_passing_run(tmp_path: Path) -> None:
    (path,) = write_reports(make_record(), tmp_path, ["junit"])
    suite = _suite(path)
    assert suite.name == "Stop one agent"
    assert (suite.tests, suite.failures, suite.errors) == (4, 0, 0)
    cases = list(suite)
    assert [c.name for c in cases] == [
        "success>=99.9% in every 10 s window",
        "p95<300ms in every 10 s window",
        "group status in ok, at_risk",
        "detection within 10 s",
    ]
    assert all(c.is_passed for c in cases)
    assert cases[0].classname == "chaos.test.orders.fault"
    props = {p.name: p.value for p in suite.properties()}
    assert props["verdict"] == "pass" and props["exit_code"] == "0"
    assert props["group"] == "test/orders"


def test_junit_failed_checks_carry_expected_observed_and_detail(tmp_path: Path) -> None:
    (path,) = write_reports(make_record(verdict="fail", failed_checks=2), tmp_path, ["junit"])
    suite = _suite(path)
    assert (suite.tests, suite.failures, suite.errors) == (4, 2, 0)
    failed = [c for c in suite if not c.is_passed]
    assert [c.name for c in failed] == [
        "success>=99.9% in every 10 s window",
        "p95<300ms in every 10 s window",
    ]
    (result,) = failed[0].result
    assert isinstance(result, Failure)
    assert result.message == "expected >= 99.9%, observed 95.5%"
    assert "expected: >= 99.9%" in result.text
    assert "observed: 95.5%" in result.text
    assert "detail: window 3 (20-30 s): 95.5%" in result.text


@pytest.mark.parametrize("verdict", ["aborted", "error"])
def test_junit_aborted_or_errored_run_adds_an_error_case(tmp_path: Path, verdict: str) -> None:
    record = make_record(verdict=verdict)
    record.checks = record.checks[:1]  # it stopped early
    (path,) = write_reports(record, tmp_path, ["junit"])
    suite = _suite(path)
    assert (suite.tests, suite.failures, suite.errors) == (2, 0, 1)
    run = next(c for c in suite if c.name == "run")
    (result,) = run.result
    assert isinstance(result, Error)
    assert result.type == verdict
    assert result.message == "success ratio 12% over the last 5 s, below 50%"


def test_junit_with_no_checks_is_still_valid(tmp_path: Path) -> None:
    record = make_record(verdict="error")
    record.checks = []
    record.reason = "the monitor at http://127.0.0.1:9731 did not answer"
    (path,) = write_reports(record, tmp_path, ["junit"])
    suite = _suite(path)
    assert (suite.tests, suite.errors) == (1, 1)


def test_junit_escapes_markup_in_names(tmp_path: Path) -> None:
    record = make_record(title='Stop & "hang" <one>', verdict="fail", failed_checks=1)
    record.checks[0].observed = "<b>97%</b> & ]]>"
    (path,) = write_reports(record, tmp_path, ["junit"])
    suite = _suite(path)
    assert suite.name == 'Stop & "hang" <one>'
    (result,) = next(iter(suite)).result
    assert "<b>97%</b> & ]]>" in result.text


# --- Markdown ---


def test_markdown_starts_with_the_verdict_and_has_the_tables() -> None:
    text = markdown_summary(make_record(verdict="fail", failed_checks=1))
    lines = text.splitlines()
    assert lines[0] == "# Stop one agent"
    assert lines[2] == "**Verdict: FAIL (exit code 1)**"
    assert "## Checks (3 of 4 passed)" in text
    assert (
        "| success>=99.9% in every 10 s window | fault | FAIL | >= 99.9% | 95.5% | "
        "window 3 (20-30 s): 95.5% |" in text
    )
    assert "| fault | 200 | 9 | 95.50% | 4 ms | 11 ms | 30 ms |" in text
    assert (
        "| 1 | stop orders-1 (fleetsim) | test/orders/orders-1 | +20.0 s | +35.0 s | "
        "2.4 s | 3.0 s | 4.2 s | - |" in text
    )
    assert "- stop orders-1: allowed, 1 of 2 agents stays healthy (min_healthy 1)" in text
    # Sections come in the documented order.
    order = ["## Checks", "## Load per phase", "## Faults", "## Phases", "## Guard decisions"]
    assert [text.index(h) for h in order] == sorted(text.index(h) for h in order)


def test_markdown_aborted_run_gives_the_reason() -> None:
    text = markdown_summary(make_record(verdict="aborted"))
    assert "**Verdict: ABORTED (exit code 2)**" in text
    assert "Reason: success ratio 12% over the last 5 s, below 50%" in text


def test_markdown_cells_cannot_break_the_table_or_inject_html() -> None:
    record = make_record(title="<script>alert(1)</script>")
    record.checks[0].detail = "a | b\nc"
    text = markdown_summary(record)
    assert "<script>" not in text
    assert "&lt;script>" in text
    assert "| a \\| b c |" in text


def test_markdown_empty_run() -> None:
    record = RunRecord(title="Nothing", experiment="x.yaml", group="test/orders", started=T0)
    text = markdown_summary(record)
    assert "**Verdict: RUNNING**" in text
    assert "No checks were judged." in text and "No fault was injected." in text


# --- HTML ---


class Page(HTMLParser):
    """Every start tag with its attributes, and the text, for assertions."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self.stack: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def find(self, tag: str, cls: str | None = None) -> list[dict[str, str]]:
        return [
            a
            for t, a in self.tags
            if t == tag and (cls is None or cls in a.get("class", "").split())
        ]

    @property
    def all_text(self) -> str:
        return " ".join(" ".join(self.text).split())


def test_html_has_the_chart_and_the_verdict() -> None:
    page = Page(html_report(make_record()))
    (svg,) = page.find("svg")
    assert svg["id"] == "timeline" and "viewbox" in svg
    (success,) = page.find("polyline", "success")
    (p95,) = page.find("polyline", "p95")
    assert len(success["points"].split()) == 60 and len(p95["points"].split()) == 60
    (fault,) = page.find("rect", "fault")
    assert float(fault["width"]) > 0
    assert [a for a in page.find("text", "fault-label")]
    assert len(page.find("line", "phase")) == 5
    assert {"state-up", "state-down", "state-degraded", "state-ok", "state-at_risk"} <= {
        c for a in page.find("rect", "state") for c in a["class"].split()
    }
    text = page.all_text
    assert "Verdict: PASS (exit code 0)" in text
    assert "step 1: stop orders-1" in text
    assert page.find("header", "verdict-pass")


def test_html_failed_run_marks_failed_checks() -> None:
    page = Page(html_report(make_record(verdict="fail", failed_checks=2)))
    assert page.find("header", "verdict-fail")
    assert len(page.find("tr", "failed")) == 2
    assert "Verdict: FAIL (exit code 1)" in page.all_text
    assert "Checks (2 of 4 passed)" in page.all_text


def test_html_aborted_run_shows_the_reason() -> None:
    page = Page(html_report(make_record(verdict="aborted")))
    assert page.find("header", "verdict-aborted")
    assert "success ratio 12% over the last 5 s, below 50%" in page.all_text


def test_html_escapes_every_string() -> None:
    record = make_record(title="<script>alert('t')</script>")
    record.reason = '"><img src=x onerror=alert(1)>'
    record.faults[0].description = "<script>alert('f')</script>"
    record.states[3].reason = "</title><script>alert('s')</script>"
    record.guard = ["<iframe src=//evil>"]
    record.notes = ["<b>note</b>"]
    text = html_report(record)
    page = Page(text)
    assert page.find("script") == []
    assert page.find("img") == [] and page.find("iframe") == [] and page.find("b") == []
    assert "<script>alert('t')</script>" in page.all_text  # shown as text
    assert "&lt;script&gt;alert(&#x27;t&#x27;)&lt;/script&gt;" in text


def test_html_is_self_contained() -> None:
    text = html_report(make_record())
    page = Page(text)
    assert page.find("script") == [] and page.find("link") == []
    assert all("src" not in attrs for _, attrs in page.tags)
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text)
    assert "@import" not in text and "url(" not in text


def test_html_long_run_is_downsampled_and_keeps_a_short_outage() -> None:
    record = make_record(seconds=1000)
    page = Page(html_report(record))
    (success,) = page.find("polyline", "success")
    values = success["points"].split()
    assert 300 <= len(values) <= MAX_POINTS
    # The 3-second error burst at 333 s still shows as a dip below the 100% line.
    ys = [float(v.split(",")[1]) for v in values]
    assert max(ys) > min(ys)
    assert "Success (per 2 s)" in page.all_text
    # Every x lies inside the plot.
    xs = [float(v.split(",")[0]) for v in values]
    assert min(xs) >= 150 and max(xs) <= 980


def test_html_gap_in_the_load_breaks_the_line() -> None:
    record = make_record()
    for second in record.timeline[30:40]:
        second.requests = second.ok = second.fail = 0
        second.p95_ms = None
    page = Page(html_report(record))
    assert len(page.find("polyline", "success")) == 2
    assert len(page.find("polyline", "p95")) == 2


def test_html_run_without_load_or_states() -> None:
    record = RunRecord(
        title="Preflight failed",
        experiment="x.yaml",
        group="test/orders",
        started=T0,
        ended=T0 + 3,
        verdict="error",
        exit_code=3,
        reason="the group is unavailable before any fault",
    )
    page = Page(html_report(record))
    assert page.find("svg") and page.find("polyline") == []
    assert "no state changes were recorded" in page.all_text
    assert "Verdict: ERROR (exit code 3)" in page.all_text


def test_chart_buckets() -> None:
    record = make_record(seconds=1000)
    t0, t1 = time_span(record)
    assert (t0, t1) == (T0, T0 + 1000)
    pts = points(record, t0, 2)
    assert len(pts) == 500
    burst = [p for p in pts if p.success is not None and p.success < 1]
    # Failures in seconds 334, 335 and 336: the buckets 334-335 and 336-337 of 20 requests.
    assert [p.success for p in burst] == [pytest.approx(0.7), pytest.approx(0.85)]
