"""A runner's heartbeat: how a runner on another host (sharing the store) is
known to be alive while it holds a run, working or waiting for a decision.

Each runner process keeps one small aggregate of its own, a
:class:`RunnerLease`, whose id follows from the run and the runner's id: while
it holds a workspace, it records a ``recovery:RunnerHeartbeat`` there every
:data:`HEARTBEAT_S` seconds (from a thread of its host,
:meth:`~recovery_core.ports.RunnerHost` ``keep_alive``). A claim whose runner is
on another host and whose latest heartbeat (or, without one, the claim itself)
is older than the stale timeout (:data:`STALE_AFTER_S` unless the runner is
given another) is taken over. The run's own history stays free of heartbeats:
they are not transitions of the run, and each lease holds one runner's only,
so nothing ever replays another's.
"""

from __future__ import annotations

from typing import Final
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import AggregateCreated, AggregateEvent, BaseAggregate

__all__ = ["HEARTBEAT_S", "STALE_AFTER_S", "RunnerLease", "lease_id"]

#: How often a runner records that it is alive.
HEARTBEAT_S: Final = 10.0
#: How old a runner's latest heartbeat may be before another host's runner
#: takes its claim over: long enough for a store that is slow for a while.
STALE_AFTER_S: Final = 60.0


def lease_id(run_id: UUID | str, runner_id: str) -> UUID:
    """The id of the lease of ``runner_id`` on the run ``run_id``."""
    return uuid5(NAMESPACE_URL, f"recovery-core:lease:{run_id}:{runner_id}")


class RunnerLease(BaseAggregate[UUID]):
    """One runner's heartbeats on one run."""

    TOPIC = "recovery:RunnerLease"

    class Event(AggregateEvent):
        """The base of a lease's events."""

    class Started(Event, AggregateCreated):
        """RunnerLeaseStarted: the runner's first heartbeat on the run."""

        TOPIC = "recovery:RunnerLeaseStarted"
        run_id: str
        runner_id: str
        host: str
        pid: int

    class Heartbeat(Event):
        """RunnerHeartbeat: the runner was alive then."""

        TOPIC = "recovery:RunnerHeartbeat"

    @classmethod
    def start(
        cls, run_id: UUID | str, runner_id: str, host: str, pid: int
    ) -> RunnerLease:
        """The lease of a runner that has recorded no heartbeat yet."""
        return cls._create(
            cls.Started,
            id=lease_id(run_id, runner_id),
            run_id=str(run_id),
            runner_id=runner_id,
            host=host,
            pid=pid,
        )

    def beat(self) -> None:
        """Records a heartbeat."""
        self.trigger_event(self.Heartbeat)
