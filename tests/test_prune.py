"""``recovery prune`` through the real command: the refs of finished runs are
retired (``RefsRetired`` recorded first, then deleted), as ``--keep`` and
``--older-than`` both allow; never those of an unfinished run; ``--dry-run``
changes no byte; a second prune records nothing; a prune cut off after its
record is finished by the next; an export made before still verifies."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from recovery_core import RecoveryApp, load_plan
from recovery_core.run import Run
from recovery_core.store import default_store_url
from support import (
    ATTEMPT_AWARE,
    GOOD_EXTRA,
    cli_json,
    git,
    make_repo,
    python_step,
    run_cli,
    write_file_action,
    write_plan,
)

CHECK = python_step("check", "from app.calc import add; assert add(2, 3) == 5")


def _batch(batch_id: str, action: dict[str, Any], *steps: Any) -> dict[str, Any]:
    return {
        "batch_id": batch_id,
        "actions": [action],
        "validation": [{"name": "syntax", "kind": "syntax"}, *steps],
        "commit_strategy": "commit",
    }


class Runs:
    """Three runs in one workspace: ``first`` (a failure, a quarantine, a
    retry, completed), ``second`` (completed after it), ``halted`` (a
    failure awaiting a decision)."""

    def __init__(self, repo: Path) -> None:
        self.repo = make_repo(repo)
        generate = {"name": "generate", "run": [sys.executable, "-c", ATTEMPT_AWARE]}
        self.first = self._run("p1", _batch("b1", generate, CHECK), retry="b1")
        extra = write_file_action("extra", "app/extra.py", GOOD_EXTRA)
        self.second = self._run("p2", _batch("b1", extra))
        failing = python_step("fails", "raise SystemExit('always fails')")
        other = write_file_action("other", "app/other.py", GOOD_EXTRA)
        self.halted = self._run("p3", _batch("b1", other, failing), halt=True)

    def _run(
        self,
        plan_id: str,
        batch: dict[str, Any],
        *,
        retry: str | None = None,
        halt: bool = False,
    ) -> str:
        plan = f"{plan_id}.json"
        write_plan(self.repo / plan, {"plan_id": plan_id, "batches": [batch]})
        done = run_cli("run", plan, cwd=self.repo)
        if retry is not None:
            assert done.returncode == 3, done.stderr
            decided = run_cli("decide", "latest", retry, "retry", cwd=self.repo)
            assert decided.returncode == 0, decided.stderr
            done = run_cli("resume", "latest", cwd=self.repo)
        assert done.returncode == (3 if halt else 0), done.stderr
        run_id: str = cli_json("status", cwd=self.repo)["run_id"]
        return run_id

    def refs(self, run_id: str) -> dict[str, str]:
        out = git(
            self.repo,
            "for-each-ref",
            "--format=%(refname) %(objectname)",
            f"refs/recovery/{run_id}/",
        )
        return dict(line.split(" ") for line in out.splitlines())

    def app(self) -> RecoveryApp:
        return RecoveryApp.open(default_store_url(self.repo), create=False)

    def events(self, run_id: str) -> list[Run.Event]:
        return self.app().history(run_id)

    def prune(self, *args: str) -> Any:
        done = run_cli("prune", *args, "--json", "--operator", "ada", cwd=self.repo)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The three runs, built once; each test works on a copy (git and the
    store both live in the folder, and name it by path: the copy is moved
    to the same path)."""
    root = tmp_path_factory.mktemp("prune-built")
    Runs(root / "repo")
    return root


@pytest.fixture
def runs(built: Path, tmp_path: Path) -> Iterator[Runs]:
    original = built / "repo"
    saved = tmp_path / "saved"
    shutil.copytree(original, saved, symlinks=True)
    made = object.__new__(Runs)
    made.repo = original
    app = RecoveryApp.open(default_store_url(original), create=False)
    ids = [s.run_id for s in app.runs()]
    app.close()
    made.first, made.second, made.halted = ids
    yield made
    shutil.rmtree(original)
    shutil.copytree(saved, original, symlinks=True)


def _everything(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (.git and .recovery too), by path."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_prune_asks_for_keep_or_older_than(runs: Runs) -> None:
    """Neither --keep nor --older-than: exit 2, asking for one; a bad age or
    a negative count: exit 2; nothing changed."""
    before = _everything(runs.repo)
    done = run_cli("prune", cwd=runs.repo)
    assert done.returncode == 2
    assert "--keep N" in done.stderr and "--older-than AGE" in done.stderr
    for args in (["--older-than", "3 days"], ["--older-than", "5y"], ["--keep", "-1"]):
        done = run_cli("prune", *args, cwd=runs.repo)
        assert done.returncode == 2, (args, done.stderr)
    assert _everything(runs.repo) == before


def test_dry_run_says_what_it_would_remove_and_writes_nothing(runs: Runs) -> None:
    """--dry-run --keep 0: lists both finished runs and each of their refs,
    never the halted run; every file of the workspace (.git and the store
    too) is byte for byte as it was."""
    before = _everything(runs.repo)
    shown = runs.prune("--keep", "0", "--dry-run")
    assert shown["dry_run"] is True
    listed = {r["run_id"]: r for r in shown["runs"]}
    assert set(listed) == {runs.first, runs.second}
    for run_id in (runs.first, runs.second):
        refs = {r["ref"]: r["target"] for r in listed[run_id]["refs"]}
        assert refs == runs.refs(run_id)
        assert listed[run_id]["recorded"] is False
    text = run_cli("prune", "--keep", "0", "--dry-run", cwd=runs.repo)
    assert text.returncode == 0, text.stderr
    assert "would remove refs/recovery/" in text.stdout
    assert "nothing was removed or recorded" in text.stdout
    assert runs.halted[:8] not in text.stdout
    assert _everything(runs.repo) == before


def test_keep_retires_the_older_finished_runs_refs_and_records_it(runs: Runs) -> None:
    """--keep 1: the first run's refs (its quarantine among them) are gone,
    recorded first as RefsRetired with each target; the second (the most
    recently finished) and the halted run keep theirs; a second prune
    records nothing and removes nothing."""
    first_refs = runs.refs(runs.first)
    assert any(ref.endswith("/b1/1/quarantine") for ref in first_refs)
    second_refs, halted_refs = runs.refs(runs.second), runs.refs(runs.halted)
    version = len(runs.events(runs.first))
    pruned = runs.prune("--keep", "1", "--reason", "tidy up")
    assert [r["run_id"] for r in pruned["runs"]] == [runs.first]
    removed = {r["ref"]: r["target"] for r in pruned["runs"][0]["refs"]}
    assert removed == first_refs
    assert pruned["runs"][0]["recorded"] is True
    assert runs.refs(runs.first) == {}
    assert runs.refs(runs.second) == second_refs
    assert runs.refs(runs.halted) == halted_refs
    events = runs.events(runs.first)
    assert len(events) == version + 1
    last = events[-1]
    assert isinstance(last, Run.RefsRetired)
    assert {r["ref"]: r["target"] for r in last.refs} == first_refs
    assert (last.operator, last.reason) == ("ada", "tidy up")
    assert cli_json("status", runs.first, cwd=runs.repo)["state"] == "completed"

    again = runs.prune("--keep", "1")
    assert again["runs"][0]["refs"] == []
    assert again["runs"][0]["recorded"] is False
    assert again["runs"][0]["note"] == "no refs left"
    assert len(runs.events(runs.first)) == version + 1


def test_older_than_and_keep_both_apply(runs: Runs) -> None:
    """--older-than 1h: nothing finished that long ago, nothing removed;
    --older-than 0s --keep 1: only what both allow (the first run);
    --older-than 0s: every finished run, never the halted one."""
    assert runs.prune("--older-than", "1h")["runs"] == []
    assert runs.refs(runs.first)
    both = runs.prune("--older-than", "0s", "--keep", "1")
    assert [r["run_id"] for r in both["runs"]] == [runs.first]
    assert runs.refs(runs.second)
    every = runs.prune("--older-than", "0s")
    assert {r["run_id"] for r in every["runs"]} == {runs.first, runs.second}
    assert runs.refs(runs.second) == {}
    assert runs.refs(runs.halted)
    halted = runs.events(runs.halted)
    assert not any(isinstance(e, Run.RefsRetired) for e in halted)


def test_a_prune_cut_off_after_its_record_is_finished_by_the_next(
    runs: Runs,
) -> None:
    """RefsRetired recorded but the refs still there (a prune killed in
    between): the next prune deletes them and records nothing more."""
    refs = runs.refs(runs.first)
    app = runs.app()
    recorded = [{"ref": r, "target": t} for r, t in refs.items()]
    app.update(
        UUID(runs.first),
        lambda run: run.retire_refs(recorded, operator="ada", reason="cut off"),
    )
    version = app.view(runs.first).version
    app.close()
    assert runs.refs(runs.first) == refs
    pruned = runs.prune("--keep", "1")
    assert {r["ref"] for r in pruned["runs"][0]["refs"]} == set(refs)
    assert pruned["runs"][0]["recorded"] is False
    assert runs.refs(runs.first) == {}
    assert len(runs.events(runs.first)) == version


def test_an_export_made_before_a_prune_still_verifies(
    runs: Runs, tmp_path: Path
) -> None:
    """The first run exported, then pruned: the export still verifies (its
    bundle keeps the refs and objects); an export made after the prune has
    no refs to bundle, says so, and verifies too."""
    before = tmp_path / "before"
    done = run_cli("export", runs.first, "--out", before, cwd=runs.repo)
    assert done.returncode == 0, done.stderr
    runs.prune("--keep", "1")
    assert runs.refs(runs.first) == {}
    checked = run_cli("verify", "--bundle", before, cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    after = tmp_path / "after"
    done = run_cli("export", runs.first, "--out", after, cwd=runs.repo)
    assert done.returncode == 0, done.stderr
    assert "no bundle" in done.stderr
    checked = run_cli("verify", "--bundle", after, cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr


def test_a_run_whose_workspace_is_gone_is_skipped(runs: Runs, tmp_path: Path) -> None:
    """A finished run whose workspace is not there: prune says so, removes
    and records nothing for it."""
    app = runs.app()
    workspace = tmp_path / "gone"
    workspace.mkdir()
    write_plan(
        tmp_path / "plan.json",
        {"plan_id": "gone", "batches": [{"batch_id": "b1", "validation": []}]},
    )
    run_id = app.start_run(load_plan(tmp_path / "plan.json"), workspace=workspace)
    app.update(run_id, lambda run: run.abort(operator="ada", reason="done"))
    version = app.view(run_id).version
    app.close()
    workspace.rmdir()
    pruned = runs.prune("--keep", "0")
    gone = next(r for r in pruned["runs"] if r["run_id"] == str(run_id))
    assert gone["refs"] == []
    assert gone["note"].startswith("skipped: its workspace cannot be read")
    assert len(runs.events(str(run_id))) == version
