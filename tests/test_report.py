"""``recovery report RUN --html FILE`` through the real command: one
self-contained page that headless Chromium renders with no console error and
no request but the page itself, showing the timeline, each failure with its
step, component, error, traceback and quarantined diff, each decision with
who took it and why, and the recovery proposals; untrusted failure output
escaped; written atomically; a gone workspace or ref said, not fatal."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from browser import opened, visible
from recovery_adapters.report import render_html
from recovery_core import RecoveryApp
from recovery_core.run import Run
from support import (
    git,
    python_step,
    run_cli,
    unit_tests_step,
    write_file_action,
    write_plan,
)

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "agents"
ROOT = Path(__file__).resolve().parents[1]

#: b2's action: a syntax error on attempt 1, a wrong double() on attempt 2.
FLAKY_GENERATOR = (
    "import os, pathlib; a = int(os.environ['RECOVERY_ATTEMPT']); "
    "pathlib.Path('app/extra.py').write_text("
    "'def double(x)\\n    return 2 * x\\n' if a == 1 "
    "else 'def double(x):\\n    return 3 * x\\n')"
)
DOUBLE_TEST = (
    "from app.extra import double; assert double(2) == 4, 'double(2) is not 4'"
)
SYNTAX_ERROR = "SyntaxError: Expected `:`, found newline"

#: Failure output that would run script and fetch things, were it not escaped.
HOSTILE = (
    '<script>document.title="pwned";console.error("script ran")</script>'
    '<img src="http://127.0.0.1:9/x.png" onerror="console.error(1)">'
)


def cli_ok(repo: Path, *args: str | Path, code: int = 0) -> str:
    done = run_cli(*args, cwd=repo)
    assert done.returncode == code, done.stdout + done.stderr
    return done.stdout


def failed_retried_skipped(repo: Path) -> None:
    """A completed run: b1 verified; b2 fails on a syntax error, alice
    retries it, it fails its test, bob skips it; b3 verified."""
    write_plan(
        repo / "plan.json",
        {
            "plan_id": "report-plan",
            "batches": [
                {
                    "batch_id": "b1",
                    "actions": [write_file_action("gen", "app/more.py", "X = 1\n")],
                    "validation": [
                        {"name": "syntax_check", "kind": "syntax"},
                        unit_tests_step(),
                    ],
                },
                {
                    "batch_id": "b2",
                    "component": "app/extra.py",
                    "actions": [
                        {"name": "gen", "run": [sys.executable, "-c", FLAKY_GENERATOR]}
                    ],
                    "validation": [
                        {"name": "syntax_check", "kind": "syntax"},
                        python_step("double_test", DOUBLE_TEST),
                    ],
                },
                {
                    "batch_id": "b3",
                    "actions": [],
                    "validation": [{"name": "syntax_check", "kind": "syntax"}],
                },
            ],
        },
    )
    cli_ok(repo, "run", "plan.json", code=3)
    cli_ok(
        repo,
        *("decide", "latest", "b2", "retry", "--operator", "alice"),
        *("--reason", "the generator was fixed"),
    )
    cli_ok(repo, "resume", "latest", code=3)
    cli_ok(
        repo,
        *("decide", "latest", "b2", "skip", "--operator", "bob"),
        *("--reason", "not needed for this release"),
    )
    cli_ok(repo, "resume", "latest")


def report(repo: Path, target: Path, *args: str) -> dict[str, Any]:
    """``recovery report latest --html TARGET --json``, decoded."""
    said: dict[str, Any] = json.loads(
        cli_ok(repo, "report", "latest", "--html", target, "--json", *args)
    )
    return said


def test_report_renders_in_chromium_and_shows_the_failed_batch(
    repo: Path, tmp_path: Path
) -> None:
    """The page of a run with two failures and two decisions renders in
    headless Chromium with no console or script error and no request but its
    own file; the failed batch, its step, component, error, traceback and
    quarantined diff, and alice's and bob's decisions with their reasons, are
    visible."""
    failed_retried_skipped(repo)
    target = tmp_path / "out" / "report.html"
    target.parent.mkdir()
    said = report(repo, target)
    run_id = json.loads(cli_ok(repo, "status", "--json"))["run_id"]
    assert said == {
        "path": str(target.resolve()),
        "bytes": target.stat().st_size,
        "run_id": run_id,
    }
    page_text = target.read_text(encoding="utf-8")
    assert "<script" not in page_text.lower()
    assert "http://" not in page_text and "https://" not in page_text
    assert "refs/recovery/" in page_text and "/b2/1/quarantine" in page_text
    assert '<span class="d-add">+def double(x)</span>' in page_text

    shot = tmp_path / "report.png"
    with opened(target, width=1200, height=1500) as (page, log):
        shown = visible(
            page,
            [
                "Batch b2, attempt 1",
                "Batch b2, attempt 2",
                "post_build_validation.syntax_check",
                "app/extra.py:1",
                SYNTAX_ERROR,
                "AssertionError: double(2) is not 4",
                "the generator was fixed",
                "not needed for this release",
                "Quarantined diff (1 file)",
                "+def double(x)",
            ],
        )
        traceback = page.locator("#failure-2 details pre").first.inner_text()
        decisions = page.locator("#decisions tbody tr").all_inner_texts()
        statuses = page.locator("#timeline .badge").all_inner_texts()
        page.screenshot(path=str(shot))
    assert log.errors == []
    assert log.requests == [target.resolve().as_uri()]
    assert shown == dict.fromkeys(shown, True)
    assert "Traceback (most recent call last)" in traceback
    assert len(decisions) == 2
    assert "retry" in decisions[0] and "alice" in decisions[0]
    assert "skip" in decisions[1] and "bob" in decisions[1]
    # The legend, then each batch's status and its attempts' statuses.
    assert statuses[5:] == [
        "verified",
        "verified",
        "skipped",
        "failed",
        "failed",
        "verified",
        "verified",
    ]
    assert shot.read_bytes().startswith(b"\x89PNG")
    wanted = os.environ.get("RECOVERY_REPORT_SCREENSHOT")
    if wanted:  # how docs/images/report.png is made
        shutil.copyfile(shot, wanted)


def test_a_planted_console_error_script_error_and_request_are_caught(
    tmp_path: Path,
) -> None:
    """The browser check is not vacuous: a page with a broken inline script,
    a console error and an image from the network shows all three."""
    page_file = tmp_path / "broken.html"
    page_file.write_text(
        "<!DOCTYPE html><html><body><p>planted</p>"
        "<script>console.error('planted error'); no_such_function();</script>"
        '<img src="http://127.0.0.1:9/planted.png"></body></html>',
        encoding="utf-8",
    )
    with opened(page_file) as (page, log):
        assert visible(page, ["planted"]) == {"planted": True}
    assert "planted error" in log.console_errors
    assert any("no_such_function" in e for e in log.page_errors)
    assert "http://127.0.0.1:9/planted.png" in log.requests


def test_failure_markup_is_escaped_and_nothing_runs(repo: Path, tmp_path: Path) -> None:
    """A failure whose output and change hold a script and an image tag shows
    them as text: the page has no script element, Chromium runs nothing,
    fetches nothing and logs no error (not even a refused script), and the
    title is the report's own. The halted run says where it halted."""
    check = f"import sys; sys.exit({HOSTILE!r})"
    write_plan(
        repo / "plan.json",
        {
            "plan_id": "hostile",
            "batches": [
                {
                    "batch_id": "evil",
                    "actions": [
                        write_file_action("gen", "app/page.html", HOSTILE + "\n")
                    ],
                    "validation": [python_step("check", check)],
                }
            ],
        },
    )
    cli_ok(repo, "run", "plan.json", code=3)
    target = tmp_path / "report.html"
    report(repo, target)
    text = target.read_text(encoding="utf-8")
    assert "<script" not in text.lower() and "<img" not in text.lower()
    assert "&lt;script&gt;document.title=&quot;pwned&quot;" in text
    assert '<span class="d-add">+&lt;script&gt;' in text  # in the diff too
    with opened(target) as (page, log):
        title = page.title()
        shown = visible(page, ['<script>document.title="pwned"', "Halted at"])
    assert log.errors == []
    assert log.requests == [target.resolve().as_uri()]
    assert title.startswith("Run ") and "pwned" not in title
    assert shown == dict.fromkeys(shown, True)

    # The page from Python, as a host makes it: without the diffs, it says so.
    app = RecoveryApp.open(f"sqlite:///{repo / '.recovery' / 'events.sqlite3'}")
    run_id = app.resolve("latest")
    made = render_html(app.view(run_id), app.history(run_id))
    assert "The quarantined diff cannot be shown: it was not read." in made
    assert "&lt;script&gt;document.title" in made and "<script" not in made


def test_proposals_show_the_analysis_patch_and_prevalidation(
    repo: Path, tmp_path: Path
) -> None:
    """With the architect-agent strategy and the example agent, the page's
    proposals show the agent's analysis, the patch digest and files, the
    checks, the pre-validation that passed in a sandbox, and the patch; the
    recover decision is there with who took it."""
    write_plan(
        repo / "plan.json",
        {
            "plan_id": "agent-plan",
            "batches": [
                {
                    "batch_id": "b1",
                    "actions": [
                        write_file_action(
                            "gen", "app/calc.py", "def add(a, b)\n    return a + b\n"
                        )
                    ],
                    "validation": [
                        {"name": "syntax_check", "kind": "syntax"},
                        unit_tests_step(),
                    ],
                }
            ],
        },
    )
    agent = shlex.join([sys.executable, str(EXAMPLES / "fix_syntax.py")])
    cli_ok(repo, "run", "plan.json", "--agent", agent, code=3)
    cli_ok(
        repo,
        *("decide", "latest", "b1", "recover", "--operator", "carol"),
        *("--reason", "the agent's fix passed"),
    )
    cli_ok(repo, "resume", "latest")
    target = tmp_path / "report.html"
    report(repo, target)
    app = RecoveryApp.open(f"sqlite:///{repo / '.recovery' / 'events.sqlite3'}")
    digest = next(
        e.outcome["patch_digest"]
        for e in app.history(app.resolve("latest"))
        if isinstance(e, Run.RecoveryAttempted)
    )
    text = target.read_text(encoding="utf-8")
    assert "Recovery proposals (1)" in text
    assert digest.startswith("sha256:") and digest in text
    with opened(target) as (page, log):
        proposal = page.locator("article.proposal").inner_text()
        decision = page.locator("#decisions tbody tr").inner_text()
    assert log.errors == []
    assert "architect-agent" in proposal
    assert "missing ':'" in proposal  # the agent's analysis
    assert "passed" in proposal and "syntax_check" in proposal
    assert "app/calc.py" in proposal
    assert "+def add(a, b):" in proposal  # the patch, unfolded
    assert "recover" in decision and "carol" in decision
    assert "the agent's fix passed" in decision


def test_a_gone_ref_or_workspace_is_said_not_fatal(repo: Path, tmp_path: Path) -> None:
    """With a quarantine ref deleted, the page says it is gone instead of the
    diff; with the workspace moved away (the store read elsewhere), it says
    the workspace cannot be read; both exit 0."""
    failed_retried_skipped(repo)
    workspace = json.loads(cli_ok(repo, "status", "--json"))["workspace"]
    ref = next(
        line.split()[-1]
        for line in git(repo, "for-each-ref", "refs/recovery/").splitlines()
        if line.endswith("/b2/1/quarantine")
    )
    git(repo, "update-ref", "-d", ref)
    target = tmp_path / "report.html"
    report(repo, target)
    text = target.read_text(encoding="utf-8")
    assert f"the quarantine ref {ref} is gone from the repository" in text
    assert "not by `recovery prune`" in text
    assert '<span class="d-add">+def double(x):</span>' in text  # attempt 2's

    # Retired by prune (the run is finished): the page says so.
    pruned = run_cli("prune", "--keep", "0", cwd=repo)
    assert pruned.returncode == 0, pruned.stderr
    report(repo, target)
    text = target.read_text(encoding="utf-8")
    assert "retired by `recovery prune`" in text

    moved = tmp_path / "elsewhere"
    repo.rename(moved)
    store = f"sqlite:///{moved / '.recovery' / 'events.sqlite3'}"
    done = run_cli("report", "latest", "--html", target, "--store", store, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    text = target.read_text(encoding="utf-8")
    assert text.count(f"the workspace {workspace} cannot be read here") == 2
    assert "Batch <code>b2</code>, attempt 1" in text


def test_the_file_is_replaced_whole_and_bad_targets_exit_2(
    repo: Path, tmp_path: Path
) -> None:
    """An existing file is replaced by a rename (a new file, nothing left
    beside it); a missing --html, a folder, or a folder that does not exist
    exit 2 and write nothing."""
    write_plan(
        repo / "plan.json",
        {
            "plan_id": "one",
            "batches": [
                {
                    "batch_id": "b1",
                    "actions": [],
                    "validation": [{"name": "syntax_check", "kind": "syntax"}],
                }
            ],
        },
    )
    cli_ok(repo, "run", "plan.json")
    out = tmp_path / "out"
    out.mkdir()
    target = out / "report.html"
    target.write_text("old")
    before = target.stat().st_ino
    done = run_cli("report", "latest", "--html", target, cwd=repo)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("wrote the report of run ")
    assert target.stat().st_ino != before
    assert target.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert target.stat().st_mode & 0o777 == 0o666 & ~_umask()
    assert sorted(p.name for p in out.iterdir()) == ["report.html"]

    missing = run_cli("report", "latest", cwd=repo)
    assert missing.returncode == 2
    assert "--html" in missing.stderr
    as_json = run_cli("report", "latest", "--json", cwd=repo)
    assert as_json.returncode == 2
    assert json.loads(as_json.stdout)["exit_code"] == 2
    folder = run_cli("report", "latest", "--html", out, cwd=repo)
    assert folder.returncode == 2 and "is a folder" in folder.stderr
    nowhere = run_cli(
        "report", "latest", "--html", tmp_path / "no" / "r.html", cwd=repo
    )
    assert nowhere.returncode == 2 and "cannot write it" in nowhere.stderr
    assert not (tmp_path / "no").exists()
    assert sorted(p.name for p in out.iterdir()) == ["report.html"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.parametrize("name", ["README.md", "docs/how-to/read-a-run-report.md"])
def test_the_screenshot_is_shown_and_modest(name: str) -> None:
    """docs/images/report.png is a PNG under 300 KB, and the README and the
    how-to show it."""
    image = ROOT / "docs" / "images" / "report.png"
    assert image.read_bytes().startswith(b"\x89PNG")
    assert image.stat().st_size < 300 * 1024
    page = ROOT / name
    relative = os.path.relpath(image, page.parent)
    assert f"]({Path(relative).as_posix()})" in page.read_text(encoding="utf-8")
