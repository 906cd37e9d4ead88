"""``recovery verify``: a run's stored history checked (see
:mod:`recovery_core.audit`), and what is on disk compared with what the events
give: the plan file's status keys, the workspace's failure log, the refs under
``refs/recovery/<run>/`` (each baseline's commit, each quarantine's tree) and
each commit the run made (its ``Recovery-Run``, ``Recovery-Batch`` and
``Recovery-Chain`` trailers), plus any commit on a branch that claims the run
without an event recording it. A ref that ``recovery prune`` retired
(``RefsRetired``) is not required.

Nothing is written: git is only read (no optional locks), the files only
opened. A workspace that is not on this host is a note, not a finding: its
files and git are then not checked (``recovery export`` and ``verify
--bundle`` check a run away from its repository).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from uuid import UUID

import attrs

from recovery_adapters.git.command import Git, WorkspaceError, discover
from recovery_core import RecoveryApp, RunView
from recovery_core.audit import CommitClaim, Finding, KeptRef, RunAudit, audit_run
from recovery_core.errors import RecoveryError
from recovery_core.projections import default_failure_log, plan_status_fields
from recovery_core.run import Run

__all__ = ["RunReport", "trailers_of", "verify_runs"]

_TRAILERS = ("Recovery-Run", "Recovery-Batch", "Recovery-Chain")


@attrs.frozen
class RunReport:
    """One run verified: its findings (each one a failure) and notes (what
    could not be checked here, and why)."""

    run_id: str
    events: int
    head: str
    findings: tuple[Finding, ...]
    notes: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.findings

    def as_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "ok": self.ok,
            "events": self.events,
            "head": self.head,
            "findings": [f.as_json() for f in self.findings],
            "notes": list(self.notes),
        }


def verify_runs(
    app: RecoveryApp, run_ids: Iterable[UUID], *, expect_head: str | None = None
) -> list[RunReport]:
    """Verifies each run (the failure log of a workspace once, with its first
    run)."""
    logs_seen: set[str] = set()
    owners = _plan_file_owners(app)
    reports = []
    for run_id in run_ids:
        audit = audit_run(app, run_id, expect_head=expect_head)
        findings, notes = list(audit.findings), list[str]()
        if audit.view is not None:
            _on_disk(app, audit, audit.view, owners, logs_seen, findings, notes)
        reports.append(
            RunReport(
                audit.run_id, audit.events, audit.head, tuple(findings), tuple(notes)
            )
        )
    return reports


def _plan_file_owners(app: RecoveryApp) -> dict[str, str]:
    """Plan file -> the run that last took it (started from it, or amended to
    it), whose status it shows; from those events alone, no run replayed."""
    owners: dict[str, str] = {}
    for event in app.notifications([Run.Started.TOPIC, Run.PlanAmended.TOPIC]):
        plan_path = getattr(event, "plan_path", None)
        if plan_path:
            owners[plan_path] = str(event.originator_id)
    return owners


def _on_disk(
    app: RecoveryApp,
    audit: RunAudit,
    view: RunView,
    owners: Mapping[str, str],
    logs_seen: set[str],
    findings: list[Finding],
    notes: list[str],
) -> None:
    workspace = Path(view.workspace)
    if not workspace.is_dir():
        notes.append(
            f"the workspace {workspace} is not on this host: the plan file, the "
            "failure log and git were not checked"
        )
        return
    findings += _plan_file(view, owners, notes)
    if view.workspace not in logs_seen:
        logs_seen.add(view.workspace)
        findings += _failure_log(app, view, notes)
    try:
        root, git_dir, _common, _format = discover(workspace)
    except WorkspaceError as exc:
        if audit.refs or audit.commits:
            findings.append(Finding("git", str(workspace), str(exc)))
        return
    git = Git(root, git_dir)
    retired = {ref for ref, _target in view.retired_refs}
    findings += _refs(git, view.run_id, [r for r in audit.refs if r.ref not in retired])
    findings += _commits(git, audit, notes)


# -- projections -----------------------------------------------------------------


def _plan_file(
    view: RunView, owners: Mapping[str, str], notes: list[str]
) -> list[Finding]:
    if not view.plan_path:
        return []
    path = Path(view.plan_path)
    owner = owners.get(view.plan_path, view.run_id)
    if owner != view.run_id:
        notes.append(f"the plan file {path} shows a later run ({owner}): not compared")
        return []
    if not path.is_file():
        notes.append(f"the plan file {path} is gone: not compared")
        return []
    where = f"plan file {path}"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return [Finding("plan file", where, f"cannot be read: {exc}")]
    listed = {
        b.get("batch_id"): b
        for b in (raw.get("batches", []) if isinstance(raw, dict) else [])
        if isinstance(b, dict)
    }
    found = []
    for batch_id, fields in plan_status_fields(view).items():
        batch = listed.get(batch_id)
        if batch is None:
            found.append(Finding("plan file", where, f"batch {batch_id} is missing"))
            continue
        for key, value in attrs.asdict(fields).items():
            if batch.get(key) != value:
                found.append(
                    Finding(
                        "plan file",
                        f"{where}, batch {batch_id}",
                        f"{key} is {batch.get(key)!r}, the events give {value!r}",
                    )
                )
    return found


def _failure_log(app: RecoveryApp, view: RunView, notes: list[str]) -> list[Finding]:
    path = default_failure_log(view.workspace)
    where = f"failure log {path}"
    try:
        expected = [e.to_line() for e in app.failure_log(workspace=view.workspace)]
    except RecoveryError as exc:
        return [Finding("failure log", where, f"cannot be rebuilt: {exc}")]
    if not path.is_file():
        if expected:
            notes.append(
                f"no failure log at {path} (deleted, or a host keeps it elsewhere): "
                f"not compared; `recovery log --rebuild` writes its "
                f"{len(expected)} line(s) there"
            )
        return []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        return [Finding("failure log", where, f"cannot be read: {exc}")]
    for number, (have, want) in enumerate(zip(lines, expected, strict=False), 1):
        if have != want:
            return [
                Finding(
                    "failure log",
                    f"{where}, line {number}",
                    f"differs from what the events give: {_difference(have, want)}",
                )
            ]
    if len(lines) != len(expected):
        return [
            Finding(
                "failure log",
                where,
                f"has {len(lines)} line(s), the events give {len(expected)}",
            )
        ]
    return []


def _difference(have: str, want: str) -> str:
    try:
        left, right = json.loads(have), json.loads(want)
    except ValueError:
        return "the line is no JSON object"
    if isinstance(left, dict) and isinstance(right, dict):
        for key in sorted(set(left) | set(right)):
            if left.get(key) != right.get(key):
                return f"{key} is {_short(left.get(key))}, not {_short(right.get(key))}"
    return "the bytes differ"


def _short(value: object, width: int = 60) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 3] + "..."


# -- git -----------------------------------------------------------------------


def _refs(git: Git, run_id: str, kept: Iterable[KeptRef]) -> list[Finding]:
    """Each ref the events name against what the repository holds."""
    listed = git.text(
        "for-each-ref",
        "--format=%(refname)%00%(objectname)%00%(tree)",
        f"refs/recovery/{run_id}/",
    )
    present: dict[str, tuple[str, str]] = {}
    for line in listed.splitlines():
        name, commit, tree = line.split("\0")
        present[name] = (commit, tree)
    found = []
    for ref in kept:
        where = f"ref {ref.ref}"
        if ref.ref not in present:
            found.append(Finding("ref", where, f"is gone ({ref.event} recorded it)"))
            continue
        commit, tree = present[ref.ref]
        have = commit if ref.kind == "baseline" else tree
        what = "commit" if ref.kind == "baseline" else "tree"
        if have != ref.expected:
            found.append(
                Finding(
                    "ref",
                    where,
                    f"holds the {what} {have}, {ref.event} recorded {ref.expected}: "
                    "it was moved",
                )
            )
    return found


def _commits(git: Git, audit: RunAudit, notes: list[str]) -> list[Finding]:
    """Each commit the run recorded, and each commit on a branch that says it
    is of this run."""
    claimed = {c.commit: c for c in audit.commits}
    on_branches = set(
        git.text(
            "log",
            "--branches",
            "--fixed-strings",
            f"--grep=Recovery-Run: {audit.run_id}",
            "--format=%H",
        ).split()
    )
    messages = _messages(git, [*claimed, *sorted(on_branches - claimed.keys())])
    found = []
    for commit, claim in claimed.items():
        message = messages.get(commit)
        if message is None:
            found.append(
                Finding(
                    "commit",
                    f"commit {commit}",
                    f"is not in the repository ({claim.event} recorded it)",
                )
            )
            continue
        found += _trailer_findings(commit, message, audit, claim)
        if commit not in on_branches:
            notes.append(
                f"commit {commit} ({claim.event}) is on no branch now: the branch "
                "was reset or rewritten after the run"
            )
    for commit in sorted(on_branches - claimed.keys()):
        trailers = trailers_of(messages.get(commit, ""))
        if trailers.get("Recovery-Run") != audit.run_id:
            continue  # the run's id in its message, not as its trailer
        chain = trailers.get("Recovery-Chain", "")
        at = audit.digests.get(chain)
        named = f"event {at}" if at is not None else "no event of the run"
        found.append(
            Finding(
                "commit",
                f"commit {commit}",
                f"carries Recovery-Run {audit.run_id} (batch "
                f"{trailers.get('Recovery-Batch', '?')}, Recovery-Chain naming "
                f"{named}) but no event records it: a rewritten or made-up commit",
            )
        )
    return found


def _trailer_findings(
    commit: str, message: str, audit: RunAudit, claim: CommitClaim
) -> list[Finding]:
    trailers = trailers_of(message)
    where = f"commit {commit}"
    expected = {"Recovery-Run": audit.run_id, "Recovery-Batch": claim.batch_id}
    found = [
        Finding(
            "commit",
            where,
            f"its {key} trailer is {trailers.get(key)!r}, not {value!r}",
        )
        for key, value in expected.items()
        if trailers.get(key) != value
    ]
    chain = trailers.get("Recovery-Chain")
    if chain not in claim.chain:
        at = audit.digests.get(chain or "")
        why = (
            f"names event {at}, not one from the batch's verification to its commit"
            if at is not None
            else "is no digest of the run's events"
        )
        found.append(
            Finding("commit", where, f"its Recovery-Chain trailer {chain!r} {why}")
        )
    return found


def _messages(git: Git, commits: Iterable[str]) -> dict[str, str]:
    """The messages of the commits the repository has (one git process)."""
    wanted = list(dict.fromkeys(commits))
    if not wanted:
        return {}
    out = git.run(
        "cat-file", "--batch", stdin="".join(f"{c}\n" for c in wanted).encode()
    )
    messages: dict[str, str] = {}
    at = 0
    for name in wanted:
        end = out.index(b"\n", at)
        header = out[at:end].decode(errors="replace").split()
        at = end + 1
        if len(header) != 3:
            continue  # missing
        size = int(header[2])
        body = out[at : at + size]
        at += size + 1
        if header[1] == "commit":
            messages[name] = body.decode("utf-8", "replace").partition("\n\n")[2]
    return messages


def trailers_of(message: str) -> dict[str, str]:
    """The ``Recovery-*`` trailers of a commit message: its last paragraph's
    ``Key: value`` lines (the last of each key)."""
    paragraph = message.strip().rsplit("\n\n", 1)[-1]
    found: dict[str, str] = {}
    for line in paragraph.splitlines():
        key, sep, value = line.partition(": ")
        if sep and key in _TRAILERS:
            found[key] = value.strip()
    return found
