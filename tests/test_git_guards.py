"""The git guards, through the real command line in a real repository: a batch
that moves HEAD, rewrites a branch, or changes ``.git/config`` or the hooks fails
with its own ``workspace_guard`` step and is put back; a run refuses to start in
the middle of a merge, rebase, cherry-pick or bisect, or on a detached HEAD when
it is to commit; plan ids that would be bad ref names are refused; and the
library's own git calls run no hooks."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from recovery_adapters.git import GitWorkspace
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


def children_commands() -> list[list[str]]:
    """The command lines of this process's children (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == os.getpid():
                raw = (entry / "cmdline").read_bytes()
                found.append([part.decode() for part in raw.split(b"\0") if part])
        except (OSError, IndexError, ValueError):
            continue
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_the_long_lived_git_that_reads_trees_runs_with_the_safe_settings(
    repo: Path,
) -> None:
    """Trees are read through GitPython's long-lived `git cat-file --batch`; it
    too runs with core.fsmonitor off and hooks pointed away."""
    workspace = GitWorkspace(repo)
    baseline = workspace.snapshot(run_id="r", batch_id="b", attempt=1)
    (repo / "app" / "new.py").write_text("X = 1\n")
    workspace.quarantine(run_id="r", batch_id="b", attempt=1, baseline=baseline)
    readers = [c for c in children_commands() if "cat-file" in c]
    assert readers, children_commands()
    for command in readers:
        assert "core.fsmonitor=false" in command, command
        assert f"core.hooksPath={os.devnull}" in command, command
    workspace.repo.close()
