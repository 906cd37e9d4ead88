"""``policykit-fixer``: a test-only recovery strategy for the policy tests. It
answers a failure as ``manual-git`` does (the faulty change kept under a ref,
the workspace put back) and proposes a fix, pre-validated as the variable
``POLICYKIT_PREVALIDATION`` says (``passed: ...`` when unset); on a
``recover`` decision it writes :data:`FIXED` to :data:`TARGET`.

Registered through the entry point in ``policykit_fixer-1.0.dist-info`` beside
it: a ``recovery`` process whose ``PYTHONPATH`` has this folder finds it by
name, in a batch's policy or with ``--strategy``; nothing is installed.
"""

from __future__ import annotations

import os

import attrs

from recovery_adapters.strategies.manual_git import ManualGitStrategy
from recovery_core import FailureContext, RecoveryOutcome

__all__ = ["FIXED", "TARGET", "Fixer"]

#: The file the fix writes, relative to the workspace, and what it writes.
TARGET = "app/calc.py"
FIXED = "def add(a: int, b: int) -> int:\n    return a + b  # fixed by policykit\n"


@attrs.frozen
class Fixer:
    """Quarantines like ``manual-git``, and proposes to write :data:`FIXED`."""

    name: str = "policykit-fixer"

    def on_failure(self, context: FailureContext) -> RecoveryOutcome:
        """The manual-git answer, with a pre-validated proposal."""
        kept = ManualGitStrategy().on_failure(context)
        prevalidation = os.environ.get(
            "POLICYKIT_PREVALIDATION", "passed: unit_tests in a sandbox"
        )
        return attrs.evolve(
            kept,
            proposal=True,
            prevalidation=prevalidation,
            analysis=f"{kept.analysis}; proposes {TARGET}",
        )

    def recover(self, context: FailureContext) -> None:
        """Writes the fix."""
        (context.root / TARGET).write_text(FIXED, encoding="utf-8")
