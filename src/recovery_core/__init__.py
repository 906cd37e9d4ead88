"""recovery-core: event-sourced runs of execution plans that halt, record,
quarantine and recover when a batch fails.

This package is the domain and the application; it touches no git, no
processes, no network and no terminal. The adapters (the git workspace, step
runners, strategies, notifiers) live in ``recovery_adapters``. A host opens an
app (``RecoveryApp.open(url)``), makes a runner for a plan and a workspace
(``app.runner(load_plan(path), workspace=...)``), and either runs the plan
(``runner.run()``) or makes a batch's change in its own code inside
``with runner.batch(batch_id) as session:``; outcomes are typed values. See
docs/tutorial/embedding.md and docs/reference/api.md.
"""

from recovery_core.application import RecoveryApp, RunSummary
from recovery_core.errors import (
    CipherKeyError,
    ConflictError,
    EnvironmentFailure,
    IllegalTransition,
    IntegrityError,
    PatchRefused,
    PlanCannotRun,
    PlanError,
    RecoveryError,
    StoreURLError,
    UnknownBatch,
    UnknownPoint,
    UnknownRun,
)
from recovery_core.fingerprint import failure_fingerprint, normalise_error
from recovery_core.hooks import (
    BatchEnd,
    BatchStart,
    FailureReport,
    Hooks,
    StepResult,
    StepStart,
)
from recovery_core.plan import (
    Action,
    Batch,
    ExecutionPlan,
    Policy,
    Step,
    load_plan,
    parse_plan,
)
from recovery_core.ports import (
    CheckedPatch,
    Committed,
    FailureContext,
    Notification,
    Notifier,
    Projection,
    ProjectionUpdate,
    Quarantine,
    RecoveryOutcome,
    RecoveryStrategy,
    RunnerHost,
    Sandbox,
    StepContext,
    StepOutcome,
    StepRunner,
    Workspace,
    prevalidation_passed,
    runs_no_workspace_code,
)
from recovery_core.projections import FailureLogEntry
from recovery_core.records import (
    BatchView,
    ClaimView,
    Decision,
    DecisionView,
    Failure,
    FailureView,
    OpenDecision,
    RunState,
    RunView,
)
from recovery_core.registry import PluginError
from recovery_core.run import verify_chain
from recovery_core.runner import (
    Aborted,
    BatchOutcome,
    BatchSession,
    Completed,
    Halted,
    Outcome,
    Runner,
    Verified,
)
from recovery_core.steps import register_step_kind
from recovery_core.strategies import (
    NoopStrategy,
    available_strategies,
    batch_strategies,
    get_strategy,
    register_strategy,
)

__all__ = [
    "Aborted",
    "Action",
    "Batch",
    "BatchEnd",
    "BatchOutcome",
    "BatchSession",
    "BatchStart",
    "BatchView",
    "CheckedPatch",
    "CipherKeyError",
    "ClaimView",
    "Committed",
    "Completed",
    "ConflictError",
    "Decision",
    "DecisionView",
    "EnvironmentFailure",
    "ExecutionPlan",
    "Failure",
    "FailureContext",
    "FailureLogEntry",
    "FailureReport",
    "FailureView",
    "Halted",
    "Hooks",
    "IllegalTransition",
    "IntegrityError",
    "NoopStrategy",
    "Notification",
    "Notifier",
    "OpenDecision",
    "Outcome",
    "PatchRefused",
    "PlanCannotRun",
    "PlanError",
    "PluginError",
    "Policy",
    "Projection",
    "ProjectionUpdate",
    "Quarantine",
    "RecoveryApp",
    "RecoveryError",
    "RecoveryOutcome",
    "RecoveryStrategy",
    "RunState",
    "RunSummary",
    "RunView",
    "Runner",
    "RunnerHost",
    "Sandbox",
    "Step",
    "StepContext",
    "StepOutcome",
    "StepResult",
    "StepRunner",
    "StepStart",
    "StoreURLError",
    "UnknownBatch",
    "UnknownPoint",
    "UnknownRun",
    "Verified",
    "Workspace",
    "available_strategies",
    "batch_strategies",
    "failure_fingerprint",
    "get_strategy",
    "load_plan",
    "normalise_error",
    "parse_plan",
    "prevalidation_passed",
    "register_step_kind",
    "register_strategy",
    "runs_no_workspace_code",
    "verify_chain",
]
