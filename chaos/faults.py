"""What a fault is, and the one interface every fault driver implements.

A ``Fault`` is plain data: which driver, which action, on which agent, with which
parameters. It is written to the on-disk journal *before* the driver applies it, and the
journal alone must be enough to revert it later from another process (``agentha chaos
recover``). So a driver is built from its settings (``Driver(settings)``: plain JSON-able
data naming files and environment variables, never a secret value), and ``revert`` needs
nothing but the settings and the fault.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True, slots=True)
class Fault:
    """One fault on one agent."""

    id: str  # unique within a run, e.g. "step-2/orders-1"
    driver: str  # a key of ``chaos.drivers.DRIVERS``
    action: str  # one of the driver's ``actions``
    agent: str  # ENV/GROUP/AGENT
    params: Mapping[str, Any] = field(default_factory=dict)
    # A safety net where the driver supports one (fleetsim TTLs): the fault reverts itself
    # this long after injection even if nobody reverts it. Never the mechanism.
    ttl_s: float | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["params"] = dict(self.params)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Fault:
        return cls(
            id=str(data["id"]),
            driver=str(data["driver"]),
            action=str(data["action"]),
            agent=str(data["agent"]),
            params=dict(data.get("params") or {}),
            ttl_s=data.get("ttl_s"),
        )


class Driver(abc.ABC):
    """Injects and reverts faults of one kind.

    - ``settings`` come from the experiment's ``drivers.NAME`` mapping; ``check_settings``
      and ``check_fault`` refuse bad ones with ``ExperimentError`` before anything runs, so a
      dry run can validate a whole plan.
    - ``inject`` and ``revert`` raise ``DriverError`` with a one-line message; both are
      bounded in time (every control call and command has a timeout).
    - ``revert`` is idempotent: reverting a fault that is not applied (or was half applied)
      is not an error, because recovery after a crash cannot know how far inject got.
    """

    name: ClassVar[str]
    actions: ClassVar[frozenset[str]]

    def __init__(self, settings: Mapping[str, Any]) -> None:
        self.settings = dict(settings)
        self.check_settings()

    def check_settings(self) -> None:
        """Refuse bad settings with ``ExperimentError``; the default accepts any."""
        return None

    def check_fault(self, fault: Fault) -> None:
        """Refuse an action or parameters this driver cannot apply (``ExperimentError``)."""
        from chaos.errors import ExperimentError

        if fault.action not in self.actions:
            raise ExperimentError(
                f"driver {self.name}: no action {fault.action!r}; expected one of "
                + ", ".join(sorted(self.actions))
            )

    @abc.abstractmethod
    async def inject(self, fault: Fault) -> None: ...

    @abc.abstractmethod
    async def revert(self, fault: Fault) -> None: ...

    @abc.abstractmethod
    def describe(self, fault: Fault) -> str:
        """One line for people: what this fault does, e.g. 'stop orders-1 (fleetsim)'."""

    async def close(self) -> None:
        """Release what the driver holds (sessions, processes it started)."""
        return None
