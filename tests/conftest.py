"""Shared fixtures: real git repositories in temporary folders and the real
stores (SQLite files, PostgreSQL)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from support import GIT_IDENTITY, make_repo

#: The example plugin's own tests run in the virtual environment it is
#: installed into (tests/test_plugin_kit.py), where it can be imported.
collect_ignore = ["plugins"]


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every test gets a git identity, no global git config and no inherited store."""
    for key, value in GIT_IDENTITY.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "gitconfig-global"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.delenv("RECOVERY_STORE", raising=False)
    monkeypatch.setenv("RECOVERY_OPERATOR", "test-operator")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository with a tiny app and its unittest tests, one commit."""
    return make_repo(tmp_path / "work")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """The PostgreSQL server for tests, with a fresh schema per test.

    Skipped when ``RECOVERY_TEST_POSTGRES_URL`` is unset, unless
    ``RECOVERY_REQUIRE_POSTGRES=1`` (as in CI), where a missing server fails.
    """
    base = os.environ.get("RECOVERY_TEST_POSTGRES_URL")
    required = os.environ.get("RECOVERY_REQUIRE_POSTGRES") == "1"
    if not base:
        if required:
            pytest.fail(
                "RECOVERY_REQUIRE_POSTGRES=1 but RECOVERY_TEST_POSTGRES_URL is unset"
            )
        pytest.skip("RECOVERY_TEST_POSTGRES_URL is not set")
    import psycopg

    schema = f"recovery_test_{uuid.uuid4().hex[:12]}"
    conninfo = base.split("?", 1)[0]
    try:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
    except psycopg.OperationalError as exc:
        if required:
            pytest.fail(f"PostgreSQL at {conninfo} is required but unreachable: {exc}")
        pytest.skip(f"PostgreSQL unreachable: {exc}")
    try:
        yield f"{conninfo}?schema={schema}"
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
