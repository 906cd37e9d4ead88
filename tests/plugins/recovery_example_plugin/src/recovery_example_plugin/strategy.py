"""The ``example`` strategy: names the failure, and proposes putting the files
the batch changed back as they were before it (a ``recover`` decision does
that, through the workspace, and the batch's steps then validate the tree)."""

from __future__ import annotations

import attrs

from recovery_core import FailureContext, RecoveryOutcome


@attrs.frozen
class ExampleStrategy:
    """Proposes reverting a failed batch's change."""

    name: str = "example"

    def on_failure(self, context: FailureContext) -> RecoveryOutcome:
        """Names the failed step and where it failed; proposes a revert when
        the batch changed files and there is a snapshot to revert to."""
        failure = context.failure
        where = failure.component or "an unknown place"
        files = list(failure.changed_files)
        proposal = bool(files) and failure.baseline is not None
        analysis = (
            f"{failure.step_id} failed at {where}: {failure.summary or 'no error text'}"
        )
        if proposal:
            analysis += (
                f"; recover puts back the {len(files)} file(s) the batch changed"
            )
        return RecoveryOutcome(
            analysis=analysis,
            proposal=proposal,
            details={"files": files, "error_chars": len(failure.error)},
            hints=tuple(f"git diff -- {name}" for name in files[:3]),
        )

    def recover(self, context: FailureContext) -> None:
        """Puts the failed attempt's changed files back as its snapshot had
        them."""
        failure = context.failure
        if failure.baseline is None:
            raise ValueError("no snapshot to put the files back from")
        context.workspace.restore(failure.baseline, failure.changed_files)
