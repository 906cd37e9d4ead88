"""The git guards, through the real command line and the workspace in real
repositories: a batch that moves HEAD, rewrites a branch, or changes
``.git/config``, ``config.worktree``, ``info/``, the hooks or a linked
worktree's ``.git`` file fails with its own ``workspace_guard`` step and is put
back; a run refuses to start in the middle of a merge, rebase, cherry-pick or
bisect, or on a detached HEAD when it is to commit; plan ids that would be bad
ref names are refused; and the library's own git commands (the long-lived ones
too) run no hooks, no fsmonitor and no filter driver a batch planted, and work
on the workspace's own work tree whatever ``core.worktree`` a batch set."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from recovery_adapters.git import GitWorkspace
from recovery_core import (
    Completed,
    RecoveryApp,
    StepContext,
    StepOutcome,
    parse_plan,
    runs_no_workspace_code,
)
from recovery_core.steps import step_runners
from support import cli_json, git, run_cli, write_file_action, write_plan

USER_EDIT = "# the user's own unstaged edit\n"


def python_action(name: str, code: str) -> dict[str, Any]:
    """An action that runs ``code`` with this interpreter in the workspace."""
    return {"name": name, "run": [sys.executable, "-c", code]}


def one_batch_plan(
    *actions: dict[str, Any], commit_strategy: str = "none"
) -> dict[str, Any]:
    """A plan of one batch that writes a file and then does ``actions``."""
    return {
        "plan_id": "guarded",
        "batches": [
            {
                "batch_id": "b1",
                "description": "does something no batch may do",
                "actions": [
                    write_file_action("generate", "app/new.py", "X = 1\n"),
                    *actions,
                ],
                "validation": [],
                "commit_strategy": commit_strategy,
            }
        ],
    }


def git_state(repo: Path) -> dict[str, Any]:
    """HEAD, the branches, the config and the hooks, as a batch must leave them."""
    hooks = repo / ".git" / "hooks"
    return {
        "head": git(repo, "symbolic-ref", "-q", "HEAD").strip(),
        "commit": git(repo, "rev-parse", "HEAD").strip(),
        "branches": git(
            repo, "for-each-ref", "--format=%(refname) %(objectname)", "refs/heads/"
        ),
        "config": (repo / ".git" / "config").read_bytes(),
        "hooks": sorted(
            (p.name, p.read_bytes()) for p in hooks.iterdir() if p.is_file()
        ),
    }


def user_files(repo: Path) -> dict[str, bytes]:
    """Every file of the working tree outside .git and .recovery (plan aside)."""
    return {
        p.relative_to(repo).as_posix(): p.read_bytes()
        for p in sorted(repo.rglob("*"))
        if p.is_file()
        and p.relative_to(repo).parts[0] not in (".git", ".recovery")
        and p.name != "plan.json"
    }


def run_guarded(repo: Path, *actions: dict[str, Any]) -> dict[str, Any]:
    """Runs a one-batch plan doing ``actions``; checks that it halted with the
    guard's failure; returns the failed batch's status."""
    write_plan(repo / "plan.json", one_batch_plan(*actions))
    done = run_cli("run", "plan.json", cwd=repo)
    assert done.returncode == 3, done.stderr
    status = cli_json("status", cwd=repo)
    (batch,) = status["batches"]
    assert batch["status"] == "failed"
    assert batch["failure"]["step"] == "build.workspace_guard"
    assert batch["failure"]["kind"] == "guard"
    return dict(batch)


@pytest.fixture
def dirty_repo(repo: Path) -> Path:
    """The test repository with a second branch and the user's unstaged edit."""
    (repo / "README.md").write_text("# app\n")
    git(repo, "add", "README.md")
    git(repo, "commit", "-q", "-m", "readme")
    git(repo, "branch", "other")
    (repo / "README.md").write_text("# app\n" + USER_EDIT)
    return repo


def assert_put_back(
    repo: Path, before: dict[str, Any], files: dict[str, bytes], index: str
) -> None:
    """HEAD, branches, config, hooks, the user's files and index as before; the
    batch's change kept under a quarantine ref."""
    assert git_state(repo) == before
    assert user_files(repo) == files
    assert git(repo, "ls-files", "-s") == index
    assert not (repo / "app" / "new.py").exists()
    refs = git(repo, "for-each-ref", "--format=%(refname)", "refs/recovery/")
    (quarantine,) = [r for r in refs.split() if r.endswith("/b1/1/quarantine")]
    assert git(repo, "show", f"{quarantine}:app/new.py") == "X = 1\n"


def test_a_batch_that_commits_fails_the_guard_and_the_branch_is_put_back(
    dirty_repo: Path,
) -> None:
    """`git commit -a` in an action moves the branch: the attempt fails with
    build.workspace_guard naming the rewritten branch, the branch points at its
    old commit again, and the user's unstaged edit (which `commit -a` swept up)
    is back in the working tree, unstaged."""
    repo = dirty_repo
    before, files = git_state(repo), user_files(repo)
    index = git(repo, "ls-files", "-s")
    batch = run_guarded(
        repo,
        {"name": "sneak", "run": ["git", "add", "-A", "--", "app"]},
        {"name": "commit", "run": ["git", "commit", "-q", "-a", "-m", "sneaky"]},
    )
    assert "branch refs/heads/main was rewritten" in batch["failure"]["error"]
    # HEAD itself still names main: only the branch moved, and it is named.
    assert "HEAD moved" not in batch["failure"]["error"]
    assert_put_back(repo, before, files, index)
    assert git(repo, "diff", "--name-only") == "README.md\n"
    log = git(repo, "log", "--format=%s", "main")
    assert "sneaky" not in log


def test_a_batch_that_changes_the_git_config_fails_and_the_config_is_put_back(
    dirty_repo: Path,
) -> None:
    """`git config` in an action changes .git/config: the guard fails the
    attempt and writes the config back byte for byte."""
    repo = dirty_repo
    before, files = git_state(repo), user_files(repo)
    index = git(repo, "ls-files", "-s")
    batch = run_guarded(
        repo,
        {"name": "configure", "run": ["git", "config", "core.pager", "evil"]},
    )
    assert "git config was changed" in batch["failure"]["error"]
    assert_put_back(repo, before, files, index)
    assert "evil" not in (repo / ".git" / "config").read_text()


@pytest.mark.parametrize("hook", ["pre-commit", "post-checkout"])
def test_a_batch_that_adds_a_hook_fails_and_the_hook_is_removed(
    dirty_repo: Path, hook: str
) -> None:
    """An action that writes an executable hook into .git/hooks fails the guard;
    the hook is gone afterwards and the sample hooks are untouched."""
    repo = dirty_repo
    before, files = git_state(repo), user_files(repo)
    index = git(repo, "ls-files", "-s")
    code = (
        "import pathlib; "
        f"p = pathlib.Path('.git/hooks/{hook}'); "
        "p.write_text('#!/bin/sh\\necho owned\\n'); p.chmod(0o755)"
    )
    batch = run_guarded(repo, python_action("install_hook", code))
    assert "hooks were changed" in batch["failure"]["error"]
    assert not (repo / ".git" / "hooks" / hook).exists()
    assert_put_back(repo, before, files, index)


def test_a_batch_that_changes_an_existing_hook_fails_and_it_is_put_back(
    dirty_repo: Path,
) -> None:
    """An action that rewrites a hook the user already had fails the guard, and
    the user's hook gets its old content back."""
    repo = dirty_repo
    hook = repo / ".git" / "hooks" / "pre-push"
    hook.write_text("#!/bin/sh\nexit 0\n")
    hook.chmod(0o755)
    before, files = git_state(repo), user_files(repo)
    index = git(repo, "ls-files", "-s")
    code = "import pathlib; pathlib.Path('.git/hooks/pre-push').write_text('evil')"
    batch = run_guarded(repo, python_action("rewrite_hook", code))
    assert "hooks were changed" in batch["failure"]["error"]
    assert hook.read_text() == "#!/bin/sh\nexit 0\n"
    assert_put_back(repo, before, files, index)


def test_a_batch_that_links_a_hook_fails_and_the_link_is_removed(
    dirty_repo: Path,
) -> None:
    """A hook installed as a symlink to a script outside .git (git follows it)
    is a hook change like any other: the guard fails the attempt and removes
    the link."""
    repo = dirty_repo
    script = repo.parent / "evil.sh"
    script.write_text("#!/bin/sh\necho owned\n")
    script.chmod(0o755)
    before, files = git_state(repo), user_files(repo)
    index = git(repo, "ls-files", "-s")
    code = f"import os; os.symlink({str(script)!r}, '.git/hooks/pre-commit')"
    batch = run_guarded(repo, python_action("link_hook", code))
    assert "hooks were changed" in batch["failure"]["error"]
    assert not (repo / ".git" / "hooks" / "pre-commit").is_symlink()
    assert_put_back(repo, before, files, index)


def test_a_batch_that_enables_a_disabled_hook_fails_and_it_is_disabled_again(
    dirty_repo: Path,
) -> None:
    """Making the user's non-executable (disabled) hook executable changes what
    git runs: the guard fails the attempt and takes the executable bit away."""
    repo = dirty_repo
    hook = repo / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\nexit 1\n")
    hook.chmod(0o644)
    before, files = git_state(repo), user_files(repo)
    index = git(repo, "ls-files", "-s")
    code = "import os; os.chmod('.git/hooks/pre-commit', 0o755)"
    batch = run_guarded(repo, python_action("enable_hook", code))
    assert "hooks were changed" in batch["failure"]["error"]
    assert stat.S_IMODE(hook.stat().st_mode) == 0o644
    assert_put_back(repo, before, files, index)


def test_a_batch_that_checks_out_another_branch_fails_and_head_is_put_back(
    dirty_repo: Path,
) -> None:
    """`git checkout` of another branch (whose files differ) moves HEAD: the
    guard fails the attempt, HEAD is on main again, and the files and index the
    checkout changed are the user's again."""
    repo = dirty_repo
    git(repo, "checkout", "-q", "other")
    (repo / "README.md").write_text("# app\n")
    (repo / "app" / "calc.py").write_text("def add(a, b):\n    return 0\n")
    (repo / "other.txt").write_text("only on other\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "other work")
    git(repo, "checkout", "-q", "main")
    (repo / "README.md").write_text("# app\n" + USER_EDIT)
    before, files = git_state(repo), user_files(repo)
    index = git(repo, "ls-files", "-s")
    batch = run_guarded(
        repo, {"name": "switch", "run": ["git", "checkout", "-q", "other"]}
    )
    assert (
        "HEAD moved from refs/heads/main to refs/heads/other"
        in (batch["failure"]["error"])
    )
    assert_put_back(repo, before, files, index)
    assert not (repo / "other.txt").exists()


@pytest.mark.parametrize(
    "command",
    [
        ["git", "branch", "-f", "other", "HEAD~1"],
        ["git", "branch", "-D", "other"],
        ["git", "update-ref", "refs/heads/other", "HEAD~1"],
    ],
    ids=["force-moved", "deleted", "update-ref"],
)
def test_a_batch_that_rewrites_another_branch_fails_and_it_is_put_back(
    dirty_repo: Path, command: list[str]
) -> None:
    """Moving or deleting a branch that HEAD is not on is also a guard failure;
    the branch points at its old commit again."""
    repo = dirty_repo
    before, files = git_state(repo), user_files(repo)
    index = git(repo, "ls-files", "-s")
    batch = run_guarded(repo, {"name": "rewrite", "run": command})
    assert (
        "branch refs/heads/other was rewritten or deleted"
        in (batch["failure"]["error"])
    )
    assert_put_back(repo, before, files, index)


# -- refusing to start --------------------------------------------------------


def assert_refused(
    repo: Path, plan: dict[str, Any], words: str, *, no_store: bool = True
) -> None:
    """`recovery run` exits 2 naming ``words`` and records nothing: no run, no
    recovery ref, the plan file as it was; with ``no_store``, not even an empty
    store or a line in .git/info/exclude."""
    plan_path = write_plan(repo / "plan.json", plan)
    plan_bytes = plan_path.read_bytes()
    exclude = repo / ".git" / "info" / "exclude"
    exclude_bytes = exclude.read_bytes() if exclude.exists() else None
    done = run_cli("run", "plan.json", cwd=repo)
    assert done.returncode == 2, done.stderr
    assert words in done.stderr
    status = run_cli("status", cwd=repo)
    assert status.returncode == 2, status.stderr
    assert "no run" in status.stderr or "no store" in status.stderr
    assert git(repo, "for-each-ref", "refs/recovery/") == ""
    assert plan_path.read_bytes() == plan_bytes
    if no_store:
        assert not (repo / ".recovery").exists()
        assert (exclude.read_bytes() if exclude.exists() else None) == exclude_bytes


def simple_plan(commit_strategy: str = "none") -> dict[str, Any]:
    """One batch that writes a file, with the given commit strategy."""
    return {
        "plan_id": "p",
        "batches": [
            {
                "batch_id": "b1",
                "actions": [write_file_action("generate", "app/new.py", "X = 1\n")],
                "validation": [{"name": "syntax_check", "kind": "syntax"}],
                "commit_strategy": commit_strategy,
            }
        ],
    }


def conflicting_branches(repo: Path) -> str:
    """Makes main and 'other' change the same line; returns other's commit."""
    git(repo, "checkout", "-q", "-b", "other")
    (repo / "app" / "calc.py").write_text("def add(a, b):\n    return 1\n")
    git(repo, "commit", "-q", "-am", "other")
    git(repo, "checkout", "-q", "main")
    (repo / "app" / "calc.py").write_text("def add(a, b):\n    return 2\n")
    git(repo, "commit", "-q", "-am", "main")
    return git(repo, "rev-parse", "other").strip()


def git_fails(repo: Path, *args: str) -> None:
    """Runs a git command that is expected to stop on a conflict."""
    import subprocess

    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, check=False)
    assert done.returncode != 0, "expected a conflict"


def test_run_is_refused_during_a_merge(repo: Path) -> None:
    """With a conflicted merge in progress, `recovery run` exits 2 and writes
    nothing."""
    conflicting_branches(repo)
    git_fails(repo, "merge", "-q", "other")
    assert (repo / ".git" / "MERGE_HEAD").exists()
    assert_refused(repo, simple_plan(), "in the middle of a merge")


def test_run_is_refused_during_a_rebase(repo: Path) -> None:
    """With a conflicted rebase in progress, `recovery run` exits 2 and writes
    nothing."""
    conflicting_branches(repo)
    git_fails(repo, "rebase", "-q", "other")
    assert (repo / ".git" / "rebase-merge").is_dir()
    assert_refused(repo, simple_plan(), "in the middle of a rebase")


def test_run_is_refused_during_a_cherry_pick(repo: Path) -> None:
    """With a conflicted cherry-pick in progress, `recovery run` exits 2 and
    writes nothing."""
    other = conflicting_branches(repo)
    git_fails(repo, "cherry-pick", other)
    assert (repo / ".git" / "CHERRY_PICK_HEAD").exists()
    assert_refused(repo, simple_plan(), "in the middle of a cherry-pick")


def test_run_is_refused_during_a_bisect(repo: Path) -> None:
    """With a bisect started, `recovery run` exits 2 and writes nothing."""
    git(repo, "bisect", "start")
    assert (repo / ".git" / "BISECT_LOG").exists()
    assert_refused(repo, simple_plan(), "in the middle of a bisect")


def test_run_is_refused_on_a_detached_head_when_batches_commit(repo: Path) -> None:
    """On a detached HEAD, a plan with a `commit` batch is refused with exit 2,
    saying why, with no run recorded and no ref made."""
    git(repo, "checkout", "-q", "--detach")
    assert_refused(repo, simple_plan("commit"), "detached HEAD", no_store=False)


def test_run_refused_on_a_detached_head_makes_no_store(repo: Path) -> None:
    """The detached-HEAD refusal writes nothing at all: no empty store and no
    .git/info/exclude line, as for the other refusals."""
    git(repo, "checkout", "-q", "--detach")
    assert_refused(repo, simple_plan("commit"), "detached HEAD")


def test_a_detached_head_is_fine_when_no_batch_commits(repo: Path) -> None:
    """On a detached HEAD, a plan whose batches do not commit runs to completion;
    HEAD stays detached at the same commit."""
    git(repo, "checkout", "-q", "--detach")
    head = git(repo, "rev-parse", "HEAD")
    write_plan(repo / "plan.json", simple_plan("none"))
    done = run_cli("run", "plan.json", cwd=repo)
    assert done.returncode == 0, done.stderr
    assert cli_json("status", cwd=repo)["state"] == "completed"
    assert git(repo, "rev-parse", "HEAD") == head
    assert (repo / "app" / "new.py").read_text() == "X = 1\n"


@pytest.mark.parametrize(
    ("where", "bad"),
    [
        ("batch_id", "a..b"),
        ("batch_id", "x.lock"),
        ("batch_id", "-delete"),
        ("plan_id", "refs/heads/main"),
        ("batch_id", "has space"),
    ],
)
def test_ids_that_would_be_bad_ref_names_are_refused(
    repo: Path, where: str, bad: str
) -> None:
    """An id that cannot be part of a git ref name (or could pass for an
    option) is refused by the plan loader: exit 2 naming the field, nothing
    written."""
    plan = simple_plan()
    if where == "batch_id":
        plan["batches"][0]["batch_id"] = bad
    else:
        plan["plan_id"] = bad
    plan_path = write_plan(repo / "plan.json", plan)
    done = run_cli("run", "plan.json", cwd=repo)
    assert done.returncode == 2, done.stderr
    assert where in done.stderr and "not a valid id" in done.stderr
    assert not (repo / ".recovery").exists()
    assert git(repo, "for-each-ref", "refs/recovery/") == ""
    assert json.loads(plan_path.read_text()) == plan


# -- hooks ------------------------------------------------------------------------


def test_the_librarys_own_commits_run_no_hooks(repo: Path) -> None:
    """With a pre-commit hook that would fail and a post-commit hook that would
    leave a marker (in .git/hooks and through core.hooksPath), a verified batch
    is still committed and neither hook ran."""
    marker = repo.parent / "hook-ran"
    hooks_dirs = [repo / ".git" / "hooks", repo.parent / "custom-hooks"]
    hooks_dirs[1].mkdir()
    for folder in hooks_dirs:
        for name, code in (("pre-commit", 1), ("post-commit", 0)):
            hook = folder / name
            hook.write_text(f"#!/bin/sh\necho {name} >> '{marker}'\nexit {code}\n")
            hook.chmod(hook.stat().st_mode | stat.S_IXUSR)
    # A plain `git commit` runs the hook: the setup works.
    git_fails(repo, "commit", "--allow-empty", "-q", "-m", "probe")
    assert marker.read_text() == "pre-commit\n"
    marker.unlink()
    git(repo, "config", "core.hooksPath", str(hooks_dirs[1]))
    head = git(repo, "rev-parse", "HEAD").strip()

    write_plan(repo / "plan.json", simple_plan("commit"))
    done = run_cli("run", "plan.json", cwd=repo)
    assert done.returncode == 0, done.stderr
    status = cli_json("status", cwd=repo)
    commit = status["batches"][0]["commit"]
    assert git(repo, "rev-parse", "HEAD").strip() == commit
    assert git(repo, "rev-parse", f"{commit}^").strip() == head
    assert git(repo, "show", "--name-only", "--format=", commit) == "app/new.py\n"
    assert not marker.exists()


# -- what a batch plants never runs ----------------------------------------------


def executable(path: Path, text: str) -> Path:
    """Writes an executable shell script."""
    path.write_text(text)
    path.chmod(0o755)
    return path


def plant(repo: Path, what: str, marker: Path) -> None:
    """Plants something git would run, each run adding a line to ``marker``:
    ``core.fsmonitor`` (run when git refreshes an index), or the
    ``reference-transaction`` and ``post-index-change`` hooks (run when a ref
    is written, as ``update-ref --stdin`` does, and when an index is)."""
    if what == "core.fsmonitor":
        script = executable(
            repo.parent / "fsmonitor.sh", f"#!/bin/sh\necho fsmonitor >> '{marker}'\n"
        )
        git(repo, "config", "core.fsmonitor", str(script))
        return
    for hook in ("reference-transaction", "post-index-change"):
        executable(
            repo / ".git" / "hooks" / hook, f"#!/bin/sh\necho {hook} >> '{marker}'\n"
        )


def unplant(repo: Path, what: str) -> None:
    """Takes away what :func:`plant` planted."""
    if what == "core.fsmonitor":
        git(repo, "config", "--unset", "core.fsmonitor")
    else:
        for hook in ("reference-transaction", "post-index-change"):
            (repo / ".git" / "hooks" / hook).unlink()


def proves_it_runs(repo: Path, what: str, marker: Path) -> None:
    """A user's own git runs what was planted: the setup works."""
    if what == "core.fsmonitor":
        git(repo, "status", "--short")
    else:
        git(repo, "update-ref", "refs/probe", "HEAD")
        git(repo, "update-ref", "-d", "refs/probe")
        git(repo, "add", "-A")
    assert marker.exists()
    marker.unlink()


@pytest.mark.parametrize("what", ["core.fsmonitor", "hooks"])
@pytest.mark.parametrize("who", ["the user", "a batch"])
def test_a_planted_fsmonitor_or_hook_never_runs_in_the_workspaces_git(
    repo: Path, what: str, who: str
) -> None:
    """A ``core.fsmonitor`` command, or ``reference-transaction`` and
    ``post-index-change`` hooks, which a user's git runs, never run in any git
    command of the workspace (snapshot, changed_files, quarantine, restore,
    commit, the long-lived ``cat-file``, ``mktree``, ``hash-object`` and
    ``update-ref`` processes among them): neither when the user's repository
    has them before the workspace starts its processes, nor when a batch plants
    them after a snapshot (then the guard reports the change and puts it
    back)."""
    marker = repo.parent / "ran"
    plant(repo, what, marker)
    proves_it_runs(repo, what, marker)
    if who == "a batch":
        unplant(repo, what)
    with GitWorkspace(repo) as workspace:
        workspace.prepare(commits=True)
        baseline = workspace.snapshot(run_id="r", batch_id="b", attempt=1)
        if who == "a batch":
            plant(repo, what, marker)
        (repo / "app" / "calc.py").write_text("def add(a, b):\n    return a - b\n")
        (repo / "app" / "new.py").write_text("X = 1\n")
        assert workspace.changed_files(baseline) == ("app/calc.py", "app/new.py")
        kept = workspace.quarantine(
            run_id="r", batch_id="b", attempt=1, baseline=baseline
        )
        assert kept.files == ("app/calc.py", "app/new.py")
        assert not (repo / "app" / "new.py").exists()
        found = workspace.check(baseline)
        assert bool(found) is (who == "a batch"), found

        baseline = workspace.snapshot(run_id="r", batch_id="b", attempt=2)
        if who == "a batch":
            plant(repo, what, marker)
        (repo / "app" / "new.py").write_text("X = 2\n")
        changed = workspace.changed_files(baseline)
        assert bool(workspace.check(baseline)) is (who == "a batch")
        if who == "a batch":
            plant(repo, what, marker)  # again, for commit to find
        committed = workspace.commit(
            baseline=baseline, files=changed, message="b: verified", trailers={}
        )
        assert committed.commit is not None, committed
        assert git(repo, "rev-parse", "HEAD").strip() == committed.commit
    assert not marker.exists(), marker.read_text()
    assert git(repo, "status", "--porcelain", "--untracked-files=no") == ""


def test_a_core_worktree_the_batch_sets_sends_no_git_command_elsewhere(
    repo: Path, tmp_path: Path
) -> None:
    """A batch that points ``core.worktree`` at another folder (a user's git
    then takes that folder for the work tree) changes nothing there: the config
    is put back before changed_files and quarantine run, which list and put
    back exactly the batch's files in the workspace itself, and the other
    folder stays empty."""
    other = tmp_path / "other"
    other.mkdir()
    config = (repo / ".git" / "config").read_bytes()
    calc = (repo / "app" / "calc.py").read_bytes()
    with GitWorkspace(repo) as workspace:
        baseline = workspace.snapshot(run_id="r", batch_id="b", attempt=1)
        (repo / "app" / "calc.py").write_text("def add(a, b):\n    return a - b\n")
        (repo / "app" / "new.py").write_text("X = 1\n")
        git(repo, "config", "core.worktree", str(other))
        assert git(repo, "rev-parse", "--show-toplevel").strip() == str(other)
        assert workspace.changed_files(baseline) == ("app/calc.py", "app/new.py")
        assert (repo / ".git" / "config").read_bytes() == config
        git(repo, "config", "core.worktree", str(other))
        kept = workspace.quarantine(
            run_id="r", batch_id="b", attempt=1, baseline=baseline
        )
        found = workspace.check(baseline)
    assert kept.files == ("app/calc.py", "app/new.py")
    assert list(other.iterdir()) == []
    assert (repo / "app" / "calc.py").read_bytes() == calc
    assert not (repo / "app" / "new.py").exists()
    assert (repo / ".git" / "config").read_bytes() == config
    assert "the repository's git config was changed" in found
    assert git(repo, "status", "--porcelain") == ""


@pytest.mark.parametrize("attributes", [".gitattributes", ".git/info/attributes"])
def test_a_filter_driver_the_batch_plants_never_runs(
    repo: Path, attributes: str
) -> None:
    """A batch that defines a filter driver (``filter.x.clean`` and ``.smudge``,
    which a user's git runs on staging and checkout) and gives every path that
    filter (in ``.gitattributes`` or ``.git/info/attributes``): none of
    changed_files, quarantine (which checks files out), or changed_files and
    commit (which hashes them as staging does) runs it, and the config is put
    back."""
    marker = repo.parent / "filter-ran"
    script = executable(
        repo.parent / "filter.sh", f"#!/bin/sh\necho ran >> '{marker}'\ncat\n"
    )
    config = (repo / ".git" / "config").read_bytes()

    def plant_filter() -> None:
        git(repo, "config", "filter.x.clean", str(script))
        git(repo, "config", "filter.x.smudge", str(script))
        target = repo / attributes
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("* filter=x\n")

    plant_filter()
    git(repo, "hash-object", "app/calc.py")  # a user's git runs it
    assert marker.exists()
    marker.unlink()
    (repo / ".git" / "config").write_bytes(config)
    (repo / attributes).unlink()

    with GitWorkspace(repo) as workspace:
        baseline = workspace.snapshot(run_id="r", batch_id="b", attempt=1)
        plant_filter()
        (repo / "app" / "calc.py").write_text("def add(a, b):\n    return a - b\n")
        batch_files = sorted({"app/calc.py", attributes} - {".git/info/attributes"})
        assert list(workspace.changed_files(baseline)) == batch_files
        kept = workspace.quarantine(
            run_id="r", batch_id="b", attempt=1, baseline=baseline
        )
        assert list(kept.files) == batch_files
        assert git(repo, "status", "--porcelain") == ""

        baseline = workspace.snapshot(run_id="r", batch_id="b", attempt=2)
        plant_filter()
        (repo / "app" / "calc.py").write_text("def add(a, b):\n    return b + a\n")
        committed = workspace.commit(
            baseline=baseline,
            files=workspace.changed_files(baseline),
            message="b: verified",
            trailers={},
        )
        assert committed.commit is not None, committed
        shown = git(repo, "show", f"{committed.commit}:app/calc.py")
        assert shown == "def add(a, b):\n    return b + a\n"
    assert not marker.exists(), marker.read_text()
    assert (repo / ".git" / "config").read_bytes() == config


# -- the guard covers info/, config.worktree and a linked worktree's .git ---------


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("info/exclude", "info/ files"),
        ("info/attributes", "info/ files"),
        ("config.worktree", "git config.worktree was changed"),
        ("config", "git config was changed"),
        ("hooks/pre-commit", "hooks were changed"),
    ],
)
def test_check_reports_and_puts_back_each_settings_file(
    repo: Path, path: str, words: str
) -> None:
    """A batch that writes ``.git/info/exclude``, ``.git/info/attributes``,
    ``.git/config.worktree``, ``.git/config`` or a hook is reported by check()
    (once), and the file is back as it was byte for byte (gone where it was
    not there)."""
    target = repo / ".git" / path
    before = target.read_bytes() if target.exists() else None
    with GitWorkspace(repo) as workspace:
        baseline = workspace.snapshot(run_id="r", batch_id="b", attempt=1)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"[core]\n\tpager = evil\n*.py\n")
        (found,) = workspace.check(baseline)
        assert words in found
        assert (target.read_bytes() if target.exists() else None) == before
        assert workspace.check(baseline) == ()


@pytest.mark.parametrize(
    "where",
    ["global", "xdg config", "xdg ignore", "include not there yet", "excludes file"],
)
def test_check_reports_and_puts_back_the_users_settings_files(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """The files outside the repository that git reads settings and ignore
    rules from are guarded as ``.git/config`` is: the global settings, those
    under ``$XDG_CONFIG_HOME/git``, a file the global settings include (one
    not there yet too) and the ``core.excludesFile`` they name. A batch that
    writes one (here: rules ignoring the file it adds, so that no quarantine
    would see it) is reported by check(), and the file is put back byte for
    byte, or removed where it was not there; the batch's new file is then a
    change like any other."""
    xdg = tmp_path / "xdg"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    global_config = Path(os.environ["GIT_CONFIG_GLOBAL"])
    global_config.write_text(
        "[include]\n\tpath = extra.gitconfig\n[core]\n\texcludesFile = ~/ign\n"
    )
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    target = {
        "global": global_config,
        "xdg config": xdg / "git" / "config",
        "xdg ignore": xdg / "git" / "ignore",
        "include not there yet": global_config.parent / "extra.gitconfig",
        "excludes file": tmp_path / "home" / "ign",
    }[where]
    before = target.read_bytes() if target.exists() else None
    with GitWorkspace(repo) as workspace:
        baseline = workspace.snapshot(run_id="r", batch_id="b", attempt=1)
        (repo / "app" / "sneaky.py").write_text("X = 1\n")
        target.parent.mkdir(parents=True, exist_ok=True)
        rules = "[core]\n\texcludesFile = ~/ign\n" if where != "excludes file" else ""
        target.write_text(rules + "sneaky.py\n")
        (found,) = workspace.check(baseline)
        assert f"{target} (outside the repository) was changed" in found
        assert (target.read_bytes() if target.exists() else None) == before
        assert workspace.check(baseline) == ()
        assert workspace.changed_files(baseline) == ("app/sneaky.py",)


def test_a_batch_that_rewrites_a_linked_worktrees_git_file_is_put_back(
    repo: Path, tmp_path: Path
) -> None:
    """In a linked worktree, a batch that points its ``.git`` file at another
    repository has it put back before changed_files runs: the changes are the
    batch's in this worktree, nothing is written to the other repository, and
    check() names the ``.git`` file."""
    linked = tmp_path / "linked"
    git(repo, "worktree", "add", "-q", "-b", "side", str(linked))
    decoy = tmp_path / "decoy"
    decoy.mkdir()
    git(decoy, "init", "-q")
    pointer = (linked / ".git").read_bytes()
    with GitWorkspace(linked) as workspace:
        baseline = workspace.snapshot(run_id="r", batch_id="b", attempt=1)
        (linked / "app" / "new.py").write_text("X = 1\n")
        (linked / ".git").write_text(f"gitdir: {decoy / '.git'}\n")
        assert workspace.changed_files(baseline) == ("app/new.py",)
        assert (linked / ".git").read_bytes() == pointer
        (linked / ".git").write_text(f"gitdir: {decoy / '.git'}\n")
        kept = workspace.quarantine(
            run_id="r", batch_id="b", attempt=1, baseline=baseline
        )
        found = workspace.check(baseline)
    assert kept.files == ("app/new.py",)
    assert (linked / ".git").read_bytes() == pointer
    assert not (linked / "app" / "new.py").exists()
    assert "the work tree's .git file was changed" in found
    assert git(decoy, "for-each-ref") == ""
    assert git(repo, "show", f"{kept.ref}:app/new.py") == "X = 1\n"


def test_quarantine_puts_a_moved_branch_back_before_it_keeps_the_change(
    dirty_repo: Path,
) -> None:
    """A batch that commits (moving the branch) and is quarantined without a
    check() first: the branch is back at its commit, the user's unstaged edit
    is back unstaged, the batch's file is kept under the quarantine ref (on
    the baseline) and removed, and check() then names the rewritten branch."""
    repo = dirty_repo
    before, files = git_state(repo), user_files(repo)
    index = git(repo, "ls-files", "-s")
    with GitWorkspace(repo) as workspace:
        baseline = workspace.snapshot(run_id="r", batch_id="b1", attempt=1)
        (repo / "app" / "new.py").write_text("X = 1\n")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "sneaky")
        kept = workspace.quarantine(
            run_id="r", batch_id="b1", attempt=1, baseline=baseline
        )
        found = workspace.check(baseline)
    assert kept.files == ("app/new.py",)
    assert_put_back(repo, before, files, index)
    assert git(repo, "rev-parse", f"{kept.commit}^").strip() == baseline
    assert "branch refs/heads/main was rewritten or deleted" in found
    assert git(repo, "diff", "--name-only") == "README.md\n"


def test_a_validation_step_that_commits_fails_the_guard_after_validation(
    repo: Path,
) -> None:
    """A validation step that may run the workspace's code (a command) is
    followed by a guard check of its own: one that commits fails with
    post_build_validation.workspace_guard, and the branch is put back."""
    before = git(repo, "rev-parse", "HEAD").strip()
    commits = "git add -A && git commit -q -m sneaky"
    plan = simple_plan("commit")
    plan["batches"][0]["validation"] = [
        {"name": "sneaky", "kind": "command", "run": ["sh", "-c", commits]}
    ]
    write_plan(repo / "plan.json", plan)
    done = run_cli("run", "plan.json", cwd=repo)
    assert done.returncode == 3, done.stderr
    (batch,) = cli_json("status", cwd=repo)["batches"]
    assert batch["failure"]["step"] == "post_build_validation.workspace_guard"
    assert "branch refs/heads/main was rewritten" in batch["failure"]["error"]
    assert git(repo, "rev-parse", "HEAD").strip() == before


class _CountedChecks(GitWorkspace):
    """A git workspace that counts its guard checks."""

    checks = 0

    def check(self, baseline: str | None) -> tuple[str, ...]:
        self.checks += 1
        return super().check(baseline)


@pytest.mark.parametrize(("marked", "checks"), [(True, 1), (False, 2)])
def test_steps_marked_as_running_no_workspace_code_are_not_checked_again(
    repo: Path, marked: bool, checks: int
) -> None:
    """A batch whose validation steps are all marked runs_no_workspace_code
    (as the built-in syntax step is) gets one guard check, after the build; an
    unmarked step gets a check after validation too. Either way the batch is
    verified and committed."""

    def reads(step: object, context: StepContext) -> StepOutcome:
        return StepOutcome(passed=True, duration_s=0.0)

    runners = {**step_runners(), "reads": reads}
    if marked:
        runners["reads"] = runs_no_workspace_code(reads)
    plan = simple_plan("commit")
    plan["batches"][0]["validation"] = [
        {"name": "syntax_check", "kind": "syntax"},
        {"name": "reads", "kind": "reads"},
    ]
    app = RecoveryApp.open("memory://")
    workspace = _CountedChecks(repo)
    with workspace:
        runner = app.runner(
            parse_plan(plan, step_kinds=runners),
            workspace=workspace,
            step_runners=runners,
        )
        outcome = runner.run()
        assert isinstance(outcome, Completed)
        assert workspace.checks == checks
    assert git(repo, "show", "HEAD:app/new.py") == "X = 1\n"
