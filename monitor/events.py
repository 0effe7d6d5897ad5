"""The event stream: every state transition, numbered, kept in a bounded log.

Readers never get their own queues: they remember the last sequence number they saw and ask
for what came after it. A slow reader cannot make the monitor buffer without bound, and a reader
that reconnects (SSE ``Last-Event-ID``) replays from the same log.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Literal

# agent and group: a state transition; chaos: a chaos run's phase (id: the run); fault: the
# faults a chaos run holds on one agent (old and new: actions joined by "+", or "none").
EventKind = Literal["agent", "group", "chaos", "fault"]


@dataclass(frozen=True, slots=True)
class Event:
    """One transition: ``id`` is an agent id (ENV/GROUP/AGENT), a group id (ENV/GROUP) or,
    for ``chaos``, a chaos run id."""

    seq: int
    time: float
    kind: EventKind
    id: str
    old: str
    new: str
    reason: str

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class EventLog:
    """Numbered events in a ring buffer of ``capacity``; waiters are woken on append."""

    def __init__(self, capacity: int = 10_000, clock: Callable[[], float] = time.time) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._events: deque[Event] = deque(maxlen=capacity)
        self._clock = clock
        self._seq = 0
        self._changed: asyncio.Event | None = None

    @property
    def last_seq(self) -> int:
        return self._seq

    def append(self, kind: EventKind, id: str, old: str, new: str, reason: str) -> Event:
        self._seq += 1
        event = Event(self._seq, self._clock(), kind, id, old, new, reason)
        self._events.append(event)
        if self._changed is not None:
            self._changed.set()
            self._changed = None
        return event

    def since(self, after: int) -> list[Event]:
        """Events with ``seq > after`` still in the log (older ones have been dropped)."""
        if not self._events or after >= self._seq:
            return []
        first = self._events[0].seq
        start = max(0, after + 1 - first)
        return [self._events[i] for i in range(start, len(self._events))]

    async def wait(self, after: int) -> list[Event]:
        """Wait until there are events after ``after``, then return them."""
        while True:
            events = self.since(after)
            if events:
                return events
            if self._changed is None:
                self._changed = asyncio.Event()
            await self._changed.wait()
