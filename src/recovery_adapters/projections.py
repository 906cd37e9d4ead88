"""The projections kept in files (the :class:`~recovery_core.ports.Projection`
port): the plan file's status keys and the failure log, each written whole and
atomically (a temporary file, fsync, rename), so that a reader, or a runner
killed halfway, never leaves part of one. The temporary file of a plan file in
the workspace is made in ``.recovery/tmp/`` (excluded from every batch), never
beside the plan, where a batch could pick up one a kill left behind; its name
holds the writer's process id, and the next write removes the copies whose
process is gone."""

from __future__ import annotations

import errno
import glob
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from recovery_adapters.host import process_alive
from recovery_core import RecoveryApp
from recovery_core.plan import BatchStatusFields
from recovery_core.ports import Projection, ProjectionUpdate
from recovery_core.projections import default_failure_log, plan_status_fields

__all__ = [
    "FailureLogFile",
    "PlanFile",
    "atomic_write",
    "file_projections",
    "plan_text",
    "write_failure_log",
    "write_log_lines",
    "write_plan_status",
]


class PlanFile:
    """The plan file's ``status``, ``verified`` and ``failure_reason`` keys."""

    def __init__(
        self, path: str | os.PathLike[str], scratch: Path | None = None
    ) -> None:
        self.path = Path(path)
        self.scratch = scratch
        self.name = f"the plan file {self.path}"

    def project(self, update: ProjectionUpdate) -> None:
        """Writes each batch's status keys, when they changed."""
        fields = plan_status_fields(update.view)
        write_plan_status(self.path, fields, scratch=self.scratch)


class FailureLogFile:
    """The failure log of a workspace, one JSON object per line."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.name = f"the failure log {self.path}"

    def project(self, update: ProjectionUpdate) -> None:
        """Rewrites the log when its entries changed."""
        if update.failure_log is not None:
            lines = [entry.to_line() for entry in update.failure_log]
            write_log_lines(self.path, lines)


def file_projections(
    workspace: str | os.PathLike[str],
    plan_path: str | os.PathLike[str] | None = None,
    failure_log: str | os.PathLike[str] | None = None,
) -> list[Projection]:
    """The plan file (when there is one) and the workspace's failure log (by
    default ``<workspace>/.recovery/logs/bootstrap_errors.log``)."""
    log = (
        Path(failure_log) if failure_log is not None else default_failure_log(workspace)
    )
    found: list[Projection] = [FailureLogFile(log)]
    if plan_path is not None and Path(plan_path).is_file():
        root = Path(workspace).resolve()
        inside = root in Path(plan_path).resolve().parents
        found.insert(0, PlanFile(plan_path, scratch_folder(root) if inside else None))
    return found


def scratch_folder(workspace: str | os.PathLike[str]) -> Path:
    """``<workspace>/.recovery/tmp``: where our temporary files of files in the
    workspace are made (``.recovery/`` is excluded from every batch)."""
    return Path(workspace) / ".recovery" / "tmp"


def _remove_stale(folder: Path, name: str) -> None:
    """Removes the temporary copies of ``name`` in ``folder`` that a killed
    process of this host left (``.NAME.PID.XXXX.tmp`` whose process is gone);
    a live writer's copy is left alone."""
    for left in folder.glob(f".{glob.escape(name)}.*.tmp"):
        pid = left.name[len(name) + 2 :].split(".", 1)[0]
        if pid.isdigit() and (int(pid) == os.getpid() or process_alive(int(pid))):
            continue
        left.unlink(missing_ok=True)


def write_failure_log(
    app: RecoveryApp,
    workspace: str | os.PathLike[str],
    path: str | os.PathLike[str] | None = None,
) -> bool:
    """Writes the failure log of ``workspace`` (by default
    ``<workspace>/.recovery/logs/bootstrap_errors.log``) from the events, whole
    and atomically; returns whether its bytes changed. The same events always
    give the same bytes."""
    target = Path(path) if path is not None else default_failure_log(workspace)
    lines = [entry.to_line() for entry in app.failure_log(workspace=workspace)]
    return write_log_lines(target, lines)


def write_log_lines(path: Path, lines: Sequence[str]) -> bool:
    """Writes the failure log atomically; returns whether its bytes changed."""
    text = "".join(line + "\n" for line in lines)
    if path.exists() and path.read_text(encoding="utf-8") == text:
        # Another writer may have written these bytes first while a killed
        # one left its copy: removed all the same.
        _remove_stale(path.parent, path.name)
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, text)
    return True


def write_plan_status(
    path: str | os.PathLike[str],
    fields: Mapping[str, BatchStatusFields],
    *,
    scratch: Path | None = None,
) -> bool:
    """Writes each batch's status keys into the plan file, atomically, leaving every
    other key and batch as it is in the file now. Returns whether it changed.
    ``scratch``: the folder for the temporary file (see :func:`atomic_write`).

    The file is read again here, not taken from memory, so that edits the user
    made to other keys since the run started are kept.
    """
    target = Path(path)
    text = target.read_text(encoding="utf-8")
    raw = json.loads(text)
    for batch in raw.get("batches", []) if isinstance(raw, dict) else []:
        if isinstance(batch, dict) and batch.get("batch_id") in fields:
            new = fields[batch["batch_id"]]
            batch["status"] = new.status
            batch["verified"] = new.verified
            batch["failure_reason"] = new.failure_reason
    updated = plan_text(raw)
    if updated == text:
        return False
    atomic_write(target, updated, scratch=scratch)
    return True


#: Each batch's text in the plan file (``json.dumps(batch, indent=2)``), by its
#: compact encoding: a write re-encodes the batches it changed, not the plan.
_BATCH_TEXTS: dict[str, str] = {}
_BATCH_TEXTS_MAX = 4096


def plan_text(raw: object) -> str:
    """``json.dumps(raw, indent=2, ensure_ascii=False) + "\\n"``, the plan
    file's text, made faster. Python's indented encoder is pure Python, and a
    run rewrites its plan file after every transition, so each batch's
    indented text is kept by its compact (C-encoded) text and spliced in
    where the plan's own encoding holds a marker for it; a batch at depth two
    is its own encoding with every line after the first indented by four
    spaces (a JSON text has no newline but between its tokens)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("batches"), list):
        return json.dumps(raw, indent=2, ensure_ascii=False) + "\n"
    batches: list[object] = raw["batches"]
    if not batches:
        return json.dumps(raw, indent=2, ensure_ascii=False) + "\n"
    marker = f"recovery-batch-{os.urandom(8).hex()}"
    outline = json.dumps(
        {**raw, "batches": [marker] * len(batches)}, indent=2, ensure_ascii=False
    )
    quoted = json.dumps(marker)
    if outline.count(quoted) != len(batches):  # the marker is in the plan itself
        return json.dumps(raw, indent=2, ensure_ascii=False) + "\n"
    parts = outline.split(quoted)
    out = [parts[0]]
    for batch, after in zip(batches, parts[1:], strict=True):
        out += [_batch_text(batch), after]
    return "".join(out) + "\n"


def _batch_text(batch: object) -> str:
    key = json.dumps(batch, ensure_ascii=False)
    text = _BATCH_TEXTS.get(key)
    if text is None:
        text = json.dumps(batch, indent=2, ensure_ascii=False).replace("\n", "\n    ")
        if len(_BATCH_TEXTS) >= _BATCH_TEXTS_MAX:
            _BATCH_TEXTS.clear()
        _BATCH_TEXTS[key] = text
    return text


def atomic_write(target: Path, text: str, *, scratch: Path | None = None) -> None:
    """Replaces ``target`` with ``text`` through a temporary file and a rename, so
    that a reader sees the old content or the new, never a part. The temporary
    file is made in ``scratch`` when given (on another file system than
    ``target``, beside it after all), else beside ``target``."""
    mode = target.stat().st_mode & 0o7777 if target.exists() else 0o644
    if scratch is not None:
        scratch.mkdir(parents=True, exist_ok=True)
    folder = scratch if scratch is not None else target.parent
    _remove_stale(folder, target.name)
    prefix = f".{target.name}.{os.getpid()}."
    fd, temp = tempfile.mkstemp(dir=folder, prefix=prefix, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        Path(temp).chmod(mode)
        try:
            Path(temp).replace(target)
        except OSError as exc:
            if exc.errno != errno.EXDEV or scratch is None:
                raise
            Path(temp).unlink(missing_ok=True)
            atomic_write(target, text)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
