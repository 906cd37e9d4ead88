"""``crashkit-fixer``: a test-only recovery strategy for the crash sweep's
``recover`` plan. It answers a failure as ``manual-git`` does (the faulty change
kept under a ref, the workspace put back) and proposes a fix: on a ``recover``
decision it writes :data:`FIXED` to :data:`TARGET`.

Registered through the entry point in ``crashkit_fixer-1.0.dist-info`` beside
it, so a ``recovery`` process whose ``sys.path`` has this folder (the crash kit
puts it first on the child's ``PYTHONPATH``) finds it with ``--strategy
crashkit-fixer``; nothing is installed.
"""

from __future__ import annotations

import attrs

from recovery_adapters.strategies.manual_git import ManualGitStrategy
from recovery_core import FailureContext, RecoveryOutcome

__all__ = ["FIXED", "TARGET", "Fixer"]

#: The file the fix writes, relative to the workspace, and what it writes.
TARGET = "app/calc.py"
FIXED = "def add(a: int, b: int) -> int:\n    return a + b  # fixed by crashkit\n"


@attrs.frozen
class Fixer:
    """Quarantines like ``manual-git``, and proposes to write :data:`FIXED`."""

    name: str = "crashkit-fixer"

    def on_failure(self, context: FailureContext) -> RecoveryOutcome:
        """The manual-git answer, with a proposal."""
        kept = ManualGitStrategy().on_failure(context)
        return attrs.evolve(
            kept, proposal=True, analysis=f"{kept.analysis}; proposes {TARGET}"
        )

    def recover(self, context: FailureContext) -> None:
        """Writes the fix."""
        (context.root / TARGET).write_text(FIXED, encoding="utf-8")
