"""Encrypted and compressed stores: events written through the real command
line with ``RECOVERY_CIPHER_KEY`` and ``?compress=zlib`` hold no plain text,
every command reads them back with the key, a missing or wrong key is a clear
error, and the hash chain still verifies; on SQLite and on PostgreSQL."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import uuid
import zlib
from pathlib import Path

import pytest

from recovery_core import CipherKeyError, RecoveryApp, StoreURLError
from recovery_core.chain import verify_chain
from recovery_core.store import parse_store_url
from support import run_cli, unit_tests_step, write_file_action, write_plan

#: Strings the run records that must not be readable in the stored bytes.
PLAN_ID = "confidential-plan-4711"
SECRET_FILE = "app/confidential_pricing.py"


def new_key() -> str:
    """A fresh AES-256 key in base64."""
    return base64.b64encode(os.urandom(32)).decode()


def secret_plan(repo: Path) -> Path:
    """One good batch writing a file whose name is secret, then a batch whose
    unit tests fail."""
    return write_plan(
        repo / "plan.json",
        {
            "plan_id": PLAN_ID,
            "batches": [
                {
                    "batch_id": "good",
                    "actions": [write_file_action("gen", SECRET_FILE, "RATE = 7\n")],
                    "validation": [{"name": "syntax_check", "kind": "syntax"}],
                },
                {
                    "batch_id": "bad",
                    "actions": [
                        write_file_action(
                            "gen",
                            "app/calc.py",
                            "def add(a: int, b: int) -> int:\n    return a * b\n",
                        )
                    ],
                    "validation": [unit_tests_step()],
                },
            ],
        },
    )


def stored_states(path: Path) -> list[bytes]:
    """The stored state of every event and snapshot in a SQLite store."""
    with sqlite3.connect(path) as db:
        tables = [
            name
            for (name,) in db.execute(
                "SELECT name FROM sqlite_master WHERE type='table'"
            )
        ]
        return [
            bytes(state)
            for table in tables
            if table.endswith("events")
            for (state,) in db.execute(f'SELECT state FROM "{table}"')  # noqa: S608
        ]


def test_sqlite_store_written_encrypted_and_compressed_through_the_cli(
    repo: Path,
) -> None:
    """``recovery run`` with a key and ``?compress=zlib`` writes a store whose
    bytes hold neither the plan id nor a file name; status, log and history
    read it with the key (found as the workspace's store, no parameter
    needed); a decision and resume write to it; without the key, or with
    another, commands exit 6 naming RECOVERY_CIPHER_KEY; a key that is not
    one exits 2."""
    secret_plan(repo)
    key = new_key()
    with_key = {"RECOVERY_CIPHER_KEY": key}
    store = repo / ".recovery" / "events.sqlite3"
    url = f"sqlite:///{store}?compress=zlib"
    halted = run_cli("run", "plan.json", "--store", url, cwd=repo, env=with_key)
    assert halted.returncode == 3, halted.stderr

    raw = b"".join(p.read_bytes() for p in store.parent.glob("events.sqlite3*"))
    assert PLAN_ID.encode() not in raw
    assert SECRET_FILE.encode() not in raw
    states = stored_states(store)
    assert len(states) >= 10
    for state in states:
        with pytest.raises(zlib.error):
            zlib.decompress(state)  # encrypted after compressing: not zlib

    status = run_cli("status", "--json", cwd=repo, env=with_key)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["state"] == "halted"
    assert json.loads(status.stdout)["plan_id"] == PLAN_ID
    log = run_cli("log", "--json", cwd=repo, env=with_key)
    assert log.returncode == 0, log.stderr
    assert [e["batch_id"] for e in json.loads(log.stdout)] == ["bad"]
    history = run_cli("history", cwd=repo, env=with_key)
    assert history.returncode == 0, history.stderr
    assert "StepFailed" in history.stdout

    for env, said in (
        ({}, "the store may be encrypted"),
        ({"RECOVERY_CIPHER_KEY": new_key()}, "not written with this cipher key"),
    ):
        refused = run_cli("status", cwd=repo, env=env)
        assert refused.returncode == 6, refused.stderr
        assert said in refused.stderr
        assert "RECOVERY_CIPHER_KEY" in refused.stderr
        assert "Traceback" not in refused.stderr
    bad_key = run_cli("status", cwd=repo, env={"RECOVERY_CIPHER_KEY": "not-a-key"})
    assert bad_key.returncode == 2
    assert "is not a key" in bad_key.stderr
    assert "not-a-key" not in bad_key.stderr

    run_id = json.loads(status.stdout)["run_id"]
    decided = run_cli("decide", run_id, "bad", "skip", cwd=repo, env=with_key)
    assert decided.returncode == 0, decided.stderr
    resumed = run_cli("resume", run_id, cwd=repo, env=with_key)
    assert resumed.returncode == 0, resumed.stderr

    app = RecoveryApp.open(url, cipher_key=key)
    view = app.view(run_id)
    assert view.state == "completed"
    assert app.check_chain(run_id) == view.head_digest
    records = app.stored_records(run_id)
    assert len(records) == view.version
    assert verify_chain(records) == view.head_digest
    raw = b"".join(p.read_bytes() for p in store.parent.glob("events.sqlite3*"))
    assert PLAN_ID.encode() not in raw
    app.close()

    # recovery verify reads the encrypted store with the key, and finds one
    # byte changed in an encrypted event (it no longer decrypts).
    verified = run_cli("verify", "--json", cwd=repo, env=with_key)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert json.loads(verified.stdout)["runs"][0]["head"] == view.head_digest
    with sqlite3.connect(store) as db:
        [(state,)] = db.execute(
            "SELECT state FROM stored_events WHERE originator_version = 3"
        )
        flipped = bytes(state[:40]) + bytes([state[40] ^ 1]) + bytes(state[41:])
        db.execute(
            "UPDATE stored_events SET state = ? WHERE originator_version = 3",
            (flipped,),
        )
    tampered = run_cli("verify", "--json", cwd=repo, env=with_key)
    assert tampered.returncode == 6
    [finding, *_] = json.loads(tampered.stdout)["runs"][0]["findings"]
    assert finding["where"].startswith("event 3 ")
    assert "not written with this cipher key" in finding["message"]


def test_compression_is_read_whatever_the_url_says(tmp_path: Path) -> None:
    """Events written with ``?compress=zlib`` are zlib in the store and read
    back by a URL without the parameter; events written before compression
    was asked for are read by a compressing URL: a store may hold both."""
    from recovery_core import parse_plan

    path = tmp_path / "events.sqlite3"
    plan = parse_plan(
        {"plan_id": PLAN_ID, "batches": [{"batch_id": "1", "validation": []}]}
    )
    plain = RecoveryApp.open(f"sqlite:///{path}")
    first = plain.start_run(plan, workspace=tmp_path)
    compressing = RecoveryApp.open(f"sqlite:///{path}?compress=zlib")
    second = compressing.start_run(plan, workspace=tmp_path)
    states = stored_states(path)
    assert sum(s.startswith(b"{") for s in states) == 1
    compressed = [zlib.decompress(s) for s in states if not s.startswith(b"{")]
    assert len(compressed) == 1
    assert PLAN_ID.encode() in compressed[0]
    for reader in (plain, compressing, RecoveryApp.open(f"sqlite:///{path}")):
        assert reader.view(first).plan_id == PLAN_ID
        assert reader.view(second).plan_id == PLAN_ID
        assert reader.check_chain(second) == reader.view(second).head_digest


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("sqlite:///x.db?compress=lz4", "compress='lz4' is not known"),
        ("sqlite:///x.db?key=abc", "unknown parameter 'key'"),
        ("postgresql://u@h/db?compress=gzip", "compress='gzip' is not known"),
    ],
)
def test_bad_compression_parameters_are_bad_urls(url: str, said: str) -> None:
    """An unknown compression or parameter is a bad store URL (exit 2)."""
    with pytest.raises(StoreURLError, match=said) as caught:
        parse_store_url(url)
    assert caught.value.exit_code == 2


def test_a_key_that_is_not_one_is_refused_before_anything_is_opened(
    tmp_path: Path,
) -> None:
    """A cipher key of the wrong size, or not base64, is ``CipherKeyError``
    (exit 2), and the key is not repeated in the message; no store is made."""
    path = tmp_path / "events.sqlite3"
    for key in ("short", base64.b64encode(b"x" * 20).decode()):
        with pytest.raises(CipherKeyError, match="16, 24 or 32") as caught:
            RecoveryApp.open(f"sqlite:///{path}", cipher_key=key)
        assert caught.value.exit_code == 2
        assert key not in str(caught.value)
    assert not path.exists()


@pytest.mark.postgres
def test_postgres_store_written_encrypted_and_compressed(
    repo: Path, postgres_url: str
) -> None:
    """On PostgreSQL too: the run's rows hold no plain text, status reads them
    with the key, exits 6 without it, and the chain verifies."""
    import psycopg

    secret_plan(repo)
    key = new_key()
    with_key = {"RECOVERY_CIPHER_KEY": key}
    url = f"{postgres_url}&compress=zlib"
    halted = run_cli("run", "plan.json", "--store", url, cwd=repo, env=with_key)
    assert halted.returncode == 3, halted.stderr
    status = run_cli("status", "--json", "--store", url, cwd=repo, env=with_key)
    assert status.returncode == 0, status.stderr
    assert PLAN_ID in status.stdout
    plain = run_cli("status", "--store", postgres_url, cwd=repo)
    assert plain.returncode == 6
    assert "RECOVERY_CIPHER_KEY" in plain.stderr

    conninfo, _, query = postgres_url.partition("?")
    schema = query.removeprefix("schema=")
    with psycopg.connect(conninfo) as db:
        tables = [
            name
            for (name,) in db.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = %s",
                (schema,),
            )
        ]
        states = [
            bytes(state)
            for table in tables
            if table.endswith("events")
            for (state,) in db.execute(f'SELECT state FROM "{schema}"."{table}"')  # noqa: S608
        ]
    assert len(states) >= 10
    assert not any(PLAN_ID.encode() in s or SECRET_FILE.encode() in s for s in states)

    app = RecoveryApp.open(url, cipher_key=key)
    run_id = uuid.UUID(app.runs()[-1].run_id)
    view = app.view(run_id)
    assert view.state == "halted"
    assert app.check_chain(run_id) == view.head_digest
    assert verify_chain(app.stored_records(run_id)) == view.head_digest
