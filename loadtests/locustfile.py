"""Locust entry point: load one agent group of an inventory through its entrypoint.

    locust -f loadtests/locustfile.py --headless --inventory inventory.yaml --group prod/orders \\
        --shape spike:users=10,peak=100,at=20s --timeline timeline.jsonl

``agentha load run`` does the same with defaults, thresholds and an output folder. Secrets
are read from this process's environment, as the inventory's ``${NAME}`` references say;
``--host`` replaces the group's entrypoint (for example to go around a load balancer). In
distributed mode the master sends these options to its workers with each test start.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from locust import LoadTestShape, events
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from loadtests import timeline_plugin  # noqa: F401 - registers the timeline's listeners
from loadtests.errors import LoadError
from loadtests.plan import LoadPlan, load_plan
from loadtests.shapes import Shape, parse_shape
from loadtests.users import ApiCheckUser, configure

__all__ = ["ApiCheckUser", "NamedShape"]

log = logging.getLogger("agentha.load")


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    group = parser.add_argument_group("agentha")
    group.add_argument("--inventory", default="", metavar="FILE", help="agentha inventory file")
    group.add_argument("--group", default="", metavar="ENV/GROUP", help="the group to load")
    group.add_argument(
        "--shape",
        default="steady",
        metavar="NAME[:K=V,...]",
        help="load shape: steady, step, spike or soak, with parameters (see agentha load run)",
    )
    group.add_argument(
        "--pacing",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="each user starts a call every SECONDS (0: back to back; default 1)",
    )
    group.add_argument(
        "--request-timeout", type=float, default=10.0, metavar="SECONDS", help="default 10"
    )


def _shape_of(environment: Environment) -> Shape:
    options = environment.parsed_options
    return parse_shape(getattr(options, "shape", "steady") or "steady")


class NamedShape(LoadTestShape):
    """The shape named by ``--shape``, parsed once at the first tick (on the master)."""

    def __init__(self) -> None:
        super().__init__()
        self.shape: Shape | None = None

    def tick(self) -> tuple[int, float] | None:
        if self.shape is None:
            assert self.runner is not None
            self.shape = _shape_of(self.runner.environment)
        return self.shape.users_at(self.get_run_time())


def _plan(environment: Environment) -> LoadPlan:
    options = environment.parsed_options
    if not options.inventory or not options.group:
        raise LoadError("--inventory FILE and --group ENV/GROUP are required")
    return load_plan(options.inventory, options.group)


@events.init.add_listener
def _check_early(environment: Environment, **_kwargs: Any) -> None:
    """Refuse a bad inventory, group or shape at start, not later in every worker."""
    if environment.parsed_options is None or isinstance(environment.runner, WorkerRunner):
        return  # a worker gets its options from the master with the first spawn message
    try:
        _shape_of(environment)
        _plan(environment)
    except LoadError as exc:
        sys.stderr.write(f"agentha load: error: {exc}\n")
        sys.exit(2)


@events.test_start.add_listener
def _on_test_start(environment: Environment, **_kwargs: Any) -> None:
    if isinstance(environment.runner, MasterRunner):
        return  # the master runs no users
    options = environment.parsed_options
    try:
        plan = _plan(environment)
    except LoadError as exc:
        log.error("agentha load: %s", exc)
        if environment.runner is not None:
            environment.runner.quit()
        return
    configure(
        plan,
        host=environment.host or None,
        pacing_s=max(0.0, options.pacing),
        timeout_s=max(0.1, options.request_timeout),
    )
