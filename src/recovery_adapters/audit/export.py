"""A run's export, and its check with nothing but the export itself.

An export is a folder of three files:

- ``events.jsonl``: the run's events as stored, one canonical JSON object a
  line (``topic``, ``originator_id``, ``originator_version``, ``timestamp``,
  ``payload``, ``prev_digest``, ``digest``), so that
  :func:`~recovery_core.chain.verify_chain` checks them exactly as it checks
  the store;
- ``refs.bundle``: a git bundle of the run's refs (``refs/recovery/<run>/``)
  and of the commits its batches became (absent when the run has no refs);
- ``manifest.json``: what the export holds (counts, the head digest, the
  SHA-256 of the other files, the refs in the bundle) and its own digest.

:func:`export_run` writes one (into a temporary folder renamed at the end: an
export is whole or absent); :func:`check_export` checks one and returns every
problem it finds, naming the file, the line or event, and what differs. It
opens no store and no repository but a temporary one of its own.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Final
from uuid import UUID

import attrs

from recovery_adapters.audit.verify import trailers_of
from recovery_adapters.git.bundle import (
    BundleReader,
    RunRefs,
    read_bundle_header,
    run_refs_prefix,
)
from recovery_adapters.git.command import GitError, WorkspaceError
from recovery_adapters.usage import UsageError
from recovery_core import RecoveryApp
from recovery_core.chain import StoredRecord, verify_chain
from recovery_core.errors import IntegrityError
from recovery_core.run import Run

__all__ = [
    "BUNDLE_FILE",
    "EVENTS_FILE",
    "FORMAT",
    "FORMAT_VERSION",
    "MANIFEST_FILE",
    "ExportCheck",
    "Exported",
    "check_export",
    "export_run",
    "record_line",
    "record_of_line",
    "run_topics",
]

FORMAT: Final = "recovery-export"
FORMAT_VERSION: Final = 1
EVENTS_FILE: Final = "events.jsonl"
MANIFEST_FILE: Final = "manifest.json"
BUNDLE_FILE: Final = "refs.bundle"
_FIELDS: Final = (
    "digest",
    "originator_id",
    "originator_version",
    "payload",
    "prev_digest",
    "timestamp",
    "topic",
)
_TRAILERS: Final = ("Recovery-Run", "Recovery-Batch", "Recovery-Chain")


def run_topics() -> frozenset[str]:
    """The topics of every event of a run (``recovery:<Name>``)."""
    topics = (getattr(cls, "TOPIC", None) for cls in vars(Run).values())
    return frozenset(
        topic
        for topic, cls in zip(topics, vars(Run).values(), strict=True)
        if topic and isinstance(cls, type) and issubclass(cls, Run.Event)
    )


def _canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _encode(text: str) -> bytes:
    # A lone surrogate that the store held as a JSON escape stays one.
    return text.encode("utf-8", "surrogatepass")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def record_line(record: StoredRecord) -> str:
    """One stored event as its line of ``events.jsonl`` (no newline)."""
    return _canonical(
        {
            "topic": record.topic,
            "originator_id": str(record.originator_id),
            "originator_version": record.originator_version,
            "timestamp": record.timestamp.isoformat(),
            "payload": record.payload,
            "prev_digest": record.prev_digest,
            "digest": record.digest,
        }
    )


def record_of_line(line: str) -> StoredRecord:
    """The stored event a line of ``events.jsonl`` holds; :class:`ValueError`
    saying what is wrong when the line is not one as :func:`record_line`
    writes it."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc})") from None
    if not isinstance(data, dict) or sorted(data) != sorted(_FIELDS):
        keys = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"not an event: its keys are {keys}, not {list(_FIELDS)}")
    kinds = {
        "topic": str,
        "originator_id": str,
        "originator_version": int,
        "timestamp": str,
        "payload": dict,
        "prev_digest": str,
        "digest": str,
    }
    for key, kind in kinds.items():
        if not isinstance(data[key], kind) or isinstance(data[key], bool):
            raise ValueError(f"{key} is not a {kind.__name__}")
    try:
        record = StoredRecord(
            topic=data["topic"],
            originator_id=UUID(data["originator_id"]),
            originator_version=data["originator_version"],
            timestamp=datetime.fromisoformat(data["timestamp"]),
            payload=data["payload"],
            prev_digest=data["prev_digest"],
            digest=data["digest"],
        )
    except ValueError as exc:
        raise ValueError(f"a field cannot be read: {exc}") from None
    if record_line(record) != line:
        raise ValueError("not written as an export writes it (changed by hand?)")
    return record


def _manifest_digest(manifest: Mapping[str, Any]) -> str:
    content = {k: v for k, v in manifest.items() if k != "manifest_digest"}
    return hashlib.sha256(_encode(_canonical(content))).hexdigest()


def _manifest_text(manifest: Mapping[str, Any]) -> str:
    return json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _tool_version() -> str:
    try:
        return metadata.version("recovery-core")
    except metadata.PackageNotFoundError:
        return "unknown"


# -- export ----------------------------------------------------------------------


@attrs.frozen
class Exported:
    """An export written: where, its manifest, and what it could not hold."""

    path: Path
    manifest: dict[str, Any]
    notes: tuple[str, ...] = ()

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST_FILE


def _refuse_out(out: Path) -> None:
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise UsageError(f"--out {out}: it exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        raise UsageError(
            f"--out {out}: the folder is not empty; give a new or empty folder"
        )


def _bundle_objects(
    run_refs: RunRefs, records: Sequence[StoredRecord]
) -> tuple[list[str], list[str]]:
    """The commits the bundle carries besides the refs (the commits the
    batches became, and what retired refs pointed at), and those of them that
    are gone from the repository."""
    wanted: list[str] = []
    for record in records:
        name = record.topic.removeprefix("recovery:")
        if name == "BatchCommitted":
            wanted.append(str(record.payload.get("commit", "")))
        elif name == "RefsRetired":
            wanted += [str(r.get("target", "")) for r in record.payload.get("refs", [])]
    wanted = list(dict.fromkeys(wanted))
    found = run_refs.commits(wanted)
    return [s for s in wanted if s in found], [s for s in wanted if s not in found]


def _write_bundle(
    folder: Path, workspace: str, run_id: str, records: Sequence[StoredRecord]
) -> tuple[dict[str, Any] | None, list[str]]:
    """Writes ``refs.bundle`` of the run's refs into ``folder``; the
    manifest's ``bundle`` (None when there is none) and notes."""
    try:
        run_refs = RunRefs(workspace)
    except WorkspaceError as exc:
        return None, [f"no bundle: the run's workspace cannot be read ({exc})"]
    refs = run_refs.refs(run_id)
    commits, missing = _bundle_objects(run_refs, records)
    notes = [
        f"commit {sha} named by the run is not in the repository at "
        f"{run_refs.root}: not in the bundle"
        for sha in missing
    ]
    if not refs:
        notes.append(
            f"no bundle: the repository at {run_refs.root} has no ref under "
            f"{run_refs_prefix(run_id)} (git makes no bundle without a ref)"
        )
        return None, notes
    path = folder / BUNDLE_FILE
    run_refs.bundle(path, [ref for ref, _ in refs], commits)
    header = read_bundle_header(path)
    bundle = {
        "file": BUNDLE_FILE,
        "sha256": _sha256(path),
        "object_format": header.object_format,
        "refs": [{"ref": ref, "object": sha} for ref, sha in header.refs],
        "commits": commits,
    }
    return bundle, notes


def export_run(app: RecoveryApp, run_id: UUID | str, out: Path) -> Exported:
    """Exports the run into the folder ``out`` (new, or empty; made with its
    parents). The run's events must verify (:class:`IntegrityError`, exit 6,
    else); ``out`` that exists with something in it is refused (exit 2).
    Written into a temporary folder next to ``out``, renamed at the end."""
    _refuse_out(out)
    view = app.view(run_id)
    records = app.stored_records(view.run_id)
    try:
        head = verify_chain(records)
    except IntegrityError as exc:
        raise IntegrityError(
            f"run {view.run_id} in {app.store.display} does not verify: {exc}; "
            "nothing was exported (see `recovery verify`)"
        ) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        events = folder / EVENTS_FILE
        with events.open("wb") as stream:
            for record in records:
                stream.write(_encode(record_line(record)) + b"\n")
        bundle, notes = _write_bundle(folder, view.workspace, view.run_id, records)
        counts = Counter(r.topic.removeprefix("recovery:") for r in records)
        manifest: dict[str, Any] = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "tool": "recovery-core",
            "tool_version": _tool_version(),
            "exported_at": datetime.now(UTC).isoformat(),
            "run_id": view.run_id,
            "plan_id": view.plan_id,
            "events": {
                "file": EVENTS_FILE,
                "sha256": _sha256(events),
                "count": len(records),
                "first_version": records[0].originator_version,
                "last_version": records[-1].originator_version,
                "head_digest": head,
                "by_type": dict(sorted(counts.items())),
            },
            "bundle": bundle,
            "notes": notes,
        }
        manifest["manifest_digest"] = _manifest_digest(manifest)
        (folder / MANIFEST_FILE).write_bytes(_encode(_manifest_text(manifest)))
        for path in folder.iterdir():
            _fsync(path)
        folder.chmod(0o777 & ~_umask())
        if out.is_dir():
            out.rmdir()  # empty, checked above; rename needs it gone
        folder.rename(out)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    _fsync(out.parent)
    return Exported(out, manifest, tuple(notes))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# -- check -----------------------------------------------------------------------


@attrs.frozen
class ExportCheck:
    """What :func:`check_export` found: every problem (none: the export
    verifies), notes on what could not be checked, and what the export holds."""

    folder: Path
    problems: tuple[str, ...]
    notes: tuple[str, ...]
    run_id: str | None
    events: int
    head_digest: str | None
    refs: int

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_json(self) -> dict[str, Any]:
        return {
            "export": str(self.folder),
            "verified": self.ok,
            "run_id": self.run_id,
            "events": self.events,
            "head_digest": self.head_digest,
            "refs": self.refs,
            "problems": list(self.problems),
            "notes": list(self.notes),
        }


class _Found:
    """Problems and notes, as found."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.notes: list[str] = []
        self.chain_holds = False

    def problem(self, text: str) -> None:
        self.problems.append(text)


def _read_manifest(folder: Path, found: _Found) -> dict[str, Any] | None:
    path = folder / MANIFEST_FILE
    if not path.is_file():
        found.problem(f"{MANIFEST_FILE}: missing")
        return None
    raw = path.read_bytes()
    try:
        manifest = json.loads(raw.decode("utf-8", "surrogatepass"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        found.problem(f"{MANIFEST_FILE}: not JSON ({exc})")
        return None
    if not isinstance(manifest, dict):
        found.problem(f"{MANIFEST_FILE}: not a JSON object")
        return None
    if manifest.get("format") != FORMAT:
        found.problem(
            f"{MANIFEST_FILE}: format is {manifest.get('format')!r}, not {FORMAT!r}"
        )
        return None
    if manifest.get("format_version") != FORMAT_VERSION:
        found.problem(
            f"{MANIFEST_FILE}: format_version {manifest.get('format_version')!r} "
            f"is not one this version reads ({FORMAT_VERSION})"
        )
        return None
    if _encode(_manifest_text(manifest)) != raw:
        found.problem(
            f"{MANIFEST_FILE}: not written as an export writes it (changed by hand?)"
        )
    digest = _manifest_digest(manifest)
    if manifest.get("manifest_digest") != digest:
        found.problem(
            f"{MANIFEST_FILE}: its content does not match its manifest_digest "
            f"(recorded {manifest.get('manifest_digest')!r}, content {digest})"
        )
    return manifest


def _get(
    manifest: Mapping[str, Any] | None, path: str, kind: type, found: _Found
) -> Any:
    """The manifest's value at ``path`` (dotted), or None (a problem) when it
    is missing or not a ``kind``."""
    value: Any = manifest
    for key in path.split("."):
        if not isinstance(value, Mapping) or key not in value:
            if manifest is not None:
                found.problem(f"{MANIFEST_FILE}: {path} is missing")
            return None
        value = value[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        found.problem(f"{MANIFEST_FILE}: {path} is not a {kind.__name__}")
        return None
    return value


def _check_sha(folder: Path, name: str, recorded: str | None, found: _Found) -> None:
    if recorded is None:
        return
    actual = _sha256(folder / name)
    if actual != recorded:
        found.problem(
            f"{name}: its SHA-256 is {actual}, the manifest records {recorded}: "
            "the file changed since the export"
        )


def _read_events(
    folder: Path, manifest: Mapping[str, Any] | None, found: _Found
) -> list[StoredRecord]:
    path = folder / EVENTS_FILE
    if not path.is_file():
        found.problem(f"{EVENTS_FILE}: missing")
        return []
    _check_sha(folder, EVENTS_FILE, _get(manifest, "events.sha256", str, found), found)
    data = path.read_bytes()
    if not data.endswith(b"\n"):
        found.problem(f"{EVENTS_FILE}: does not end with a newline (cut short?)")
    records: list[StoredRecord] = []
    topics = run_topics()
    for number, raw in enumerate(data.split(b"\n")[:-1], start=1):
        where = f"{EVENTS_FILE} line {number}"
        try:
            record = record_of_line(raw.decode("utf-8", "surrogatepass"))
        except (UnicodeDecodeError, ValueError) as exc:
            found.problem(f"{where}: {exc}")
            continue
        name = record.topic.removeprefix("recovery:")
        where += f" (event {record.originator_version}, {name})"
        if record.topic not in topics:
            found.problem(f"{where}: {record.topic!r} is no event of a run")
        if records and record.originator_id != records[0].originator_id:
            found.problem(
                f"{where}: of run {record.originator_id}, not "
                f"{records[0].originator_id}"
            )
        records.append(record)
    if not records:
        found.problem(f"{EVENTS_FILE}: no event")
        return records
    if records[0].topic != Run.Started.TOPIC:
        found.problem(f"{EVENTS_FILE} line 1: not the run's RunStarted")
    try:
        verify_chain(records)
    except IntegrityError as exc:
        found.problem(f"{EVENTS_FILE}: {exc}")
    else:
        found.chain_holds = True
    return records


def _compare(found: _Found, what: str, recorded: Any, actual: Any) -> None:
    if recorded is not None and recorded != actual:
        found.problem(
            f"{MANIFEST_FILE}: {what} is {recorded!r}, {actual!r} in the export"
        )


def _check_counts(
    manifest: Mapping[str, Any] | None,
    records: Sequence[StoredRecord],
    found: _Found,
) -> None:
    if manifest is None:
        return
    get: Callable[[str, type], Any] = lambda path, kind: _get(  # noqa: E731
        manifest, path, kind, found
    )
    if records:
        run_id = str(records[0].originator_id)
        _compare(found, "run_id", get("run_id", str), run_id)
        plan_id = records[0].payload.get("plan_id")
        _compare(found, "plan_id", get("plan_id", str), plan_id)
        _compare(
            found,
            "events.first_version",
            get("events.first_version", int),
            records[0].originator_version,
        )
        _compare(
            found,
            "events.last_version",
            get("events.last_version", int),
            records[-1].originator_version,
        )
        _compare(
            found,
            "events.head_digest",
            get("events.head_digest", str),
            records[-1].digest,
        )
    _compare(found, "events.count", get("events.count", int), len(records))
    counts = Counter(r.topic.removeprefix("recovery:") for r in records)
    _compare(found, "events.by_type", get("events.by_type", dict), dict(counts))


def _check_git(
    reader: BundleReader,
    refs: Mapping[str, str],
    records: Sequence[StoredRecord],
    found: _Found,
) -> None:
    """The quarantines and commits the events name, against the bundle."""
    retired: dict[str, str] = {}
    verified_at: dict[tuple[Any, Any], int] = {}
    for index, record in enumerate(records):
        payload = record.payload
        name = record.topic.removeprefix("recovery:")
        where = f"{EVENTS_FILE}: event {record.originator_version} ({name})"
        if name == "RefsRetired":
            retired.update({r["ref"]: r["target"] for r in payload.get("refs", [])})
        elif name == "BatchVerified":
            verified_at[(payload.get("batch_id"), payload.get("attempt"))] = index
        elif name == "ChangesQuarantined":
            ref, tree = str(payload.get("quarantine_ref")), payload.get("tree_id")
            commit = refs.get(ref)
            if commit is None:
                if ref in retired:
                    continue  # checked below, where the retirement is known
                found.problem(
                    f"{where}: its quarantine ref {ref} is not in {BUNDLE_FILE}"
                )
                continue
            held = reader.commit_tree(commit)
            if held != tree:
                found.problem(
                    f"{where}: {BUNDLE_FILE} has {ref} at a commit of tree {held}, "
                    f"the event names tree {tree}"
                )
        elif name == "BatchCommitted":
            batch, attempt, commit = (
                payload.get("batch_id"),
                payload.get("attempt"),
                payload.get("commit"),
            )
            message = reader.commit_message(str(commit))
            if message is None:
                found.problem(f"{where}: its commit {commit} is not in {BUNDLE_FILE}")
                continue
            trailers = trailers_of(message)
            run_id = str(record.originator_id)
            for key, wanted in (("Recovery-Run", run_id), ("Recovery-Batch", batch)):
                if trailers.get(key) != wanted:
                    found.problem(
                        f"{where}: commit {commit} has {key} {trailers.get(key)!r}, "
                        f"not {wanted!r}"
                    )
            start = verified_at.get((batch, attempt))
            if start is None:
                found.problem(f"{where}: no BatchVerified of the attempt before it")
                continue
            allowed = {r.digest for r in records[start:index]}
            chain = trailers.get("Recovery-Chain")
            if chain not in allowed:
                found.problem(
                    f"{where}: commit {commit} has Recovery-Chain {chain!r}, not the "
                    "digest of an event from the attempt's BatchVerified to this one"
                )
    for ref, target in sorted(retired.items()):
        quarantines = [
            r
            for r in records
            if r.topic == Run.ChangesQuarantined.TOPIC
            and r.payload.get("quarantine_ref") == ref
        ]
        for record in quarantines:
            if ref in refs:
                continue
            held = reader.commit_tree(target)
            if held is None:
                found.notes.append(
                    f"quarantine ref {ref} was retired (RefsRetired) before the "
                    "export: its change is not in it"
                )
            elif held != record.payload.get("tree_id"):
                found.problem(
                    f"{EVENTS_FILE}: event {record.originator_version} "
                    f"(ChangesQuarantined): the retired {ref} pointed at a commit "
                    f"of tree {held}, the event names {record.payload.get('tree_id')}"
                )


def _check_bundle(
    folder: Path,
    manifest: Mapping[str, Any] | None,
    records: Sequence[StoredRecord],
    found: _Found,
) -> int:
    """Checks ``refs.bundle``; the number of refs it holds."""
    path = folder / BUNDLE_FILE
    described = None if manifest is None else manifest.get("bundle", {})
    if manifest is not None and described is None:
        if path.exists():
            found.problem(f"{BUNDLE_FILE}: present, but the manifest records none")
        git_events = [
            r
            for r in records
            if r.topic in (Run.ChangesQuarantined.TOPIC, Run.BatchCommitted.TOPIC)
        ]
        if git_events:
            found.notes.append(
                f"the export has no bundle: {len(git_events)} quarantine(s) and "
                "commit(s) the events name are not checked"
            )
        return 0
    if not path.is_file():
        found.problem(f"{BUNDLE_FILE}: missing")
        return 0
    _check_sha(folder, BUNDLE_FILE, _get(manifest, "bundle.sha256", str, found), found)
    try:
        header = read_bundle_header(path)
    except ValueError as exc:
        found.problem(f"{BUNDLE_FILE}: not a git bundle: {exc}")
        return 0
    refs = dict(header.refs)
    listed = _get(manifest, "bundle.refs", list, found)
    if listed is not None:
        recorded = sorted((str(r.get("ref")), str(r.get("object"))) for r in listed)
        if recorded != sorted(header.refs):
            found.problem(
                f"{BUNDLE_FILE}: its refs differ from the manifest's: "
                f"{_ref_difference(recorded, sorted(header.refs))}"
            )
    _compare(
        found,
        "bundle.object_format",
        _get(manifest, "bundle.object_format", str, found),
        header.object_format,
    )
    if records:
        prefix = f"refs/recovery/{records[0].originator_id}/"
        for ref in refs:
            if not ref.startswith(prefix):
                found.problem(f"{BUNDLE_FILE}: ref {ref} is not one of the run's")
    if header.prerequisites:
        found.problem(
            f"{BUNDLE_FILE}: it needs commits it does not hold: "
            + ", ".join(header.prerequisites)
        )
        return len(refs)
    try:
        with BundleReader.open(path, header.object_format) as reader:
            for ref, sha in sorted(refs.items()):
                if reader.kind(sha) is None:
                    found.problem(f"{BUNDLE_FILE}: ref {ref}: object {sha} is missing")
            for sha in _get(manifest, "bundle.commits", list, found) or []:
                if reader.kind(str(sha)) != "commit":
                    found.problem(f"{BUNDLE_FILE}: commit {sha} is missing")
            if found.chain_holds:
                _check_git(reader, refs, records, found)
            else:
                found.notes.append(
                    "the events do not verify: the quarantines and commits they "
                    "name are not checked against the bundle"
                )
    except GitError as exc:
        found.problem(f"{BUNDLE_FILE}: git cannot read it: {exc}")
    return len(refs)


def _ref_difference(
    recorded: Sequence[tuple[str, str]], actual: Sequence[tuple[str, str]]
) -> str:
    only_manifest = [f"{r} {s}" for r, s in recorded if (r, s) not in actual]
    only_bundle = [f"{r} {s}" for r, s in actual if (r, s) not in recorded]
    parts = []
    if only_manifest:
        parts.append("only in the manifest: " + ", ".join(only_manifest))
    if only_bundle:
        parts.append("only in the bundle: " + ", ".join(only_bundle))
    return "; ".join(parts)


def check_export(folder: Path) -> ExportCheck:
    """Checks the export in ``folder`` with nothing else: the manifest (its
    format and own digest), the SHA-256 of each file, the hash chain of the
    events and the manifest's counts and head digest, then (in a temporary
    repository, removed at the end) the bundle: its refs, each quarantine's
    tree, each commit and its ``Recovery-*`` trailers. :class:`UsageError`
    (exit 2) when ``folder`` is no export at all."""
    if not folder.is_dir():
        raise UsageError(f"--bundle {folder}: no such folder")
    if not (folder / MANIFEST_FILE).exists() and not (folder / EVENTS_FILE).exists():
        raise UsageError(
            f"--bundle {folder}: not an export (no {MANIFEST_FILE} or {EVENTS_FILE}); "
            "make one with `recovery export RUN --out DIR`"
        )
    found = _Found()
    manifest = _read_manifest(folder, found)
    records = _read_events(folder, manifest, found)
    _check_counts(manifest, records, found)
    refs = _check_bundle(folder, manifest, records, found)
    extra = sorted(
        p.name
        for p in folder.iterdir()
        if p.name not in (MANIFEST_FILE, EVENTS_FILE, BUNDLE_FILE)
    )
    if extra:
        found.notes.append("not part of the export, not checked: " + ", ".join(extra))
    return ExportCheck(
        folder=folder,
        problems=tuple(found.problems),
        notes=tuple(found.notes),
        run_id=str(records[0].originator_id) if records else None,
        events=len(records),
        head_digest=records[-1].digest if records else None,
        refs=refs,
    )
