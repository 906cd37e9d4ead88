"""Two operators deciding the same failure at the same moment, 50 times over:
exactly one decision is recorded each time, and the other operator is told
(exit 5, "already decided"). Two real ``recovery decide`` processes race on a
real SQLite file for every failure of a batch that fails 50 times."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from uuid import UUID

import pytest

from recovery_core import RecoveryApp
from recovery_core.run import Run
from support import git, python_step, run_cli, write_file_action, write_plan
from test_crash_safety import KILLER
from test_run_rules import fail, make_plan

ROUNDS = 50

#: One operator: waits for ``go-N`` before each round, then decides at once.
OPERATOR = r"""
import subprocess, sys, time
from pathlib import Path
folder, name, url, run_id, rounds = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
cli = [sys.executable, "-m", "recovery_adapters.cli"]
for n in range(1, rounds + 1):
    deadline = time.monotonic() + 120  # the test stopped: so does this
    while not (folder / f"go-{n}").exists():
        if time.monotonic() > deadline:
            sys.exit(f"no go-{n}")
        time.sleep(0.002)
    done = subprocess.run(
        [*cli, "decide", run_id, "b1", "retry", "--operator", name, "--store", url],
        capture_output=True, text=True,
    )
    (folder / f"done-{n}-{name}").write_text(f"{done.returncode}\n{done.stderr}")
"""


def test_fifty_races_of_two_operators_record_one_decision_each(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/events.sqlite3"
    app = RecoveryApp.open(url)
    run_id = app.start_run(make_plan(("b1",)), workspace=tmp_path)
    sync = tmp_path / "sync"
    sync.mkdir()
    operators = [
        subprocess.Popen(
            [sys.executable, "-c", OPERATOR, str(sync), name, url, str(run_id), "50"],
            cwd=tmp_path,
        )
        for name in ("alice", "bob")
    ]
    try:
        for n in range(1, ROUNDS + 1):
            assert fail(app, run_id, "b1") == n  # retried: attempt n fails
            (sync / f"go-{n}").write_text("")
            results = [sync / f"done-{n}-{name}" for name in ("alice", "bob")]
            for result in results:
                _wait_for(result, operators)
            codes = sorted(int(r.read_text().split("\n", 1)[0]) for r in results)
            assert codes == [0, 5], [r.read_text() for r in results]
            loser = next(r for r in results if r.read_text().startswith("5"))
            said = loser.read_text()  # lost the race to load, or to save
            assert "already decided: retry by" in said or "wrote first" in said
            decided = _decisions(app, run_id, n)
            assert len(decided) == 1, decided
    finally:
        for operator in operators:
            if operator.poll() is None and not (sync / f"done-{ROUNDS}-bob").exists():
                operator.kill()
            operator.wait(timeout=120)
    every = [e for e in app.history(run_id) if isinstance(e, Run.OperatorDecided)]
    assert [e.attempt for e in every] == list(range(1, ROUNDS + 1))


def _decisions(app: RecoveryApp, run_id: UUID, attempt: int) -> list[str]:
    return [
        e.operator
        for e in app.history(run_id)
        if isinstance(e, Run.OperatorDecided) and e.attempt == attempt
    ]


def _wait_for(path: Path, operators: list[subprocess.Popen[bytes]]) -> None:
    import time

    deadline = time.monotonic() + 120
    while not path.exists() or not path.read_text():
        assert any(p.poll() is None for p in operators), f"no {path.name}"
        assert time.monotonic() < deadline, f"no {path.name}"
        time.sleep(0.005)


# Put first on a ``recovery`` process's PYTHONPATH: right before the save that
# would record the topic OPERATOR_BEFORE names, the operator's ``recovery
# decide`` (the command in OPERATOR_DECIDES, JSON) runs to its end, so that
# the decision is saved between this process's read of the run and its save.
OPERATOR_FIRST = """
import json, os, subprocess, sys

_topic = os.environ.pop("OPERATOR_BEFORE", "")
_decide = json.loads(os.environ.pop("OPERATOR_DECIDES", "[]"))
os.environ.pop("PYTHONPATH", None)
if _topic:
    from recovery_core.application import RecoveryApp
    _save = RecoveryApp.save

    def save(self, *objs, **kwargs):
        topics = [type(e).TOPIC for o in objs for e in getattr(o, "pending_events", ())]
        if _topic in topics and _decide:
            done = subprocess.run([sys.executable, "-m", "recovery_adapters.cli", *_decide])
            assert done.returncode == 0, "the operator's decide failed"
            _decide.clear()
        return _save(self, *objs, **kwargs)

    RecoveryApp.save = save
"""


@pytest.mark.parametrize("topic", ["RunnerClaimed", "OperatorNotified"])
def test_a_runner_goes_on_when_the_operator_decides_between_its_read_and_save(
    repo: Path, tmp_path: Path, topic: str
) -> None:
    """A runner whose write (its claim on a run a killed runner left halted, or
    the record that it notified the operator) loses the race to the operator's
    decision does not stop with exit 5: its write is checked again on the run
    as the operator left it and recorded, and the decision is carried out."""
    kit = tmp_path / "kit"
    kit.mkdir()
    count = tmp_path / "checks"  # the check fails the first time only
    check = (
        f"import pathlib, sys; p = pathlib.Path({str(count)!r}); "
        "n = len(p.read_text()) if p.exists() else 0; p.write_text('x' * (n + 1)); "
        "sys.exit(1 if n == 0 else 0)"
    )
    plan = write_plan(
        repo / "plan.json",
        {
            "plan_id": "race",
            "batches": [
                {
                    "batch_id": "one",
                    "actions": [write_file_action("write", "app/one.py", "ONE = 1\n")],
                    "validation": [python_step("check", check)],
                    "commit_strategy": "commit",
                }
            ],
        },
    )
    decide = ["decide", "latest", "one", "retry", "--operator", "ada"]
    if topic == "RunnerClaimed":  # a killed runner left the run halted
        (kit / "sitecustomize.py").write_text(KILLER)
        env = {"PYTHONPATH": str(kit), "KILL_AFTER_EVENT": "recovery:OperatorNotified"}
        killed = run_cli("run", plan, cwd=repo, env=env)
        assert killed.returncode == -signal.SIGKILL, killed.stderr
    (kit / "sitecustomize.py").write_text(OPERATOR_FIRST)
    env = {
        "PYTHONPATH": str(kit),
        "OPERATOR_BEFORE": f"recovery:{topic}",
        "OPERATOR_DECIDES": json.dumps(decide),
    }
    done = run_cli("run", plan, cwd=repo, env=env)
    assert done.returncode == 0, done.stderr
    app = RecoveryApp.open(f"sqlite:///{repo / '.recovery' / 'events.sqlite3'}")
    events = [type(e).TOPIC for e in app.history(app.runs()[-1].run_id)]
    assert events.count("recovery:OperatorDecided") == 1
    assert events[-1] == "recovery:RunCompleted"
    decided = events.index("recovery:OperatorDecided")
    assert events.index(f"recovery:{topic}", decided) == decided + 1
    assert git(repo, "show", "HEAD:app/one.py") == "ONE = 1\n"
