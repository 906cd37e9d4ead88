"""Stores: URL parsing, finding the default store, and whole runs on SQLite,
memory and the real PostgreSQL server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from uuid import UUID

import pytest

from recovery_adapters import ConsoleNotifier, GitWorkspace, default_step_runners
from recovery_adapters.stores import find_store_url
from recovery_core import (
    Completed,
    Halted,
    NoopStrategy,
    RecoveryApp,
    Runner,
    load_plan,
)
from recovery_core.errors import StoreURLError
from recovery_core.store import parse_store_url
from support import cli_json, run_cli, unit_tests_step, write_file_action, write_plan

BUGGY = "def add(a: int, b: int) -> int:\n    return a * b\n"


def failing_plan(repo: Path) -> Path:
    """One good batch, then one whose unit tests fail."""
    return write_plan(
        repo / "plan.json",
        {
            "plan_id": "store-test",
            "batches": [
                {
                    "batch_id": "good",
                    "actions": [write_file_action("gen", "app/more.py", "X = 1\n")],
                    "validation": [{"name": "syntax_check", "kind": "syntax"}],
                },
                {
                    "batch_id": "bad",
                    "actions": [write_file_action("gen", "app/calc.py", BUGGY)],
                    "validation": [unit_tests_step()],
                },
            ],
        },
    )


def test_sqlite_urls_map_to_a_file() -> None:
    """sqlite:///rel and sqlite:////abs name files; the settings use SQLite."""
    relative = parse_store_url("sqlite:///data/events.sqlite3")
    assert relative.kind == "sqlite" and relative.path == Path("data/events.sqlite3")
    absolute = parse_store_url("sqlite:////tmp/x/events.sqlite3")
    assert absolute.path == Path("/tmp/x/events.sqlite3")
    assert absolute.settings["PERSISTENCE_MODULE"] == "eventsourcing.sqlite"


def test_postgres_url_maps_every_part_and_hides_the_password() -> None:
    """User, password, host, port, database and schema reach the settings; the
    display form never shows the password."""
    spec = parse_store_url("postgresql://ann:s3cret@db.local:6543/events?schema=runs")
    assert spec.settings == {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": "events",
        "POSTGRES_HOST": "db.local",
        "POSTGRES_PORT": "6543",
        "POSTGRES_USER": "ann",
        "POSTGRES_PASSWORD": "s3cret",
        "POSTGRES_SCHEMA": "runs",
    }
    assert "s3cret" not in spec.display
    assert spec.display == "postgresql://ann:***@db.local:6543/events?schema=runs"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "empty"),
        ("events.sqlite3", "no scheme"),
        ("mysql://x/y", "unknown scheme 'mysql'"),
        ("sqlite://", "SQLite URL"),
        ("postgresql://host-only", "needs a host and a database"),
        ("postgresql://u@h:notaport/db", "port is not a number"),
        ("postgresql://u@h/db?sslmode=require", "unknown parameter 'sslmode'"),
    ],
)
def test_bad_store_urls_are_refused_with_exit_code_2(url: str, message: str) -> None:
    """Each bad URL raises StoreURLError (exit 2) saying what is wrong."""
    with pytest.raises(StoreURLError, match=message) as caught:
        parse_store_url(url)
    assert caught.value.exit_code == 2


def test_default_store_is_found_from_a_subfolder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Commands find .recovery/events.sqlite3 upward, as git finds .git;
    RECOVERY_STORE and an explicit --store win."""
    store = tmp_path / ".recovery" / "events.sqlite3"
    store.parent.mkdir()
    store.write_bytes(b"")
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    assert find_store_url(deep) == f"sqlite:///{store}"
    monkeypatch.setenv("RECOVERY_STORE", "memory://")
    assert find_store_url(deep) == "memory://"
    assert find_store_url(deep, "sqlite:///x.db") == "sqlite:///x.db"


def test_no_store_found_is_bad_input(tmp_path: Path) -> None:
    """Outside any workspace with a store, status exits 2 and creates nothing."""
    done = run_cli("status", cwd=tmp_path)
    assert done.returncode == 2
    assert "no store found" in done.stderr
    assert not (tmp_path / ".recovery").exists()


def test_environment_persistence_settings_do_not_redirect_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store URL is the one source of settings: eventsourcing variables in the
    environment are ignored."""
    monkeypatch.setenv("PERSISTENCE_MODULE", "eventsourcing.popo")
    monkeypatch.setenv("RECOVERY_PERSISTENCE_MODULE", "eventsourcing.popo")
    path = tmp_path / "events.sqlite3"
    app = RecoveryApp.open(f"sqlite:///{path}")
    assert type(app.recorder).__module__ == "eventsourcing.sqlite"
    assert path.exists()


def test_memory_store_runs_a_plan_in_process(repo: Path) -> None:
    """memory:// holds a whole run inside one process: halt, decide, complete."""
    plan_path = failing_plan(repo)
    app = RecoveryApp.open("memory://")
    plan = load_plan(plan_path)

    def runner() -> Runner:
        return Runner(
            app,
            plan,
            workspace=GitWorkspace(repo, exclude=[plan_path]),
            step_runners=default_step_runners(),
            strategy=NoopStrategy(),
            notifiers=[ConsoleNotifier()],
            plan_path=plan_path,
        )

    halted = runner().run()
    assert isinstance(halted, Halted)
    assert halted.failure.batch_id == "bad"
    assert not (repo / ".recovery" / "events.sqlite3").exists()
    app.decide(UUID(halted.run_id), "bad", "skip", operator="ann")
    done = runner().run()
    assert isinstance(done, Completed)
    assert [b.status for b in done.view.batches] == ["verified", "skipped"]


def test_recovery_store_environment_variable_selects_the_store(
    repo: Path, tmp_path: Path
) -> None:
    """RECOVERY_STORE chooses the store for run and for status alike."""
    failing_plan(repo)
    url = f"sqlite:///{tmp_path / 'elsewhere.sqlite3'}"
    env = {"RECOVERY_STORE": url}
    assert run_cli("run", "plan.json", cwd=repo, env=env).returncode == 3
    assert (tmp_path / "elsewhere.sqlite3").is_file()
    assert not (repo / ".recovery" / "events.sqlite3").exists()
    done = run_cli("status", "--json", cwd=repo, env=env)
    assert done.returncode == 0
    assert '"state": "halted"' in done.stdout


@pytest.mark.postgres
def test_whole_run_on_postgres_through_the_command_line(
    repo: Path, postgres_url: str
) -> None:
    """A run halts, is decided and completes with every event in PostgreSQL, and
    the printed commands name the store."""
    failing_plan(repo)
    halted = run_cli("run", "plan.json", "--store", postgres_url, cwd=repo)
    assert halted.returncode == 3, halted.stderr
    assert f"--store '{postgres_url}'" in halted.stderr
    assert not (repo / ".recovery" / "events.sqlite3").exists()
    status = cli_json("status", "--store", postgres_url, cwd=repo)
    assert status["state"] == "halted"
    run_id = status["run_id"]
    assert (
        run_cli(
            "decide", run_id, "bad", "skip", "--store", postgres_url, cwd=repo
        ).returncode
        == 0
    )
    assert run_cli("resume", run_id, "--store", postgres_url, cwd=repo).returncode == 0
    final = cli_json("status", run_id, "--store", postgres_url, cwd=repo)
    assert final["state"] == "completed"


@pytest.mark.postgres
def test_two_operators_deciding_at_once_on_postgres(
    repo: Path, postgres_url: str
) -> None:
    """Two operators decide the same failure at the same moment from two processes:
    exactly one decision is recorded; the other gets exit 5."""
    failing_plan(repo)
    assert (
        run_cli("run", "plan.json", "--store", postgres_url, cwd=repo).returncode == 3
    )
    run_id = cli_json("status", "--store", postgres_url, cwd=repo)["run_id"]
    cli = [sys.executable, "-m", "recovery_adapters.cli"]
    procs = [
        subprocess.Popen(
            [
                *cli,
                "decide",
                run_id,
                "bad",
                choice,
                "--operator",
                who,
                "--store",
                postgres_url,
            ],
            cwd=repo,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for choice, who in (("skip", "alice"), ("retry", "bob"))
    ]
    codes = sorted(p.wait(timeout=120) for p in procs)
    for proc in procs:
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        proc.stderr.close()
    assert codes == [0, 5]
    status = cli_json("status", run_id, "--store", postgres_url, cwd=repo)
    assert status["decision"]["operator"] in ("alice", "bob")
    app = RecoveryApp.open(postgres_url)
    decided = [
        e for e in app.history(UUID(run_id)) if type(e).__name__ == "OperatorDecided"
    ]
    assert len(decided) == 1


OPEN_AT_ONCE = """
import sys, time
from pathlib import Path
go = Path(sys.argv[2])
while not go.exists():
    time.sleep(0.001)
from recovery_adapters.stores import open_store
open_store(sys.argv[1]).close()
"""


def test_processes_opening_the_postgres_store_at_once_all_succeed(
    tmp_path: Path, postgres_url: str
) -> None:
    """Processes that open the store at the same moment race to create its
    tables (PostgreSQL then fails one with a duplicate key in its catalog); the
    loser tries again instead of failing the operator's command."""
    for round_number in range(6):
        go = tmp_path / f"go-{round_number}"
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", OPEN_AT_ONCE, postgres_url, str(go)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for _ in range(6)
        ]
        go.touch()
        outs = [proc.communicate(timeout=120) for proc in procs]
        assert [proc.returncode for proc in procs] == [0] * 6, outs
