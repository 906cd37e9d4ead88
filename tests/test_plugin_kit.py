"""A plugin package, installed as an integrator would: the example plugin
(tests/plugins/recovery_example_plugin, a strategy and a notifier kind
declared as entry points) and recovery-core itself are installed with pip
into a new virtual environment. There, ``recovery strategies`` finds the
plugin's strategy by its entry point, the plugin's own conformance tests pass
under pytest and unittest, and a real ``recovery run`` in a git repository
halts with the plugin's strategy answering (its package and version in the
events) and its notifier delivering; ``decide recover`` then applies the
strategy's fix and the run completes.

The new environment gets recovery-core's dependencies (and pytest) from this
one's site-packages, through a ``.pth`` file, so that nothing but the two
packages is installed (``--no-deps``); pip builds them from copies of their
source trees."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from importlib.metadata import version
from pathlib import Path
from typing import Any, Final

import attrs
import pytest

from recovery_core import RecoveryApp
from recovery_core.run import Run
from support import APP_CALC, BUGGY_CALC, make_repo, unit_tests_step, write_plan

PROJECT: Final = Path(__file__).resolve().parent.parent
PLUGIN: Final = PROJECT / "tests" / "plugins" / "recovery_example_plugin"
IGNORED: Final = shutil.ignore_patterns(
    ".venv", ".git", "__pycache__", "*.egg-info", ".mypy_cache", ".ruff_cache"
)


@attrs.frozen
class PluginEnv:
    """A virtual environment with recovery-core and the example plugin
    installed; ``plugin`` is the copy of the plugin's source it was built
    from."""

    root: Path
    plugin: Path

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    def env(self) -> dict[str, str]:
        """This process's environment, with the virtual environment first on
        PATH and nothing that would point Python elsewhere."""
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
            and not k.startswith("RECOVERY_")
        }
        return {**env, "PATH": f"{self.bin}{os.pathsep}{env.get('PATH', '')}"}

    def run(
        self, program: str, *args: str | os.PathLike[str], cwd: Path
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin / program), *map(str, args)],
            cwd=cwd,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory: pytest.TempPathFactory) -> PluginEnv:
    """The virtual environment, made once for the module."""
    root = tmp_path_factory.mktemp("plugin-kit")
    source = root / "recovery-core"
    plugin = root / "recovery-example-plugin"
    shutil.copytree(PROJECT, source, ignore=IGNORED)
    shutil.copytree(PLUGIN, plugin, ignore=IGNORED)
    env_dir = root / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "-q",
            "--no-deps",
            str(source),
            str(plugin),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0 and "No matching distribution" in done.stderr:
        pytest.skip(
            f"the package registry cannot serve the build backend: {done.stderr}"
        )
    assert done.returncode == 0, done.stderr
    # The dependencies come from this environment's site-packages: a plain
    # path line, so that its .pth files (this checkout's editable install)
    # are not read there.
    site = subprocess.run(
        [
            str(python),
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['purelib'])",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    ours = sysconfig.get_paths()["purelib"]
    (Path(site) / "recovery_dependencies.pth").write_text(ours + "\n")
    return PluginEnv(env_dir, plugin)


def test_recovery_core_and_the_plugin_are_installed_there(
    plugin_env: PluginEnv, tmp_path: Path
) -> None:
    """recovery_core and the plugin are imported from the new environment's
    site-packages (not this checkout), and both packages are installed at
    their versions."""
    code = (
        "import json, recovery_core, recovery_example_plugin; "
        "from importlib.metadata import version; "
        "print(json.dumps([recovery_core.__file__, recovery_example_plugin.__file__,"
        " version('recovery-core'), version('recovery-example-plugin')]))"
    )
    done = plugin_env.run("python", "-c", code, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    core, plugin, core_version, plugin_version = json.loads(done.stdout)
    assert Path(core).is_relative_to(plugin_env.root), core
    assert Path(plugin).is_relative_to(plugin_env.root), plugin
    assert (core_version, plugin_version) == (version("recovery-core"), "1.0.0")


def test_the_strategy_is_discovered_by_its_entry_point(
    plugin_env: PluginEnv, tmp_path: Path
) -> None:
    """``recovery strategies`` lists ``example`` with the package that
    declares it and its version, beside the built-in ones."""
    done = plugin_env.run("recovery", "strategies", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    listed = {s["name"]: s for s in json.loads(done.stdout)}
    assert listed["example"] == {
        "name": "example",
        "source": "recovery-example-plugin",
        "package": "recovery-example-plugin",
        "version": "1.0.0",
    }
    assert {"manual-git", "noop"} <= listed.keys()
    table = plugin_env.run("recovery", "strategies", cwd=tmp_path)
    (row,) = [line for line in table.stdout.splitlines() if line.startswith("example")]
    assert row.split() == ["example", "recovery-example-plugin", "1.0.0"]


def test_the_plugin_passes_the_conformance_kit(
    plugin_env: PluginEnv, tmp_path: Path
) -> None:
    """The plugin's own conformance tests (recovery_core.testing's kit,
    subclassed) pass in the environment it is installed in, under pytest and
    under unittest; none is skipped but the quarantine check (the strategy
    keeps none)."""
    tests = plugin_env.plugin / "tests"
    done = plugin_env.run(
        "python",
        "-m",
        "pytest",
        tests,
        "-q",
        "-p",
        "no:cacheprovider",
        "-rs",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert " passed" in done.stdout and "failed" not in done.stdout, done.stdout
    skipped = [line for line in done.stdout.splitlines() if line.startswith("SKIPPED")]
    assert len(skipped) == 1 and "keeps no quarantine" in skipped[0], done.stdout
    done = plugin_env.run(
        "python", "-m", "unittest", "discover", "-s", tests, "-t", tests, cwd=tmp_path
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "OK (skipped=1)" in done.stderr, done.stderr


def attempted(store: Path, run_id: str) -> list[Any]:
    """The run's RecoveryAttempted and OperatorNotified events, read from the
    SQLite store the run wrote."""
    app = RecoveryApp.open(f"sqlite:///{store}", create=False)
    try:
        return [
            e
            for e in app.history(run_id)
            if isinstance(e, Run.RecoveryAttempted | Run.OperatorNotified)
        ]
    finally:
        app.close()


def test_a_real_run_with_the_plugin(plugin_env: PluginEnv, tmp_path: Path) -> None:
    """``recovery run --strategy example --notify example:PATH`` in a git
    repository halts on a failing batch: the plugin's strategy answered (its
    name, package and version in the event and in ``status --json``), its
    notifier delivered a line to the file (recorded as delivered); deciding
    ``recover`` and resuming puts the batch's change back through the
    strategy, and the run completes."""
    repo = make_repo(tmp_path / "work")
    write = "import pathlib, sys; pathlib.Path(sys.argv[1]).write_text(sys.argv[2])"
    plan = write_plan(
        tmp_path / "plan.json",
        {
            "plan_id": "plugged",
            "batches": [
                {
                    "batch_id": "1",
                    "actions": [
                        {
                            "name": "generate",
                            "run": [
                                sys.executable,
                                "-c",
                                write,
                                "app/calc.py",
                                BUGGY_CALC,
                            ],
                        }
                    ],
                    "validation": [unit_tests_step()],
                }
            ],
        },
    )
    inbox = tmp_path / "halts.txt"
    done = plugin_env.run(
        "recovery",
        "run",
        plan,
        "--strategy",
        "example",
        "--notify",
        f"example:{inbox}",
        "--json",
        cwd=repo,
    )
    assert done.returncode == 3, done.stdout + done.stderr
    run_id = json.loads(done.stdout)["run_id"]
    status = json.loads(plugin_env.run("recovery", "status", "--json", cwd=repo).stdout)
    assert status["state"] == "halted"
    assert (
        status["strategy"],
        status["strategy_package"],
        status["strategy_version"],
    ) == ("example", "recovery-example-plugin", "1.0.0")
    answered, notified = attempted(repo / ".recovery" / "events.sqlite3", run_id)
    assert (
        answered.strategy,
        answered.strategy_package,
        answered.strategy_version,
    ) == (
        "example",
        "recovery-example-plugin",
        "1.0.0",
    )
    assert answered.outcome["proposal"] is True
    assert answered.outcome["details"]["files"] == ["app/calc.py"]
    assert (notified.channel, notified.delivered) == (f"example:{inbox}", True)
    (line,) = inbox.read_text().splitlines()
    assert line.startswith(
        f"{run_id} 1 1 example: post_build_validation.unit_tests failed"
    )
    assert (repo / "app" / "calc.py").read_text() == BUGGY_CALC  # left for the fix

    decided = plugin_env.run("recovery", "decide", "latest", "1", "recover", cwd=repo)
    assert decided.returncode == 0, decided.stderr
    resumed = plugin_env.run(
        "recovery", "resume", "latest", "--strategy", "example", "--json", cwd=repo
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert json.loads(resumed.stdout)["state"] == "completed"
    assert (repo / "app" / "calc.py").read_text() == APP_CALC
