"""recovery-core: event-sourced runs of execution plans that halt, record,
quarantine and recover when a batch fails.

This package is the domain and the application; it touches no git, no
processes, no network and no terminal. The adapters live in
:mod:`recovery_adapters`.
"""

from recovery_core.application import RecoveryApp, RunSummary
from recovery_core.errors import (
    ConflictError,
    IllegalTransition,
    IntegrityError,
    PlanError,
    RecoveryError,
    StoreURLError,
    UnknownBatch,
    UnknownRun,
)
from recovery_core.plan import Action, Batch, ExecutionPlan, Step, load_plan, parse_plan
from recovery_core.ports import (
    FailureContext,
    Notification,
    Notifier,
    Progress,
    RecoveryOutcome,
    RecoveryStrategy,
    StepContext,
    StepOutcome,
    StepRunner,
    Workspace,
)
from recovery_core.run import BatchView, FailureView, Run, RunView, verify_chain
from recovery_core.runner import Aborted, Completed, Halted, Outcome, Runner
from recovery_core.strategies import NoopStrategy, get_strategy, register_strategy

__all__ = [
    "Aborted",
    "Action",
    "Batch",
    "BatchView",
    "Completed",
    "ConflictError",
    "ExecutionPlan",
    "FailureContext",
    "FailureView",
    "Halted",
    "IllegalTransition",
    "IntegrityError",
    "NoopStrategy",
    "Notification",
    "Notifier",
    "Outcome",
    "PlanError",
    "Progress",
    "RecoveryApp",
    "RecoveryError",
    "RecoveryOutcome",
    "RecoveryStrategy",
    "Run",
    "RunSummary",
    "RunView",
    "Runner",
    "Step",
    "StepContext",
    "StepOutcome",
    "StepRunner",
    "StoreURLError",
    "UnknownBatch",
    "UnknownRun",
    "Workspace",
    "get_strategy",
    "load_plan",
    "parse_plan",
    "register_strategy",
    "verify_chain",
]
