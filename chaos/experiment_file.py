"""The experiment file as written: pydantic models, one per YAML mapping, extra keys refused.

These models check what one field (or one small mapping) can check alone: kinds, ranges,
durations, target specs, shapes and thresholds. Rules that need several fields (the planned
run length against ``guards.max_run``, a driver's action list) live in ``chaos.experiment``,
which also turns the models into the resolved, immutable ``Experiment``.

YAML keys name durations without a unit suffix (``duration: 20s``, ``hold: 10s``); the
resolved view names them ``*_s`` in seconds.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from chaos.targets import ALL, TargetSpec, TargetSyntaxError, parse_targets
from loadtests.errors import LoadConfigError
from loadtests.shapes import parse_duration, parse_shape
from loadtests.thresholds import DEFAULT_THRESHOLDS, DEFAULT_WINDOW_S, parse_threshold

DRIVER_NAMES = ("fleetsim", "signal", "command", "proxy", "netns")
PHASES = ("baseline", "fault", "recovery")
GROUP_STATUSES = ("ok", "at_risk", "unavailable")
FORMATS = ("json", "junit", "markdown", "html")

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DURATION_EXPECTED = "expected a duration like 20s, 1m, 500ms or a number of seconds"
MAX_DURATION_S = 7 * 86400.0
URL_EXPECTED = "expected http(s)://HOST[:PORT]"


def _duration(value: Any) -> float:
    if isinstance(value, bool):
        raise PydanticCustomError("bad-duration", DURATION_EXPECTED)
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        try:
            seconds = parse_duration(value)
        except LoadConfigError:
            raise PydanticCustomError("bad-duration", DURATION_EXPECTED) from None
    else:
        raise PydanticCustomError("bad-duration", DURATION_EXPECTED)
    if not math.isfinite(seconds) or seconds < 0:
        raise PydanticCustomError("bad-duration", DURATION_EXPECTED)
    if seconds > MAX_DURATION_S:
        raise PydanticCustomError("bad-duration", "longer than a week; " + DURATION_EXPECTED)
    return seconds


def _positive(value: float) -> float:
    if value <= 0:
        raise PydanticCustomError("bad-duration", "must be more than 0; " + DURATION_EXPECTED)
    return value


def _whole_seconds(value: float) -> float:
    if value < 1 or value != int(value):
        raise PydanticCustomError(
            "bad-duration", "expected whole seconds, at least 1, e.g. 10s or 1m"
        )
    return value


def _targets(value: Any) -> TargetSpec:
    if isinstance(value, TargetSpec):
        return value
    try:
        return parse_targets(value)
    except TargetSyntaxError as exc:
        raise PydanticCustomError("bad-targets", str(exc)) from None


def _group(value: str) -> str:
    env, sep, group = value.partition("/")
    if not sep or not NAME_RE.fullmatch(env) or not NAME_RE.fullmatch(group):
        raise PydanticCustomError(
            "bad-group", "expected ENV/GROUP as in the inventory, e.g. test/orders"
        )
    return value


def _url(value: str) -> str:
    # Never echo the URL: it may carry user:password.
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise PydanticCustomError("bad-url", "not a valid URL; " + URL_EXPECTED) from None
    if parts.scheme not in ("http", "https") or not parts.hostname or value != value.strip():
        raise PydanticCustomError("bad-url", "not an absolute URL; " + URL_EXPECTED)
    if parts.username is not None or parts.password is not None:
        raise PydanticCustomError(
            "credentials-in-url",
            "credentials in a URL are not allowed; expected a token in an environment variable",
        )
    return value


def _env_name(value: str) -> str:
    if not ENV_NAME_RE.fullmatch(value):
        raise PydanticCustomError(
            "bad-env-name",
            "expected the NAME of an environment variable (letters, digits, '_'), "
            "never the token itself",
        )
    return value


def _shape(value: str) -> str:
    try:
        shape = parse_shape(value)
    except LoadConfigError as exc:
        raise PydanticCustomError("bad-shape", "{problem}", {"problem": str(exc)}) from None
    if re.search(r"(^|[:,])\s*duration\s*=", value):
        raise PydanticCustomError(
            "bad-shape",
            "the run sets the load's duration itself; expected the shape without duration=",
        )
    del shape
    return value


def _threshold(value: str) -> str:
    try:
        parse_threshold(value)
    except LoadConfigError as exc:
        raise PydanticCustomError("bad-threshold", "{problem}", {"problem": str(exc)}) from None
    return value


def _ratio(value: Any) -> float:
    # "50%" reads as 0.5; a bare number is a ratio 0..1.
    ratio: float | None = None
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            ratio = float(value.strip()[:-1]) / 100
        except ValueError:
            ratio = None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        ratio = float(value)
    if ratio is None or not 0 <= ratio <= 1:
        raise PydanticCustomError("bad-ratio", "expected a share from 0% to 100%, or 0 to 1")
    return ratio


def _unique(value: list[Any]) -> list[Any]:
    if len(set(value)) != len(value):
        raise PydanticCustomError("bad-value", "an item is listed twice; expected each once")
    return value


Duration = Annotated[float, BeforeValidator(_duration)]
PositiveDuration = Annotated[float, BeforeValidator(_duration), AfterValidator(_positive)]
WindowDuration = Annotated[float, BeforeValidator(_duration), AfterValidator(_whole_seconds)]
Targets = Annotated[TargetSpec, PlainValidator(_targets)]
GroupRef = Annotated[str, AfterValidator(_group)]
Url = Annotated[str, AfterValidator(_url)]
EnvName = Annotated[str, AfterValidator(_env_name)]
ShapeText = Annotated[str, AfterValidator(_shape)]
ThresholdText = Annotated[str, AfterValidator(_threshold)]
Ratio = Annotated[float, BeforeValidator(_ratio)]
DriverName = Literal["fleetsim", "signal", "command", "proxy", "netns"]
Phase = Literal["baseline", "fault", "recovery"]
GroupStatus = Literal["ok", "at_risk", "unavailable"]
Format = Literal["json", "junit", "markdown", "html"]


class FileModel(BaseModel):
    # strict: YAML already gives native types, so "5" for a number is a mistake to report.
    model_config = ConfigDict(extra="forbid", strict=True, hide_input_in_errors=True)


class MonitorSection(FileModel):
    url: Url = Field(description="The monitor's HTTP API, e.g. http://127.0.0.1:9731.")
    token_env: EnvName | None = Field(
        None, description="Name of the environment variable holding the API token."
    )


class HypothesisSection(FileModel):
    window: WindowDuration = Field(
        float(DEFAULT_WINDOW_S), description="Thresholds hold in every window of this length."
    )
    thresholds: Annotated[list[ThresholdText], AfterValidator(_unique)] = Field(
        default_factory=lambda: list(DEFAULT_THRESHOLDS),
        description="Load thresholds, e.g. success>=99.9%, p95<300ms.",
    )
    judge_phases: Annotated[list[Phase], AfterValidator(_unique)] = Field(
        default_factory=lambda: list(PHASES),
        min_length=1,
        description="Phases in which the thresholds apply.",
    )
    group_status: Annotated[list[GroupStatus], AfterValidator(_unique)] = Field(
        default_factory=lambda: ["ok", "at_risk"],
        min_length=1,
        description="Statuses the group may have during the fault phase.",
    )
    max_detection: PositiveDuration | None = Field(
        None, description="Fault to the monitor's first event that sees the agent leave up."
    )
    max_failover: PositiveDuration | None = Field(
        None, description="Fault to the end of errors through the entrypoint."
    )
    max_recovery: PositiveDuration | None = Field(
        None, description="Revert to the agent up again in the monitor."
    )


class LoadSection(FileModel):
    shape: ShapeText = Field("steady:users=10", description="Load shape, without duration.")
    processes: int = Field(0, ge=0, le=256, description="Locust worker processes; 0: one.")
    host: Url | None = Field(None, description="Send the load here instead of the entrypoint.")
    pacing: Duration = Field(1.0, description="Each user starts a call this often (0: no wait).")


class TimingsSection(FileModel):
    warmup: Duration = Field(5.0, description="Load runs this long before the baseline.")
    baseline: PositiveDuration = Field(10.0, description="Steady state before any fault.")
    recovery: Duration = Field(10.0, description="Watched after the last revert.")
    preflight_timeout: PositiveDuration = Field(
        30.0, description="How long to wait for the monitor to say the group is steady."
    )


class FaultSpec(FileModel):
    action: str = Field(min_length=1, description="The driver's action, e.g. stop, pause, slow.")
    targets: Targets = Field(description="Which agents of the group.")
    duration: PositiveDuration = Field(description="How long the fault holds before revert.")
    driver: DriverName = Field("fleetsim", description="The fault driver.")
    params: dict[str, Any] = Field(
        default_factory=dict, description="Driver-specific parameters, e.g. {ms: 500}."
    )
    ttl: PositiveDuration | None = Field(
        None, description="Safety net: the fault reverts itself after this (default duration+60s)."
    )

    @model_validator(mode="after")
    def _ttl_covers_duration(self) -> FaultSpec:
        if self.ttl is not None and self.ttl <= self.duration:
            raise PydanticCustomError(
                "bad-ttl",
                "the safety net would revert the fault before its duration ends; "
                "expected a ttl longer than the duration",
                {"field": "ttl"},
            )
        return self


class RollingRestartSpec(FileModel):
    driver: DriverName = Field("fleetsim", description="The fault driver.")
    action: str = Field("stop", min_length=1, description="What a restart does to an agent.")
    drain_first: bool = Field(True, description="Pause (drain) each agent before it goes down.")
    drain: Duration = Field(5.0, description="How long to drain before the restart.")
    hold: Duration = Field(5.0, description="How long each agent stays down.")
    settle: PositiveDuration = Field(
        30.0, description="Longest wait for the agent to be up again before the next one."
    )


class StepEntry(FileModel):
    """Exactly one of ``fault``, ``pause`` or ``rolling_restart``."""

    fault: FaultSpec | None = None
    pause: PositiveDuration | None = None
    rolling_restart: RollingRestartSpec | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> StepEntry:
        given = [k for k in ("fault", "pause", "rolling_restart") if k in self.model_fields_set]
        if len(given) != 1:
            raise PydanticCustomError(
                "step-choice",
                "expected exactly one of fault, pause or rolling_restart, found {found}",
                {"found": " and ".join(given) or "none"},
            )
        return self


class CommandSpec(FileModel):
    run: str = Field(min_length=1, description="The command line.")
    timeout: PositiveDuration = Field(30.0, description="Longest the command may take.")


class ResetSpec(FileModel):
    driver: DriverName = Field("fleetsim", description="The driver whose faults to reset.")
    targets: Targets = Field(ALL, description="Which agents of the group (default all).")


def _command(value: Any) -> Any:
    return {"run": value} if isinstance(value, str) else value


class RollbackEntry(FileModel):
    """Exactly one of ``command`` (a string, or {run, timeout}) or ``reset``."""

    command: Annotated[CommandSpec, BeforeValidator(_command)] | None = None
    reset: ResetSpec | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> RollbackEntry:
        given = [k for k in ("command", "reset") if k in self.model_fields_set]
        if len(given) != 1:
            raise PydanticCustomError(
                "rollback-choice",
                "expected exactly one of command or reset, found {found}",
                {"found": " and ".join(given) or "none"},
            )
        return self


class GuardsSection(FileModel):
    allow_outage: bool = Field(
        False, description="Allow faults that leave the group below min_healthy."
    )
    abort_success_below: Ratio | None = Field(
        0.5, description="Abort when the success ratio drops below this (null: never)."
    )
    abort_over: WindowDuration = Field(
        5.0, description="The success ratio is measured over this many last seconds."
    )
    abort_on_unavailable: bool = Field(
        False, description="Abort when the monitor says the group is unavailable."
    )
    max_run: PositiveDuration = Field(3600.0, description="Abort a run that takes longer.")


class OutputsSection(FileModel):
    dir: str | None = Field(
        None, min_length=1, description="Folder for the run's files, relative to this file."
    )
    formats: Annotated[list[Format], AfterValidator(_unique)] = Field(
        default_factory=lambda: list(FORMATS), min_length=1, description="Reports to write."
    )


class ExperimentFile(FileModel):
    """An agentha chaos experiment."""

    model_config = ConfigDict(title="agentha chaos experiment")

    title: str = Field(min_length=1, description="What the experiment shows, one line.")
    description: str = Field("", description="Longer text for the reports.")
    inventory: str = Field(min_length=1, description="Inventory file, relative to this file.")
    group: GroupRef = Field(description="The agent group under test, ENV/GROUP.")
    monitor: MonitorSection = Field(description="The running monitor to read state from.")
    hypothesis: HypothesisSection = Field(default_factory=HypothesisSection)
    load: LoadSection = Field(default_factory=LoadSection)
    timings: TimingsSection = Field(default_factory=TimingsSection)
    method: list[StepEntry] = Field(min_length=1, description="The steps, in order.")
    rollbacks: list[RollbackEntry] = Field(
        default_factory=list, description="Explicit steps after the automatic reverts."
    )
    guards: GuardsSection = Field(default_factory=GuardsSection)
    drivers: dict[DriverName, dict[str, Any]] = Field(
        default_factory=dict, description="Settings per driver, passed to the driver."
    )
    outputs: OutputsSection = Field(default_factory=OutputsSection)

    @model_validator(mode="after")
    def _title_one_line(self) -> ExperimentFile:
        if "\n" in self.title.strip():
            raise PydanticCustomError("bad-title", "expected a one-line title", {"field": "title"})
        return self
