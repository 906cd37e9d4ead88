"""What a failed step leads to, in order, each after the events before it are
saved: the failure and the halt recorded in one save, the projections brought
up to date, the strategy asked (and where it kept the faulty change recorded
with its answer), the batch's policy consulted (its decision, or why it left
the failure to the operator, recorded), the operators notified unless the
policy decided (each delivery recorded), and the failure hooks told."""

from __future__ import annotations

import traceback
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Final
from uuid import UUID

import attrs

from recovery_core.errors import RecoveryError
from recovery_core.hooks import FailureReport, StepResult
from recovery_core.outcomes import Halted, outcome_of
from recovery_core.plan import Batch, ExecutionPlan
from recovery_core.policy import consult
from recovery_core.ports import (
    FailureContext,
    Notification,
    Notifier,
    RecoveryOutcome,
    RecoveryStrategy,
    StepOutcome,
    Workspace,
)
from recovery_core.records import Failure, RunView
from recovery_core.run import Run
from recovery_core.strategies import strategy_provenance
from recovery_core.tracebacks import first_line

if TYPE_CHECKING:
    from recovery_core.application import RecoveryApp

__all__ = ["Halting"]

#: The record's fields a step's outcome gives as they are.
_FROM_OUTCOME: Final = sorted(
    (attrs.fields_dict(Failure).keys() & attrs.fields_dict(StepOutcome).keys())
    - {"component", "error", "duration_s"}
)


@attrs.frozen
class Halting:
    """Handles the failures of one runner's attempts; ``project`` brings the
    projections up to a run's state (with the failure log when asked),
    ``hook`` calls the runner's hooks."""

    app: RecoveryApp
    plan: ExecutionPlan
    workspace: Workspace
    strategy: RecoveryStrategy
    notifiers: tuple[Notifier, ...]
    project: Callable[[UUID, bool], RunView]
    hook: Callable[[str, object], None]
    #: The strategies that batches' policies name, by name
    #: (:func:`recovery_core.strategies.batch_strategies`).
    strategies: Mapping[str, RecoveryStrategy] = attrs.field(factory=dict)

    def strategy_for(self, batch: Batch) -> RecoveryStrategy:
        """The strategy that answers ``batch``'s failures: its policy's, else
        the run's."""
        name = batch.policy.strategy if batch.policy is not None else None
        if name is None or name == self.strategy.name:
            return self.strategy
        return self.strategies[name]

    def proposer(self, name: str | None) -> RecoveryStrategy | None:
        """The strategy recorded under ``name`` as the one that answered a
        failure (and so carries out a ``recover`` of its proposal), among the
        run's and the batches'; None when this runner has none by that name."""
        if name is None or name == self.strategy.name:
            return self.strategy
        found = self.strategies.get(name)
        if found is None:  # registered under another name than it records
            found = next((s for s in self.strategies.values() if s.name == name), None)
        return found

    def fail(
        self,
        run_id: UUID,
        batch: Batch,
        attempt: int,
        phase: str,
        name: str,
        kind: str,
        outcome: StepOutcome,
        changed: tuple[str, ...],
        result: StepResult | None = None,
    ) -> None:
        """Records a failed step and the halt in one save, then (each after its
        events are saved) tells the step hooks, asks the strategy, notifies the
        operators and tells the failure hooks."""
        error = outcome.error or f"{kind} step {name} failed"
        failure = Failure(
            **{n: getattr(outcome, n) for n in _FROM_OUTCOME},
            batch_id=batch.batch_id,
            attempt=attempt,
            step=name,
            phase=phase,
            kind=kind,
            component=outcome.component or batch.component or "",
            error=error,
            duration_s=round(outcome.duration_s, 6),
            changed_files=changed,
        )
        reason = f"{phase}.{name} failed: {first_line(error)}"

        def record(run: Run) -> None:
            run.step_failed(failure)
            run.mark_failed(batch.batch_id, attempt, reason)

        self.app.update(run_id, record)
        self.finish(run_id, batch, result)

    def finish(
        self, run_id: UUID, batch: Batch, result: StepResult | None = None
    ) -> None:
        """Carries the halt of ``batch``'s recorded failure on from where it
        stands: the projections, then what is not recorded yet (the strategy's
        answer, with where it kept the faulty change; the notifications), then
        the failure hooks. Called right after the failure is saved, and by the
        next runner when one was killed on the way (the strategy's quarantine
        keeps what an earlier call already kept)."""
        view = self.project(run_id, True)
        if result is not None:
            self.hook("on_step_result", result)
        state = view.batch(batch.batch_id)
        failure = state.failure
        assert failure is not None
        if state.answer is None:
            answer = self._answer(run_id, batch, failure)
        else:
            answer = RecoveryOutcome(
                analysis=str(state.answer.get("analysis", "")),
                hints=tuple(state.answer.get("hints", ())),
            )
        after = self.project(run_id, answer.quarantine is not None)
        after = self._consult_policy(run_id, batch, after)
        halted = outcome_of(after, made_by_host=not batch.actions)
        assert isinstance(halted, Halted)
        state = after.batch(batch.batch_id)
        by_policy = after.decision is not None and (
            after.decision.decided_by == "policy"
        )
        if not state.notified and not by_policy:
            self._notify(halted, answer, state.policy_note)
        report = FailureReport(
            str(run_id), halted.failure, answer.analysis, halted.decisions, halted.open
        )
        self.hook("on_failure", report)

    def _consult_policy(self, run_id: UUID, batch: Batch, view: RunView) -> RunView:
        """Asks the batch's policy about the failure awaiting a decision, once
        (not again when its verdict, or anyone's decision, is recorded), and
        records what it says: its decision (``PolicyDecided``), or why it left
        the failure to the operator (``PolicyEscalated``). Returns the state
        after that."""
        if view.batch(batch.batch_id).policy_note is not None or view.decision:
            return view
        verdict = consult(view, batch)
        if verdict is None:
            return view
        assert view.awaiting is not None
        attempt = view.awaiting[1]
        decision = verdict.decision

        def record(run: Run) -> None:
            if decision is None:
                run.policy_escalated(batch.batch_id, attempt, reason=verdict.reason)
            else:
                run.policy_decided(
                    batch.batch_id,
                    attempt,
                    decision,
                    rule=verdict.rule,
                    reason=verdict.reason,
                )

        try:
            self.app.update(run_id, record)
        except RecoveryError as exc:  # an operator decided first
            self.hook("on_note", f"the policy of batch {batch.batch_id}: {exc}")
            return self.app.view(run_id)
        if decision is None:
            said = (
                f"the policy of batch {batch.batch_id} leaves attempt {attempt} "
                f"to the operator: {verdict.reason}"
            )
        else:
            said = (
                f"the policy of batch {batch.batch_id} decided {decision} for "
                f"attempt {attempt} ({verdict.rule}): {verdict.reason}"
            )
        self.hook("on_note", said)
        return self.project(run_id, decision is not None)  # the log shows it

    def _answer(self, run_id: UUID, batch: Batch, failure: Failure) -> RecoveryOutcome:
        """Asks the strategy and records its answer (and where it kept the
        faulty change) in one save."""
        attempt = failure.attempt
        strategy = self.strategy_for(batch)
        answer = self._ask_strategy(strategy, run_id, batch, failure)
        kept = answer.quarantine
        source = strategy_provenance(strategy)

        def answered(run: Run) -> None:
            if kept is not None:
                run.changes_quarantined(
                    batch.batch_id,
                    attempt,
                    quarantine_ref=kept.ref,
                    files=kept.files,
                    tree_id=kept.tree_id,
                )
            outcome_data = answer.as_event_data()
            run.recovery_attempted(
                batch.batch_id,
                attempt,
                strategy=strategy.name,
                strategy_package=source.package,
                strategy_version=source.version,
                outcome=outcome_data,
            )

        self.app.update(run_id, answered)
        return answer

    def _ask_strategy(
        self, strategy: RecoveryStrategy, run_id: UUID, batch: Batch, failure: Failure
    ) -> RecoveryOutcome:
        context = self.failure_context(str(run_id), batch, failure, failure.baseline)
        try:
            return strategy.on_failure(context)
        except Exception as exc:
            return RecoveryOutcome(
                analysis=f"strategy {strategy.name} raised {type(exc).__name__}: {exc}",
                details={"traceback": traceback.format_exc()},
            )

    def failure_context(
        self, run_id: str, batch: Batch, failure: Failure, baseline: str | None
    ) -> FailureContext:
        """What the strategy is told of ``failure``."""
        return FailureContext(
            run_id=run_id,
            plan_id=self.plan.plan_id,
            batch=batch,
            attempt=failure.attempt,
            failure=failure,
            root=self.workspace.root,
            baseline=baseline,
            workspace=self.workspace,
        )

    def _notify(
        self, halted: Halted, answer: RecoveryOutcome, policy_note: str | None
    ) -> None:
        failure = halted.failure
        entry = next(
            (
                e
                for e in reversed(self.app.failure_log(run_id=halted.run_id))
                if (e.failure.batch_id, e.failure.attempt)
                == (failure.batch_id, failure.attempt)
            ),
            None,
        )
        notification = Notification(
            run_id=halted.run_id,
            plan_id=self.plan.plan_id,
            workspace=str(self.workspace.root),
            failure=halted.failure,
            open=halted.open,
            strategy=halted.view.strategy or self.strategy.name,
            analysis=answer.analysis,
            hints=answer.hints,
            store=self.app.store_hint(self.workspace.root),
            made_by_host=halted.made_by_host,
            view=halted.view,
            failure_log_entry=entry,
            policy_note=policy_note,
        )
        for notifier in self.notifiers:
            error: str | None = None
            try:
                notifier.notify(notification)
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
            self.app.update(
                UUID(halted.run_id), _notified(halted.failure, notifier, error)
            )


def _notified(
    failure: Failure, notifier: Notifier, error: str | None
) -> Callable[[Run], None]:
    def record(run: Run) -> None:
        run.operator_notified(
            failure.batch_id,
            failure.attempt,
            channel=notifier.channel,
            delivered=error is None,
            error=error,
        )

    return record
