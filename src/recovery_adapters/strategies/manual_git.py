"""The ``manual-git`` strategy: quarantine the faulty change under a ref and put
the workspace back as it was before the attempt. Where the change was kept is
in its answer (and so in ``ChangesQuarantined``); the notifiers make the
commands that look at it or bring it back (``recovery show``, ``recovery
restore``) from that."""

from __future__ import annotations

import attrs

from recovery_core import FailureContext, RecoveryOutcome

__all__ = ["ManualGitStrategy", "manual_git"]


@attrs.frozen
class ManualGitStrategy:
    """Keeps a failed attempt's tree under ``refs/recovery/.../quarantine`` and
    restores exactly the paths it changed (the user's own edits, staged changes,
    untracked and ignored files are left as they were). Proposes no fix: the
    operator decides retry (from the restored baseline), skip or abort."""

    name: str = "manual-git"

    def on_failure(self, context: FailureContext) -> RecoveryOutcome:
        """Quarantines and restores; returns where the change was kept."""
        if context.baseline is None:
            return RecoveryOutcome(
                analysis="manual-git needs a workspace that takes baseline "
                "snapshots; the change was left in the working tree"
            )
        kept = context.workspace.quarantine(
            run_id=context.run_id,
            batch_id=context.batch.batch_id,
            attempt=context.attempt,
            baseline=context.baseline,
        )
        failure = context.failure
        where = f" in {failure.component}" if failure.component else ""
        # No hints: the notifiers name `recovery show` and `recovery restore`
        # as the operator can type them where they read them (a hint recorded
        # here could not know that).
        return RecoveryOutcome(
            analysis=(
                f"{failure.phase}.{failure.step} failed{where}; the faulty change "
                f"({len(kept.files)} file(s)) was kept under {kept.ref} and the "
                "workspace put back as it was before the attempt"
            ),
            quarantine=kept,
            details={"quarantine_commit": kept.commit, "baseline": context.baseline},
        )


def manual_git() -> ManualGitStrategy:
    """A new ``manual-git`` strategy (the design's spelling for hosts)."""
    return ManualGitStrategy()
