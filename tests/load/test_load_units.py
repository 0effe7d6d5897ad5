"""The pure parts of loadtests: shapes, latency buckets, timeline lines, thresholds, payloads."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import pytest

from loadtests.errors import LoadConfigError
from loadtests.latency import Histogram, bucket
from loadtests.shapes import SHAPES, parse_duration, parse_shape
from loadtests.thresholds import evaluate, parse_threshold
from loadtests.timeline import Second, Tally, TimelineRecorder, TimelineWriter, read_timeline
from monitor.payloads import TemplateError, parse_body, parse_template

pytestmark = pytest.mark.timeout(10)


# --- shapes ---


def test_every_shape_has_defaults_and_ends() -> None:
    for name, cls in SHAPES.items():
        shape = parse_shape(name)
        assert isinstance(shape, cls)
        assert shape.users_at(0) is not None
        assert shape.users_at(shape.duration) is None
        assert parse_shape(shape.spec()) == shape  # the spec written back reads the same


def test_steady_and_overrides() -> None:
    shape = parse_shape("steady:ramp=2s", users="8", duration="30s")
    assert shape.users_at(0) == (8, 4.0)
    assert shape.users_at(29.9) == (8, 4.0)
    assert shape.users_at(30) is None
    # Written parameters win over overrides.
    assert parse_shape("steady:users=3", users="8").users_at(0)[0] == 3


def test_step_climbs_to_its_ceiling() -> None:
    shape = parse_shape("step:start=5,step=5,every=10s,users=20,duration=60s")
    assert [shape.users_at(t)[0] for t in (0, 9.9, 10, 25, 59)] == [5, 5, 10, 15, 20]


def test_spike_peaks_only_during_hold() -> None:
    shape = parse_shape("spike:users=10,peak=100,at=20s,hold=10s,rise=2s,duration=60s")
    assert [shape.users_at(t)[0] for t in (0, 19.9, 20, 29.9, 30)] == [10, 10, 100, 100, 10]
    assert shape.users_at(20)[1] == 45.0  # 90 users over 2 s
    assert shape.peak_users == 100


def test_soak_is_long_by_default() -> None:
    assert parse_shape("soak").duration == 3600


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ramp", "unknown shape 'ramp'; expected one of steady, step, spike, soak"),
        ("steady:speed=3", "shape steady: unknown parameter 'speed'"),
        ("steady:users", "shape steady: 'users' is not KEY=VALUE"),
        ("steady:users=1,users=2", "shape steady: users is given twice"),
        ("spike:peak=lots", "shape spike: peak: 'lots' is not a user count"),
        ("steady:duration=0", "shape steady: duration must be more than 0"),
        ("soak:duration=9d", "shape soak: duration: '9d' is not a duration"),
    ],
)
def test_bad_shapes_are_named(text: str, message: str) -> None:
    with pytest.raises(LoadConfigError, match="^" + message.replace("(", r"\(")):
        parse_shape(text)


def test_durations() -> None:
    assert [parse_duration(t) for t in ("90", "90s", "5m", "1.5h", "500ms")] == [
        90,
        90,
        300,
        5400,
        0.5,
    ]


# --- latency ---


def test_buckets_keep_two_significant_digits() -> None:
    assert [bucket(v) for v in (0, 0.0123, 4.37, 12.34, 123.4, 1234)] == [
        0,
        0.012,
        4.4,
        12,
        120,
        1200,
    ]


def test_percentiles_are_nearest_rank_and_merge_exactly() -> None:
    a, b = Histogram(), Histogram()
    for ms in range(1, 51):
        a.add(ms)
    for ms in range(51, 101):
        b.add(ms)
    a.merge(b)
    assert (a.total, a.percentile(0.5), a.percentile(0.95), a.percentile(0.99), a.max()) == (
        100,
        50,
        95,
        99,
        100,
    )
    assert Histogram().percentile(0.5) is None


# --- timeline ---


def _write(recorder: TimelineRecorder, start: int, until: int, users: dict[int, int]) -> list:
    out = io.StringIO()
    writer = TimelineWriter(out, start)
    writer.write_until(recorder, until, users)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_writer_fills_every_second_and_reader_adds_late_lines(tmp_path: Path) -> None:
    recorder = TimelineRecorder()
    recorder.record(100, "a", True, 4.0)
    recorder.record(100, "a", False, 9.0)
    recorder.record(102, "b", True, 20.0)
    out = io.StringIO()
    writer = TimelineWriter(out, 100)
    writer.write_until(recorder, 103, {100: 2, 101: 2, 102: 3})
    # A worker's report for second 100 arrives after it was written: a late line.
    worker = TimelineRecorder()
    worker.record(100, "a", True, 5.0)
    recorder.merge(worker.drain())
    writer.finish(recorder, {})
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(line["t"], line["elapsed"], line.get("late", False)) for line in lines] == [
        (100, 0, False),
        (101, 1, False),
        (102, 2, False),
        (100, 0, True),
    ]
    assert lines[0]["total"] == {
        "requests": 2,
        "ok": 1,
        "fail": 1,
        "p50_ms": 4.0,
        "p95_ms": 9.0,
        "p99_ms": 9.0,
        "max_ms": 9.0,
    }
    assert lines[0]["endpoints"]["a"]["latency_hist"] == {"4": 1, "9": 1}
    assert lines[1]["endpoints"] == {} and lines[1]["users"] == 2
    path = tmp_path / "timeline.jsonl"
    path.write_text(out.getvalue())
    seconds = read_timeline(path)
    assert [s.t for s in seconds] == [100, 101, 102]
    first = seconds[0].endpoints["a"]
    assert (first.ok, first.fail, first.latency.total) == (2, 1, 3)


def test_reader_names_a_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "timeline.jsonl"
    path.write_text('{"t": 1, "elapsed": 0, "users": 0, "endpoints": {}}\nnot json\n')
    with pytest.raises(LoadConfigError, match=r"timeline.jsonl:2: not a timeline line"):
        read_timeline(path)


# --- thresholds ---


def _second(elapsed: int, ok: int, fail: int, ms: float = 5.0, users: int = 5) -> Second:
    tally = Tally(ok, fail)
    tally.latency.add(ms, ok + fail)
    return Second(1000 + elapsed, elapsed, users, {"list-orders": tally} if ok + fail else {})


@pytest.mark.parametrize(
    ("text", "metric", "op", "value", "endpoint"),
    [
        ("success>=99.9%", "success", ">=", 0.999, None),
        ("success > 0.95", "success", ">", 0.95, None),
        ("p95<300ms", "p95", "<", 300, None),
        ("p99.9<=1.5s", "p99.9", "<=", 1500, None),
        ("list-orders:max<2000", "max", "<", 2000, "list-orders"),
    ],
)
def test_thresholds_parse(text: str, metric: str, op: str, value: float, endpoint: str) -> None:
    threshold = parse_threshold(text)
    assert (threshold.metric, threshold.op, threshold.endpoint) == (metric, op, endpoint)
    assert threshold.value == pytest.approx(value)


@pytest.mark.parametrize("text", ["success>=150%", "p95<30%", "success>=3ms", "p95", "rps>10"])
def test_bad_thresholds_are_refused(text: str) -> None:
    with pytest.raises(LoadConfigError, match="threshold"):
        parse_threshold(text)


def test_a_failing_window_is_named_and_the_others_pass() -> None:
    seconds = [_second(e, 100, 0) for e in range(10)]
    seconds[6] = _second(6, 90, 10)
    verdict = evaluate(seconds, [parse_threshold("success>=99.9%")], window_s=5)
    assert not verdict.passed
    (line,) = verdict.lines()
    assert line == (
        "FAIL success>=99.9% in window 2 (5-10 s, 00:16:45-00:16:50 UTC): 98.00% (10 of 500 failed)"
    )


def test_latency_windows_and_worst_value() -> None:
    seconds = [_second(e, 10, 0, ms=5.0 if e < 4 else 50.0) for e in range(6)]
    verdict = evaluate(seconds, [parse_threshold("p95<100ms")], window_s=3)
    assert verdict.passed
    assert verdict.lines() == ["PASS p95<100ms in all 2 windows of 3 s (worst 50 ms)"]
    failing = evaluate(seconds, [parse_threshold("p95<10ms")], window_s=3)
    assert [f.window.index for f in failing.results[0].failures] == [1]


def test_a_window_where_nothing_completed_fails_success_only() -> None:
    seconds = [_second(e, 0 if e in (2, 3) else 10, 0) for e in range(6)]
    verdict = evaluate(
        seconds, [parse_threshold("success>=99%"), parse_threshold("p95<1s")], window_s=2
    )
    success, latency = verdict.results
    assert [f.observed for f in success.failures] == ["no request completed with 5 users"]
    assert latency.passed and latency.windows_checked == 2


def test_endpoint_thresholds_look_at_that_endpoint_only() -> None:
    seconds = [_second(0, 10, 5)]
    assert evaluate(seconds, [parse_threshold("other:success>=99%")], 10).passed
    assert not evaluate(seconds, [parse_threshold("list-orders:success>=99%")], 10).passed


# --- payloads ---


def test_templates_fill_synthetic_values() -> None:
    rng = random.Random(7)
    path = parse_template("/api/orders/{int:1-50}?ref={uuid}&x={{y}}", "path")
    rendered = path.render(rng)
    number = int(rendered.split("/")[3].split("?")[0])
    assert 1 <= number <= 50 and rendered.endswith("&x={y}")
    body = parse_body(
        {"customer": "{name}", "items": [{"sku": "SKU-{hex}", "qty": "{int:1-9}"}], "n": 3},
        "body",
    ).render(rng)
    assert body["customer"].startswith("synthetic-")
    assert isinstance(body["items"][0]["qty"], int) and body["n"] == 3
    assert parse_body({"plain": "text"}, "body").render(rng) == {"plain": "text"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("/a/{email}", r"path: unknown placeholder \{email\}"),
        ("/a/{", r"path: unmatched '\{'"),
        ("/a/{int:9-1}", r"path: \{int:9-1\} expected"),
    ],
)
def test_bad_templates_are_named(text: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        parse_template(text, "path")


# --- OAuth2 token answers ---


def test_token_lifetime_and_refresh_margin() -> None:
    from loadtests.oauth import parse_token_answer

    token = parse_token_answer(200, b'{"access_token": "abc", "expires_in": 3600}', now=100.0)
    assert token is not None and token.value == "abc"
    assert token.refresh_at == 100.0 + 3600 - 30  # refreshed 30 s before it expires
    short = parse_token_answer(200, b'{"access_token": "abc", "expires_in": 60}', now=0.0)
    assert short is not None and short.refresh_at == 54.0  # or at 90 % of a short life
    default = parse_token_answer(200, b'{"access_token": "abc"}', now=0.0)
    assert default is not None and default.refresh_at == 270.0  # 300 s assumed


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (401, b'{"error": "invalid_client"}'),
        (200, b"not json"),
        (200, b'{"token": "abc"}'),
        (200, b'{"access_token": ""}'),
        (200, b'{"access_token": "abc", "expires_in": 0}'),
        (200, None),
    ],
)
def test_unusable_token_answers(status: int, body: bytes | None) -> None:
    from loadtests.oauth import parse_token_answer

    assert parse_token_answer(status, body, now=0.0) is None


def test_timeline_tail_reads_only_what_was_added(tmp_path) -> None:
    from loadtests.timeline import TimelineTail

    def line(t: int, ok: int, late: bool = False) -> str:
        hist = {"5": ok}
        data = {"t": t, "elapsed": t - 100, "users": 2, "endpoints": {"a": {
            "ok": ok, "fail": 0, "latency_hist": hist}}}  # fmt: skip
        if late:
            data["late"] = True
        return json.dumps(data) + "\n"

    path = tmp_path / "timeline.jsonl"
    tail = TimelineTail(path)
    assert tail.read() == []  # not written yet
    first, second = line(100, 3), line(101, 4)
    path.write_text(first + second[:10])  # the second line half written
    assert [s.t for s in tail.read()] == [100]
    with path.open("a") as handle:
        handle.write(second[10:] + line(100, 2, late=True))
    seconds = tail.read()
    assert [(s.t, s.endpoints["a"].ok) for s in seconds] == [(100, 5), (101, 4)]
    assert tail.read() == seconds  # nothing new
