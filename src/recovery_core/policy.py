"""A batch's policy, consulted on each of its failures once the strategy has
answered and before any operator is notified.

The policy decides by itself, in this order:

1. never for an attempt whose failure has the fingerprint of the previous
   attempt's (:mod:`recovery_core.fingerprint`): a deterministic failure goes
   to the operator;
2. ``recover`` when the strategy proposed a fix that passed pre-validation
   (:func:`recovery_core.ports.prevalidation_passed`) and fewer than
   ``auto_recover`` recoveries were decided by the policy for the batch;
3. ``retry`` while fewer than ``auto_retry`` retries were;
4. otherwise the operator is asked, and told why.

The verdict is a pure function of the run's state and the plan's batch, so
that a runner that was killed before recording it comes to the same verdict.
"""

from __future__ import annotations

from typing import Literal

import attrs

from recovery_core.plan import Batch
from recovery_core.ports import prevalidation_passed
from recovery_core.records import RunView

__all__ = ["Verdict", "consult"]


@attrs.frozen
class Verdict:
    """What a policy says of one failure: a ``decision`` it takes (None: the
    operator is asked), under which ``rule`` (``auto_retry 1 of 3``, or why
    none applied), and the ``reason`` in words."""

    decision: Literal["retry", "recover"] | None
    rule: str
    reason: str


def consult(view: RunView, batch: Batch) -> Verdict | None:
    """The policy of ``batch`` on the failure of it that awaits a decision;
    None when the batch has no policy that decides anything by itself (the
    operator is asked, as without a policy), or no failure awaits one."""
    policy = batch.policy
    if policy is None or not policy.automatic:
        return None
    state = view.batch(batch.batch_id)
    failure = state.failure
    if failure is None or view.awaiting != (batch.batch_id, failure.attempt):
        return None
    if state.previous_fingerprint == failure.fingerprint:
        return Verdict(
            None,
            "deterministic failure",
            f"attempt {failure.attempt} failed the same way as attempt "
            f"{failure.attempt - 1} ({failure.step_id}: {failure.summary}; "
            f"fingerprint {failure.fingerprint}): the policy does not decide a "
            "deterministic failure",
        )
    answer = state.answer or {}
    strategy = view.strategy or "(none)"
    prevalidation = answer.get("prevalidation")
    passed = view.proposal and prevalidation_passed(
        prevalidation if isinstance(prevalidation, str) else None
    )
    if passed and state.policy_recovers < policy.auto_recover:
        return Verdict(
            "recover",
            f"auto_recover {state.policy_recovers + 1} of {policy.auto_recover}",
            f"strategy {strategy} proposed a fix that passed pre-validation "
            f"({prevalidation})",
        )
    if state.policy_retries < policy.auto_retry:
        return Verdict(
            "retry",
            f"auto_retry {state.policy_retries + 1} of {policy.auto_retry}",
            f"{failure.step_id} failed ({failure.summary}); not the previous "
            "attempt's failure",
        )
    why = []
    if policy.auto_recover:
        if not view.proposal:
            why.append(f"strategy {strategy} proposed no fix")
        elif not passed:
            why.append(
                f"strategy {strategy}'s proposed fix did not pass pre-validation "
                f"({prevalidation or 'none recorded'})"
            )
        else:
            why.append(
                f"the {policy.auto_recover} automatic recoveries allowed "
                "(auto_recover) are used up"
            )
    if policy.auto_retry:
        why.append(
            f"the {policy.auto_retry} automatic retries allowed (auto_retry) are "
            "used up"
        )
    return Verdict(None, "budget", "; ".join(why))
