"""The ``recovery`` command: parsing, the commands, and the exit codes.

Exit codes (the same for every command): 0 done, 1 internal error, 2 bad input,
3 halted, 4 aborted, 5 conflict, 6 integrity.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import signal
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from recovery_adapters.cli.output import ProgressPrinter, format_table, status_text
from recovery_adapters.git import GitWorkspace
from recovery_adapters.notify import ConsoleNotifier
from recovery_adapters.validation import default_step_runners
from recovery_core.application import RecoveryApp
from recovery_core.errors import RecoveryError
from recovery_core.plan import ExecutionPlan, load_plan, parse_plan
from recovery_core.ports import Notifier, Progress
from recovery_core.projections import (
    FAILURE_LOG_TOPICS,
    default_failure_log,
    failure_log_lines,
    status_json,
)
from recovery_core.run import DECISIONS, RunView
from recovery_core.runner import (
    Aborted,
    Completed,
    Halted,
    Outcome,
    Runner,
    check_step_kinds,
    decision_commands,
    rebuild_failure_log,
)
from recovery_core.store import default_store_url, find_store_url, parse_store_url
from recovery_core.strategies import available_strategies, get_strategy

__all__ = ["build_parser", "main"]

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_BAD_INPUT = 2

NOTIFIER_KINDS = ("console",)


class UsageError(RecoveryError):
    """A command line that asks for something that cannot be done."""

    exit_code = 2


def operator_name(explicit: str | None) -> str:
    """``--operator``, else ``RECOVERY_OPERATOR``, else the login name."""
    if explicit:
        return explicit
    from_env = os.environ.get("RECOVERY_OPERATOR")
    if from_env:
        return from_env
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def make_notifiers(specs: Sequence[str]) -> list[Notifier]:
    """Notifiers from ``--notify`` specs; console when none is given."""
    notifiers: list[Notifier] = []
    for spec in specs or ["console"]:
        kind, _, _arg = spec.partition(":")
        if kind == "console":
            notifiers.append(ConsoleNotifier())
        else:
            raise UsageError(
                f"--notify {spec!r}: unknown notifier {kind!r} "
                f"(available: {', '.join(NOTIFIER_KINDS)})"
            )
    return notifiers


def make_runner(
    app: RecoveryApp,
    plan: ExecutionPlan,
    *,
    workspace: GitWorkspace,
    strategy: str,
    notifiers: Sequence[Notifier],
    plan_path: Path | None,
    progress: Progress | None = None,
    run_id: Any = None,
) -> Runner:
    """A runner with this package's step runners."""
    return Runner(
        app,
        plan,
        workspace=workspace,
        step_runners=default_step_runners(),
        strategy=get_strategy(strategy),
        notifiers=notifiers,
        progress=progress if progress is not None else ProgressPrinter(),
        plan_path=plan_path,
        run_id=run_id,
    )


def _store_hint(app: RecoveryApp, view: RunView) -> str | None:
    return (
        None
        if app.store.url == default_store_url(view.workspace)
        else app.store.display
    )


def _commands(app: RecoveryApp, view: RunView) -> tuple[str, ...]:
    if view.awaiting is None:
        return ()
    decisions = [d for d in DECISIONS if d != "recover" or view.proposal]
    return decision_commands(
        view.run_id, view.awaiting[0], decisions, _store_hint(app, view)
    )


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def _show(app: RecoveryApp, view: RunView, as_json: bool) -> None:
    commands = _commands(app, view)
    if as_json:
        named = {c.split()[-1] if " decide " in c else "resume": c for c in commands}
        _print_json(status_json(view, commands=named))
    else:
        sys.stdout.write(status_text(view, commands) + "\n")


def _report(app: RecoveryApp, outcome: Outcome, as_json: bool) -> int:
    if as_json:
        _show(app, outcome.view, True)
    elif isinstance(outcome, Completed):
        sys.stderr.write(f"run {outcome.run_id} completed\n")
    elif isinstance(outcome, Aborted):
        sys.stderr.write(f"run {outcome.run_id} aborted: {outcome.reason}\n")
    elif isinstance(outcome, Halted):
        sys.stderr.write(
            f"run {outcome.run_id} halted at batch {outcome.failure.batch_id}; "
            "waiting for a decision (exit 3)\n"
        )
    return outcome.exit_code


def _open_existing(args: argparse.Namespace) -> RecoveryApp:
    return RecoveryApp.open(find_store_url(Path.cwd(), args.store), create=False)


# -- commands ------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    """``recovery run PLAN``: resume the plan's unfinished run here, or start one."""
    plan_path = Path(args.plan)
    plan = load_plan(plan_path)
    workspace_dir = Path(args.workspace or Path.cwd())
    if not workspace_dir.is_dir():
        raise UsageError(f"--workspace {workspace_dir}: no such directory")
    workspace = GitWorkspace(workspace_dir, exclude=[plan_path])
    runners = default_step_runners()
    check_step_kinds(plan, runners)
    get_strategy(args.strategy)
    notifiers = make_notifiers(args.notify)
    url = (
        args.store
        or os.environ.get("RECOVERY_STORE")
        or default_store_url(workspace.root)
    )
    parse_store_url(url)
    workspace.prepare()
    app = RecoveryApp.open(url)
    runner = make_runner(
        app,
        plan,
        workspace=workspace,
        strategy=args.strategy,
        notifiers=notifiers,
        plan_path=plan_path,
    )
    outcome = runner.run(wait=args.wait, poll_s=args.poll)
    return _report(app, outcome, args.json)


def cmd_resume(args: argparse.Namespace) -> int:
    """``recovery resume RUN``: carry out the decision and go on."""
    app = _open_existing(args)
    run_id = app.resolve(args.run)
    run = app.get_run(run_id)
    plan_path = Path(run.plan_path) if run.plan_path else None
    plan = parse_plan(run.plan, source=run.plan_path or "<recorded plan>")
    if run.state in ("completed", "aborted"):
        view = run.view()
        return _report(
            app,
            Completed(view.run_id, view)
            if run.state == "completed"
            else Aborted(view.run_id, view, view.abort_reason or ""),
            args.json,
        )
    workspace = GitWorkspace(run.workspace, exclude=[plan_path] if plan_path else [])
    runner = make_runner(
        app,
        plan,
        workspace=workspace,
        strategy=args.strategy,
        notifiers=make_notifiers(args.notify),
        plan_path=plan_path if plan_path and plan_path.is_file() else None,
        run_id=run_id,
    )
    workspace.prepare()
    outcome = runner.run(wait=args.wait, poll_s=args.poll)
    return _report(app, outcome, args.json)


def cmd_status(args: argparse.Namespace) -> int:
    """``recovery status [RUN]``."""
    app = _open_existing(args)
    view = app.view(app.resolve(args.run))
    _show(app, view, args.json)
    return EXIT_OK


def cmd_decide(args: argparse.Namespace) -> int:
    """``recovery decide RUN BATCH DECISION``: record the operator's decision."""
    app = _open_existing(args)
    run_id = app.resolve(args.run)
    operator = operator_name(args.operator)
    view = app.decide(
        run_id, args.batch, args.decision, operator=operator, reason=args.reason
    )
    if args.json:
        _show(app, view, True)
    else:
        sys.stdout.write(
            f"recorded: {args.decision} for batch {args.batch} of run {view.run_id} "
            f"by {operator}\n"
        )
        if view.state == "aborted":
            sys.stdout.write("the run is aborted\n")
        else:
            hint = _store_hint(app, view)
            store = f" --store '{hint}'" if hint else ""
            sys.stdout.write(
                f"carry it out with: recovery resume{store} {view.run_id}\n"
            )
    return 4 if view.state == "aborted" else EXIT_OK


def cmd_log(args: argparse.Namespace) -> int:
    """``recovery log [RUN] [--rebuild]``: the failure log."""
    app = _open_existing(args)
    run_id = app.resolve(args.run)
    view = app.view(run_id)
    if args.rebuild:
        path = default_failure_log(view.workspace)
        changed = rebuild_failure_log(app, path, view.workspace)
        sys.stderr.write(f"{'rebuilt' if changed else 'unchanged'}: {path}\n")
    lines = failure_log_lines(
        app.notifications(FAILURE_LOG_TOPICS), workspace=view.workspace
    )
    entries = [json.loads(line) for line in lines]
    if not args.all:
        entries = [e for e in entries if e["run_id"] == view.run_id]
    if args.json:
        _print_json(entries)
        return EXIT_OK
    rows = [
        [
            e["timestamp"][:19],
            e["batch_id"],
            str(e["attempt"]),
            e["step"],
            e["component"] or "",
            (e["error"].splitlines() or [""])[0][:60],
        ]
        for e in entries
    ]
    sys.stdout.write(
        format_table(
            ["TIME (UTC)", "BATCH", "ATTEMPT", "STEP", "COMPONENT", "ERROR"], rows
        )
        + "\n"
    )
    return EXIT_OK


def cmd_strategies(args: argparse.Namespace) -> int:
    """``recovery strategies``: the registered strategies."""
    found = available_strategies()
    if args.json:
        _print_json([{"name": n, "source": s} for n, s in found.items()])
    else:
        rows = [[name, source] for name, source in found.items()]
        sys.stdout.write(format_table(["STRATEGY", "FROM"], rows) + "\n")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    """``recovery demo``: a narrated run through a failure and a decision."""
    from recovery_adapters.cli.demo import run_demo

    return run_demo(args.dir)


# -- parsing -------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``recovery``."""
    parser = argparse.ArgumentParser(
        prog="recovery",
        description="Run execution plans batch by batch; halt, record and recover "
        "when a batch fails.",
        epilog="Exit codes: 0 done, 1 internal error, 2 bad input, 3 halted "
        "(awaiting a decision), 4 aborted, 5 conflict, 6 integrity.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(
        name: str, func: Callable[[argparse.Namespace], int], help_text: str
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(func=func)
        if name != "demo":
            sub.add_argument(
                "--store",
                help="store URL (default: RECOVERY_STORE, else .recovery/events.sqlite3 "
                "found from here upward; for run, in the workspace)",
            )
            sub.add_argument(
                "--json", action="store_true", help="print JSON for programs"
            )
        return sub

    demo = add(
        "demo",
        cmd_demo,
        "build a small workspace and plan, and run it through a "
        "failure, a decision and a completion",
    )
    demo.add_argument(
        "--dir", help="where to build it (default: a new temporary folder)"
    )

    def runner_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--strategy", default="noop", help="recovery strategy (default: noop)"
        )
        sub.add_argument(
            "--notify",
            action="append",
            default=[],
            metavar="SPEC",
            help="notifier for halts (default: console); may repeat",
        )
        sub.add_argument(
            "--wait", action="store_true", help="on a halt, wait for a decision"
        )
        sub.add_argument("--poll", type=float, default=1.0, help=argparse.SUPPRESS)

    run = add("run", cmd_run, "start a run of a plan, or resume its unfinished run")
    run.add_argument("plan", help="the plan file (JSON)")
    run.add_argument(
        "--workspace", help="the git workspace (default: the current folder)"
    )
    runner_options(run)

    status = add("status", cmd_status, "the run's state and every batch's status")
    status.add_argument(
        "run", nargs="?", default="latest", help="run id, prefix or 'latest'"
    )

    decide = add(
        "decide", cmd_decide, "record an operator's decision on a failed batch"
    )
    decide.add_argument("run", help="run id, unique prefix (6+ characters) or 'latest'")
    decide.add_argument("batch", help="the failed batch's id")
    decide.add_argument("decision", choices=DECISIONS)
    decide.add_argument(
        "--operator", help="who decides (default: RECOVERY_OPERATOR, else login)"
    )
    decide.add_argument("--reason", default="", help="why, for the record")

    resume = add("resume", cmd_resume, "carry out the decision and go on")
    resume.add_argument("run", help="run id, unique prefix or 'latest'")
    runner_options(resume)

    log = add("log", cmd_log, "the failure log")
    log.add_argument(
        "run", nargs="?", default="latest", help="run id, prefix or 'latest'"
    )
    log.add_argument(
        "--rebuild", action="store_true", help="rewrite the log file from events"
    )
    log.add_argument(
        "--all", action="store_true", help="every run in the run's workspace"
    )

    strategies = commands.add_parser(
        "strategies",
        help="the registered recovery strategies, built-in and from plugins",
    )
    strategies.set_defaults(func=cmd_strategies)
    strategies.add_argument(
        "--json", action="store_true", help="print JSON for programs"
    )
    return parser


def _terminate(signum: int, frame: object) -> None:
    # SIGTERM stops a runner the way Ctrl-C does: the attempt under way is
    # recorded as interrupted before the process ends.
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Runs ``recovery`` and returns its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        code: int = args.func(args)
    except RecoveryError as exc:
        sys.stderr.write(f"recovery: error: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("recovery: interrupted\n")
        return 130
    except Exception:
        sys.stderr.write(
            "recovery: internal error (a bug; please report it with this trace):\n"
            + traceback.format_exc()
        )
        return EXIT_INTERNAL
    return code
