"""``recovery export`` and ``recovery verify --bundle`` through the real
command: a run through a failure, a quarantine, a retry and two commits is
exported (its events as stored, a manifest, a git bundle of its refs and
commits); the export verifies on its own, with the workspace and the store
gone; and any single changed byte of it, a reordered or removed event line,
is found (exit 6) and named."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from recovery_adapters.audit.export import check_export, record_line
from recovery_core import RecoveryApp
from recovery_core.plan import load_plan
from recovery_core.store import default_store_url
from support import (
    ATTEMPT_AWARE,
    GOOD_EXTRA,
    cli_json,
    git,
    make_repo,
    run_cli,
    unit_tests_step,
    write_file_action,
    write_plan,
)


def _plan(repo: Path) -> Path:
    return write_plan(
        repo / "plan.json",
        {
            "plan_id": "export-plan",
            "batches": [
                {
                    "batch_id": "b1",
                    "actions": [
                        {
                            "name": "generate",
                            "run": [sys.executable, "-c", ATTEMPT_AWARE],
                        }
                    ],
                    "validation": [
                        {"name": "syntax", "kind": "syntax"},
                        unit_tests_step(),
                    ],
                    "commit_strategy": "commit",
                },
                {
                    "batch_id": "b2",
                    "actions": [write_file_action("extra", "app/extra.py", GOOD_EXTRA)],
                    "validation": [{"name": "syntax", "kind": "syntax"}],
                    "commit_strategy": "commit",
                },
            ],
        },
    )


def finished_run(repo: Path) -> str:
    """A run in ``repo`` that failed at b1 (quarantined), was retried with
    the fix, and completed with b1 and b2 committed; its id."""
    make_repo(repo)
    _plan(repo)
    done = run_cli("run", "plan.json", cwd=repo)
    assert done.returncode == 3, done.stderr
    decided = run_cli("decide", "latest", "b1", "retry", "--operator", "ada", cwd=repo)
    assert decided.returncode == 0, decided.stderr
    resumed = run_cli("resume", "latest", cwd=repo)
    assert resumed.returncode == 0, resumed.stderr
    status = cli_json("status", cwd=repo)
    assert status["state"] == "completed"
    assert all(b["commit"] for b in status["batches"])
    run_id: str = status["run_id"]
    return run_id


class Exported:
    """The module's run and its export."""

    def __init__(self, root: Path) -> None:
        self.repo = root / "repo"
        self.run_id = finished_run(self.repo)
        self.out = root / "exports" / "run1"
        done = run_cli("export", "latest", "--out", self.out, "--json", cwd=self.repo)
        assert done.returncode == 0, done.stderr
        self.printed = json.loads(done.stdout)

    def copy(self, to: Path) -> Path:
        target = to / "copy"
        shutil.copytree(self.out, target)
        return target


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    return Exported(tmp_path_factory.mktemp("export"))


def _app(repo: Path) -> RecoveryApp:
    return RecoveryApp.open(default_store_url(repo), create=False)


def test_export_writes_events_as_stored_a_manifest_and_a_bundle(
    exported: Exported,
) -> None:
    """The export has the three files; events.jsonl is the run's events as
    stored, line by line; the manifest counts them, names the head digest
    and the SHA-256 of each file; the bundle holds every ref of the run
    (the quarantine among them) and the commits its batches became."""
    out, run_id = exported.out, exported.run_id
    assert sorted(p.name for p in out.iterdir()) == [
        "events.jsonl",
        "manifest.json",
        "refs.bundle",
    ]
    app = _app(exported.repo)
    records = app.stored_records(run_id)
    lines = (out / "events.jsonl").read_text().splitlines()
    assert lines == [record_line(r) for r in records]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["run_id"] == run_id
    assert manifest["plan_id"] == "export-plan"
    assert manifest["events"]["count"] == len(records) == app.view(run_id).version
    assert manifest["events"]["head_digest"] == app.check_chain(run_id)
    assert manifest["events"]["first_version"] == 1
    assert manifest["events"]["last_version"] == len(records)
    assert manifest["events"]["by_type"]["ChangesQuarantined"] == 1
    assert manifest["events"]["by_type"]["BatchCommitted"] == 2
    refs = {r["ref"]: r["object"] for r in manifest["bundle"]["refs"]}
    wanted = git(exported.repo, "for-each-ref", "--format=%(refname) %(objectname)")
    ours = dict(
        line.split(" ") for line in wanted.splitlines() if f"/{run_id}/" in line
    )
    assert refs == ours
    assert f"refs/recovery/{run_id}/b1/1/quarantine" in refs
    commits = [b.commit for b in app.view(run_id).batches]
    assert manifest["bundle"]["commits"] == commits
    assert exported.printed["manifest"] == str(out / "manifest.json")
    assert exported.printed["events"] == len(records)
    assert exported.printed["head_digest"] == manifest["events"]["head_digest"]


def test_export_verifies_offline_without_workspace_or_store(
    exported: Exported, tmp_path: Path
) -> None:
    """verify --bundle, from a folder with no store above it, with the
    workspace (repository and store) gone: exit 0, naming the run, its
    events and the head digest; it makes nothing where it runs."""
    copy = exported.copy(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    hidden = exported.repo.with_name("repo-hidden")
    exported.repo.rename(hidden)
    try:
        done = run_cli("verify", "--bundle", copy, cwd=elsewhere)
        as_json = run_cli("verify", "--bundle", copy, "--json", cwd=elsewhere)
    finally:
        hidden.rename(exported.repo)
    assert done.returncode == 0, done.stderr
    assert f"run {exported.run_id}" in done.stdout
    assert exported.printed["head_digest"] in done.stdout
    assert as_json.returncode == 0, as_json.stderr
    checked = json.loads(as_json.stdout)
    assert checked["verified"] is True
    assert checked["problems"] == []
    assert checked["events"] == exported.printed["events"]
    assert list(elsewhere.iterdir()) == []


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] = ord("1") if data[offset] != ord("1") else ord("2")
    path.write_bytes(bytes(data))


def _edit_text(name: str, old: str, new: str) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        path = folder / name
        text = path.read_text()
        assert old in text, (name, old)
        path.write_text(text.replace(old, new, 1))

    return edit


def _digit_in_line(number: int, key: str) -> Callable[[Path], None]:
    """Changes the first digit after ``key`` in line ``number`` of events.jsonl."""

    def edit(folder: Path) -> None:
        path = folder / "events.jsonl"
        lines = path.read_bytes().split(b"\n")
        line = lines[number - 1]
        at = line.index(key.encode()) + len(key)
        while not chr(line[at]).isdigit():
            at += 1
        offset = sum(len(x) + 1 for x in lines[: number - 1]) + at
        _flip(path, offset)

    return edit


def _lines(change: Callable[[list[bytes]], list[bytes]]) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        path = folder / "events.jsonl"
        lines = path.read_bytes().split(b"\n")[:-1]
        path.write_bytes(b"".join(x + b"\n" for x in change(lines)))

    return edit


def _swap(lines: list[bytes]) -> list[bytes]:
    lines[3], lines[4] = lines[4], lines[3]
    return lines


def _digest_char(folder: Path) -> None:
    path = folder / "events.jsonl"
    data = path.read_bytes()
    at = data.index(b'"digest":"') + len(b'"digest":"') + 5
    _flip(path, at)


def _bundle_pack_byte(folder: Path) -> None:
    path = folder / "refs.bundle"
    _flip(path, len(path.read_bytes()) - 100)


def _bundle_header_byte(folder: Path) -> None:
    path = folder / "refs.bundle"
    data = path.read_bytes()
    _flip(path, data.index(b"\n") + 3)  # a character of the first ref's id


TAMPERINGS: dict[str, tuple[Callable[[Path], None], list[str]]] = {
    "a payload digit": (
        _digit_in_line(5, '"duration_s":'),
        ["events.jsonl", "event 5 (", "does not match its digest"],
    ),
    "a digest character": (_digest_char, ["events.jsonl", "event 1 (RunStarted)"]),
    "two lines swapped": (_lines(_swap), ["events.jsonl", "event 5", "out of order"]),
    "a line removed": (
        _lines(lambda x: x[:6] + x[7:]),
        ["events.jsonl", "event 8", "missing"],
    ),
    "the last line removed": (
        _lines(lambda x: x[:-1]),
        ["manifest.json: events.count", "events.head_digest"],
    ),
    "the manifest's count": (
        _edit_text("manifest.json", '"count": ', '"count": 1'),
        ["manifest.json", "manifest_digest", "events.count"],
    ),
    "the manifest's time": (
        _edit_text("manifest.json", '"exported_at": "2', '"exported_at": "3'),
        ["manifest.json", "manifest_digest"],
    ),
    "the manifest's spacing": (
        _edit_text("manifest.json", '"format": ', '"format":  '),
        ["manifest.json: not written as an export writes it"],
    ),
    "a byte of the bundle's pack": (
        _bundle_pack_byte,
        ["refs.bundle: its SHA-256", "refs.bundle: git cannot read it"],
    ),
    "a byte of the bundle's refs": (
        _bundle_header_byte,
        ["refs.bundle: its SHA-256", "refs.bundle: its refs differ from the manifest"],
    ),
}


@pytest.mark.parametrize("what", sorted(TAMPERINGS))
def test_a_changed_export_is_found_and_named(
    exported: Exported, tmp_path: Path, what: str
) -> None:
    """One changed byte (a payload digit, a digest character, a count, the
    export time, the spacing of the manifest, a byte of the bundle's pack
    or refs), a reordered or a removed line: verify --bundle exits 6 naming
    the file, the event and what differs (also as --json problems)."""
    change, expected = TAMPERINGS[what]
    copy = exported.copy(tmp_path)
    change(copy)
    done = run_cli("verify", "--bundle", copy, cwd=tmp_path)
    assert done.returncode == 6, (done.stdout, done.stderr)
    assert "does not verify" in done.stderr
    for text in expected:
        assert text in done.stderr, (text, done.stderr)
    as_json = run_cli("verify", "--bundle", copy, "--json", cwd=tmp_path)
    assert as_json.returncode == 6
    checked = json.loads(as_json.stdout)
    assert checked["verified"] is False
    assert checked["exit_code"] == 6
    assert checked["problems"]


def _spread(size: int, count: int) -> Iterator[int]:
    step = max(1, size // count)
    yield from range(0, size, step)


@pytest.mark.parametrize("name", ["events.jsonl", "manifest.json", "refs.bundle"])
def test_any_single_changed_byte_is_found(
    exported: Exported, tmp_path: Path, name: str
) -> None:
    """Each of some 25 bytes spread over the file, changed alone, makes the
    export fail its check with a problem naming the file (checked in
    process, as verify --bundle does)."""
    size = (exported.out / name).stat().st_size
    for offset in _spread(size, 25):
        copy = tmp_path / f"at-{offset}"
        shutil.copytree(exported.out, copy)
        path = copy / name
        data = bytearray(path.read_bytes())
        data[offset] ^= 0x01
        path.write_bytes(bytes(data))
        checked = check_export(copy)
        assert not checked.ok, (name, offset)
        assert any(p.startswith(name) for p in checked.problems), (
            offset,
            checked.problems,
        )
        shutil.rmtree(copy)


def test_export_refuses_a_folder_that_is_not_empty(exported: Exported) -> None:
    """--out naming a folder with something in it: exit 2, the folder as it
    was, nothing else written next to it."""
    out = exported.out.parent / "busy"
    out.mkdir()
    (out / "mine.txt").write_text("mine\n")
    before = sorted(p.name for p in out.parent.iterdir())
    done = run_cli("export", "latest", "--out", out, cwd=exported.repo)
    assert done.returncode == 2, done.stderr
    assert "not empty" in done.stderr
    assert [p.name for p in out.iterdir()] == ["mine.txt"]
    assert sorted(p.name for p in out.parent.iterdir()) == before


def test_export_into_an_empty_folder(exported: Exported) -> None:
    """An empty --out folder is filled; the export verifies."""
    out = exported.out.parent / "empty"
    out.mkdir()
    done = run_cli("export", exported.run_id[:8], "--out", out, cwd=exported.repo)
    assert done.returncode == 0, done.stderr
    assert "exported run" in done.stdout
    assert check_export(out).ok


def test_a_run_without_refs_exports_without_a_bundle(tmp_path: Path) -> None:
    """A run recorded for a folder that is no git repository (a host's own
    workspace): the export has no bundle, its manifest says why, and it
    verifies."""
    folder = tmp_path / "plain"
    folder.mkdir()
    plan_path = tmp_path / "plan.json"
    write_plan(
        plan_path,
        {"plan_id": "plain", "batches": [{"batch_id": "b1", "validation": []}]},
    )
    url = f"sqlite:///{tmp_path / 'events.sqlite3'}"
    app = RecoveryApp.open(url)
    run_id = app.start_run(load_plan(plan_path), workspace=folder)
    app.update(run_id, lambda run: run.abort(operator="ada", reason="not needed"))
    out = tmp_path / "out"
    done = run_cli("export", "latest", "--out", out, "--store", url, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    manifest: dict[str, Any] = json.loads((out / "manifest.json").read_text())
    assert manifest["bundle"] is None
    assert any("no bundle" in note for note in manifest["notes"])
    assert not (out / "refs.bundle").exists()
    checked = run_cli("verify", "--bundle", out, cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr


def test_verify_bundle_of_a_folder_that_is_no_export(tmp_path: Path) -> None:
    """verify --bundle of a missing folder, or of one with no export in it:
    exit 2."""
    done = run_cli("verify", "--bundle", tmp_path / "nope", cwd=tmp_path)
    assert done.returncode == 2
    done = run_cli("verify", "--bundle", tmp_path, cwd=tmp_path)
    assert done.returncode == 2
    assert "not an export" in done.stderr


def test_a_quarantine_ref_moved_before_the_export_is_found(
    exported: Exported, tmp_path: Path
) -> None:
    """The quarantine ref pointed elsewhere in the repository (at the
    attempt's baseline) when the export was made: the export's files agree
    with each other, but verify --bundle finds that the ref does not hold
    the tree ChangesQuarantined names (exit 6, naming the event)."""
    prefix = f"refs/recovery/{exported.run_id}/b1/1"
    quarantine = git(exported.repo, "rev-parse", f"{prefix}/quarantine").strip()
    baseline = git(exported.repo, "rev-parse", f"{prefix}/baseline").strip()
    git(exported.repo, "update-ref", f"{prefix}/quarantine", baseline)
    try:
        out = tmp_path / "moved"
        done = run_cli("export", "latest", "--out", out, cwd=exported.repo)
    finally:
        git(exported.repo, "update-ref", f"{prefix}/quarantine", quarantine)
    assert done.returncode == 0, done.stderr
    checked = run_cli("verify", "--bundle", out, cwd=tmp_path)
    assert checked.returncode == 6, checked.stderr
    assert "(ChangesQuarantined): refs.bundle has" in checked.stderr
    assert "the event names tree" in checked.stderr
    assert "SHA-256" not in checked.stderr
