"""The ``architect-agent`` strategy: quarantine and restore as ``manual-git``
does, tell an agent about the failure, check the patch it proposes, try it out
in a sandbox worktree, and apply it only on a ``recover`` decision.

On a failure, in order:

1. ``manual-git`` keeps the faulty tree under ``.../quarantine`` and puts the
   workspace back as it was before the attempt;
2. the trigger, ``<workspace>/.recovery/recovery_plan_trigger.json``, is
   written (see :mod:`~recovery_adapters.strategies.trigger`);
3. without an agent command, the analysis is our own: the file and line of the
   error and the hunk of the batch's change that holds it. With one (see
   :func:`~recovery_adapters.strategies.agent.choose_agent`) the agent runs and
   answers with a patch against the faulty tree;
4. the patch is checked (:meth:`~recovery_core.ports.Sandbox.check_patch`),
   kept as a commit under ``.../proposal``, and the batch's validation steps run
   on it in a sandbox worktree outside the user's tree, removed afterwards.

Everything it asks of git goes through the workspace's ports
(:class:`~recovery_core.ports.Workspace`, and its
:class:`~recovery_core.ports.Sandbox`): a workspace without a sandbox gets the
analysis and no proposal.

``RecoveryAttempted`` records it all in its outcome's ``details``. A
``recover`` decision calls :meth:`ArchitectAgentStrategy.recover`, which
applies the kept proposal to the restored working tree; the runner validates
it as the next attempt.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import attrs

from recovery_adapters.projections import atomic_write
from recovery_adapters.strategies.agent import (
    AgentError,
    AgentRun,
    ChosenAgent,
    choose_agent,
    read_answer,
    run_agent,
)
from recovery_adapters.strategies.manual_git import ManualGitStrategy
from recovery_adapters.strategies.trigger import (
    TRIGGER_VERSION,
    Location,
    around,
    error_location,
    failure_log_entry,
    hunk_at,
    text_files,
    trigger_path,
)
from recovery_core import FailureContext, RecoveryError, RecoveryOutcome
from recovery_core.errors import PatchRefused
from recovery_core.ports import Quarantine, Sandbox, StepContext, StepRunner
from recovery_core.steps import step_runners as registered_step_runners

__all__ = ["ArchitectAgentStrategy", "architect_agent"]

#: The most of a patch that the events keep (its digest covers all of it).
_PATCH_KEPT: Final = 64 * 1024
#: What every accepted patch passed, in order.
CHECKS: Final = (
    ("answer", "a unified diff, or a JSON object with a string patch"),
    ("patch", "git can read it as a patch"),
    ("inside", "every path inside the workspace"),
    ("git_dir", "nothing under .git/ or .recovery/"),
    ("symlink", "no symbolic link that leads out"),
    ("applies", "git apply --check against the faulty tree"),
)


@attrs.frozen
class ArchitectAgentStrategy:
    """Answers a failure with an analysis and, when an agent proposes one, a
    checked and pre-validated fix.

    ``agent`` is the agent command (``--agent``), winning over the batch's
    ``agent`` in the plan and ``RECOVERY_AGENT_COMMAND``; ``timeout_s`` its
    timeout. ``step_runners`` run the pre-validation (by default, the
    registered step kinds)."""

    name: str = "architect-agent"
    agent: tuple[str, ...] | None = None
    timeout_s: float | None = None
    step_runners: Mapping[str, StepRunner] | None = None

    def on_failure(self, context: FailureContext) -> RecoveryOutcome:
        """Quarantines and restores, writes the trigger, asks the agent, checks
        and pre-validates its patch; returns what was found."""
        manual = ManualGitStrategy().on_failure(context)
        kept = manual.quarantine
        sandbox = context.workspace.sandbox()
        if kept is None or context.baseline is None or not kept.commit:
            return attrs.evolve(
                manual, analysis=manual.analysis + "; no trigger was written"
            )
        if sandbox is None:
            return attrs.evolve(
                manual,
                analysis=manual.analysis + "; the workspace has no sandbox to try "
                "a fix out in: no trigger was written",
            )
        try:
            return _Attempt(self, context, sandbox, kept, context.baseline).answer(
                manual
            )
        except Exception as exc:
            # The quarantine stands and must be recorded whatever went wrong
            # after it; the operator decides with manual-git's choices.
            return attrs.evolve(
                manual,
                analysis=f"{manual.analysis}\nno fix is proposed: "
                f"{type(exc).__name__}: {exc}",
                details={**manual.details, "error": f"{type(exc).__name__}: {exc}"},
            )

    def recover(self, context: FailureContext) -> None:
        """Applies the proposal kept for ``context``'s failure to the working
        tree (the batch's change with the agent's fix), as the next attempt's
        change; raises when there is none or it does not apply."""
        failure = context.failure
        if failure.baseline is None:
            raise RecoveryError("the failed attempt has no baseline to apply a fix to")
        sandbox = context.workspace.sandbox()
        if sandbox is None:
            raise RecoveryError("the workspace has no sandbox: no fix is kept")
        ref = sandbox.proposal_ref(context.run_id, failure.batch_id, failure.attempt)
        commit = sandbox.kept(ref)
        if commit is None:
            raise RecoveryError(
                f"no proposed fix is kept under {ref}: the agent proposed none, "
                "or the ref was removed; decide retry, skip or abort"
            )
        sandbox.apply(sandbox.diff(failure.baseline, commit, binary=True))


def architect_agent(
    agent: tuple[str, ...] | None = None, timeout_s: float | None = None
) -> ArchitectAgentStrategy:
    """A new ``architect-agent`` strategy (for hosts)."""
    return ArchitectAgentStrategy(agent=agent, timeout_s=timeout_s)


@attrs.define
class _Attempt:
    """One failure, answered."""

    strategy: ArchitectAgentStrategy
    context: FailureContext
    sandbox: Sandbox
    kept: Quarantine
    baseline: str
    details: dict[str, Any] = attrs.field(factory=dict)
    lines: list[str] = attrs.field(factory=list)

    def answer(self, manual: RecoveryOutcome) -> RecoveryOutcome:
        self.details.update(manual.details)
        self.lines.append(manual.analysis)
        faulty = self.kept.commit
        diff = self.sandbox.diff(self.baseline, faulty).decode("utf-8", "replace")
        contents = self.context.workspace.read(faulty, self.kept.files)
        location = error_location(self.context, self.kept.files)
        hunk = hunk_at(diff, location) if location is not None else None
        self._own_analysis(location, hunk)
        trigger = self._trigger(diff, contents, location, hunk)
        hints = [*manual.hints]
        try:
            chosen = choose_agent(
                self.strategy.agent, self.strategy.timeout_s, self.context.batch
            )
        except AgentError as exc:
            self.lines.append(f"no agent was asked: {exc}")
            return self._outcome(manual, hints)
        if chosen is None:
            self.lines.append(
                "no agent command (--agent, the batch's agent in the plan, or "
                "RECOVERY_AGENT_COMMAND): no fix is proposed"
            )
            return self._outcome(manual, hints)
        ran = run_agent(
            chosen,
            cwd=self.context.root,
            trigger=trigger,
            env={
                "RECOVERY_RUN_ID": self.context.run_id,
                "RECOVERY_BATCH_ID": self.context.batch.batch_id,
                "RECOVERY_ATTEMPT": str(self.context.attempt),
                "RECOVERY_WORKSPACE": str(self.context.root),
            },
        )
        self.details["agent"] = ran.as_data(chosen)
        self._agent_changes()
        proposed = self._proposal(chosen, ran, faulty)
        if proposed is not None:
            hints.append(f"git diff {self.kept.ref} {proposed}")
        return self._outcome(manual, hints, proposed is not None)

    # -- without an agent ---------------------------------------------------

    def _own_analysis(self, location: Location | None, hunk: str | None) -> None:
        if location is None:
            self.lines.append("the error names no file of the workspace")
            return
        where = location.file + (f" line {location.line}" if location.line else "")
        self.details["location"] = attrs.asdict(location)
        self.details["hunk"] = hunk
        if hunk is None:
            changed = ", ".join(self.kept.files) or "nothing"
            self.lines.append(
                f"the error is at {where}, which the batch did not change "
                f"(it changed {changed})"
            )
            return
        self.lines.append(
            f"the error is at {where}, in this hunk of the batch's change:"
        )
        self.lines.extend(f"    {line}" for line in hunk.splitlines()[:40])

    def _trigger(
        self,
        diff: str,
        contents: Mapping[str, bytes | None],
        location: Location | None,
        hunk: str | None,
    ) -> Path:
        """Writes the trigger file; its path."""
        context, failure = self.context, self.context.failure
        batch = context.batch
        code = None
        if location is not None:
            source = contents.get(location.file)
            if source is None and location.file not in contents:
                source = self.context.workspace.read(
                    self.kept.commit, [location.file]
                ).get(location.file)
            code = around(source, location)
        data: dict[str, Any] = {
            "version": TRIGGER_VERSION,
            "run_id": context.run_id,
            "plan_id": context.plan_id,
            "batch_id": batch.batch_id,
            "description": batch.description,
            "attempt": context.attempt,
            "step": failure.step_id,
            "kind": failure.kind,
            "component": failure.component,
            "error": failure.error,
            "traceback": failure.traceback or failure.output_tail,
            "output_tail": failure.output_tail,
            "exit_code": failure.exit_code,
            "workspace": str(context.root),
            "baseline": self.baseline,
            "quarantine_ref": self.kept.ref,
            "quarantine_commit": self.kept.commit,
            "changed_files": list(self.kept.files),
            "diff": diff,
            "files": text_files(contents),
            "error_location": None if location is None else attrs.asdict(location),
            "code_around_error": code,
            "hunk": hunk,
            "validation": [
                {"name": s.name, "kind": s.kind, "run": list(s.run or ())}
                for s in batch.validation
            ],
            "failure_log_entry": failure_log_entry(context, self.kept.ref),
            "answer": "a unified diff against the faulty tree on stdout, or "
            '{"patch": "<unified diff>", "analysis": "<text>"}; exit 0 to propose',
        }
        path = trigger_path(context.root)
        text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, text)
        self.details["trigger"] = str(path)
        self.details["trigger_digest"] = _digest(text.encode())
        return path

    # -- the agent's answer -------------------------------------------------

    def _agent_changes(self) -> None:
        """What the agent changed that it may not (the repository's settings,
        HEAD, branches, hooks: put back)."""
        try:
            found = self.context.workspace.check(self.context.baseline)
        except RecoveryError as exc:
            found = (f"could not check: {exc}",)
        if found:
            self.details["agent_changed"] = list(found)
            self.lines.append(
                "the agent changed what it may not (put back): " + "; ".join(found)
            )

    def _proposal(self, chosen: ChosenAgent, ran: AgentRun, faulty: str) -> str | None:
        """The agent's patch checked, kept and pre-validated; the ref it is
        kept under, or None when there is no proposal."""
        said = f"agent `{' '.join(chosen.argv)}` (from {chosen.source})"
        if ran.start_error:
            self.lines.append(f"{said} could not start: {ran.start_error}")
            return None
        if ran.timed_out:
            self.lines.append(
                f"{said} was killed at its timeout ({chosen.timeout_s:g} s): "
                "no proposal"
            )
            return None
        if ran.exit_code != 0:
            self.lines.append(f"{said} exited with {ran.exit_code}: no proposal")
            return None
        try:
            answer = read_answer(ran.stdout)
        except AgentError as exc:
            self._refused(said, "answer", str(exc), ran.stdout)
            return None
        if answer.analysis:
            self.details["agent_analysis"] = answer.analysis
        patch = answer.patch
        digest = _digest(patch)
        self.details["patch_digest"] = digest
        self.details["patch"] = patch[:_PATCH_KEPT].decode("utf-8", "replace")
        try:
            checked = self.sandbox.check_patch(faulty, patch)
        except PatchRefused as exc:
            self._refused(said, exc.check, exc.reason, patch)
            return None
        self.details["checks"] = [
            {"check": name, "what": what, "passed": True} for name, what in CHECKS
        ]
        self.details["patch_files"] = list(checked.paths)
        ref = self.sandbox.proposal_ref(
            self.context.run_id, self.context.batch.batch_id, self.context.attempt
        )
        message = (
            f"recovery proposal: run {self.context.run_id} batch "
            f"{self.context.batch.batch_id} attempt {self.context.attempt}\n\n"
            f"Patch-Digest: {digest}\n"
        )
        commit = self.sandbox.keep(ref, checked.tree, self.kept.commit, message)
        self.details["proposal_ref"] = ref
        self.details["proposal_commit"] = commit
        self.lines.append(
            f"{said} proposed a patch {digest[:19]}… to {', '.join(checked.paths)}; "
            "checks passed (paths inside the workspace, nothing under .git/, no "
            "symbolic link out, git apply --check against the faulty tree); kept "
            f"under {ref}"
        )
        if answer.analysis:
            self.lines.append(f"the agent's analysis: {answer.analysis.strip()}")
        self._prevalidate(commit, checked.tree)
        return ref

    def _refused(self, said: str, check: str, reason: str, patch: bytes) -> None:
        self.details["refused"] = {"check": check, "reason": reason}
        self.details["checks"] = _checks_until(check, reason)
        if "patch" not in self.details and patch:
            self.details["patch"] = patch[:_PATCH_KEPT].decode("utf-8", "replace")
            self.details["patch_digest"] = _digest(patch)
        self.lines.append(
            f"{said} proposed a patch that was refused ({check}): {reason}; "
            "nothing of it reached the working tree"
        )

    # -- pre-validation -----------------------------------------------------

    def _prevalidate(self, commit: str, tree: str) -> None:
        """Runs the batch's validation steps on the proposal in a sandbox
        worktree, removed afterwards; records how each went."""
        context, batch = self.context, self.context.batch
        runners = self.strategy.step_runners or registered_step_runners()
        changed = self.sandbox.changed(self.baseline, commit)
        steps: list[dict[str, Any]] = []
        name = f"{context.run_id[:8]}-{batch.batch_id}-{context.attempt}"
        sandbox_path = ""
        try:
            with self.sandbox.worktree(commit, name) as path:
                sandbox_path = str(path)
                step_context = StepContext(
                    root=path,
                    run_id=context.run_id,
                    batch=batch,
                    attempt=context.attempt,
                    baseline=self.baseline,
                    changed_files=changed,
                    phase="prevalidation",
                    workspace=context.workspace,
                )
                for step in batch.validation:
                    runner = runners.get(step.kind)
                    if runner is None:
                        steps.append(_step(step.name, step.kind, False, "no runner"))
                        break
                    try:
                        outcome = runner(step, step_context)
                    except Exception as exc:
                        steps.append(
                            _step(step.name, step.kind, False, f"raised {exc!r}")
                        )
                        break
                    steps.append(
                        _step(
                            step.name,
                            step.kind,
                            outcome.passed,
                            outcome.error,
                            outcome.duration_s,
                        )
                    )
                    if not outcome.passed:
                        break
        except (RecoveryError, OSError) as exc:
            self.details["prevalidation"] = {
                "passed": False,
                "error": f"the sandbox could not be made: {exc}",
                "steps": steps,
            }
            self.lines.append(f"pre-validation could not run: {exc}")
            return
        passed = all(s["passed"] for s in steps)
        removed = (
            not Path(sandbox_path).exists()
            and Path(sandbox_path) not in self.sandbox.worktrees()
        )
        self.details["prevalidation"] = {
            "passed": passed,
            "sandbox": sandbox_path,
            "removed": removed,
            "steps": steps,
        }
        names = ", ".join(s["name"] for s in steps) or "no steps"
        if passed:
            self.lines.append(
                f"pre-validation in a sandbox worktree: passed ({names}); decide "
                "recover to apply it as the next attempt"
            )
        else:
            failed = steps[-1]
            self.lines.append(
                f"pre-validation in a sandbox worktree: failed at {failed['name']}: "
                f"{failed['error']}"
            )

    def _outcome(
        self, manual: RecoveryOutcome, hints: list[str], proposal: bool = False
    ) -> RecoveryOutcome:
        pre = self.details.get("prevalidation")
        prevalidation = None
        if isinstance(pre, dict):
            if pre.get("passed"):
                prevalidation = "passed"
            else:
                steps = pre.get("steps") or []
                last = steps[-1] if steps else {}
                why = last.get("error") or pre.get("error") or "failed"
                where = f" at {last['name']}" if last.get("name") else ""
                prevalidation = f"failed{where}: {why}"
        return RecoveryOutcome(
            analysis="\n".join(self.lines),
            proposal=proposal,
            patch_digest=self.details.get("patch_digest") if proposal else None,
            prevalidation=prevalidation,
            details=self.details,
            quarantine=manual.quarantine,
            hints=tuple(hints),
        )


def _step(
    name: str, kind: str, passed: bool, error: str, duration_s: float = 0.0
) -> dict[str, Any]:
    return {
        "name": name,
        "kind": kind,
        "passed": passed,
        "error": error,
        "duration_s": round(duration_s, 3),
    }


def _checks_until(failed: str, reason: str) -> list[dict[str, Any]]:
    """The checks up to the one that failed."""
    done: list[dict[str, Any]] = []
    for name, what in CHECKS:
        if name == failed:
            done.append(
                {"check": name, "what": what, "passed": False, "reason": reason}
            )
            return done
        done.append({"check": name, "what": what, "passed": True})
    done.append({"check": failed, "what": failed, "passed": False, "reason": reason})
    return done


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()
