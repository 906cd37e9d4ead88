"""The ``recovery`` command: parsing, the commands, and the exit codes.

Exit codes (the same for every command): 0 done, 1 internal error, 2 bad input,
3 halted, 4 aborted, 5 conflict, 6 integrity.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shlex
import signal
import socket
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, get_args

import attrs

from recovery_adapters.cli import export as export_cli
from recovery_adapters.cli import history, verify
from recovery_adapters.cli.interactive import terminal_asker
from recovery_adapters.cli.output import clip, format_table, print_json, status_text
from recovery_adapters.cli.quarantined import add_arguments, cmd_restore, cmd_show
from recovery_adapters.cli.report import add_arguments as add_report_arguments
from recovery_adapters.cli.report import cmd_report
from recovery_adapters.cli.wiring import (
    UsageError,
    make_notifiers,
    make_runner,
    make_strategy,
    open_existing,
    operator_name,
    runner_timing,
)
from recovery_adapters.environment import as_recovery_error
from recovery_adapters.git import GitWorkspace
from recovery_adapters.preflight import preflight
from recovery_adapters.projections import write_failure_log
from recovery_adapters.stores import (
    find_store_url,
    open_store,
    store_to_name,
)
from recovery_adapters.words import (
    host_made_text,
    recovery_command,
    run_json,
)
from recovery_core import (
    Aborted,
    ClaimView,
    Completed,
    Decision,
    Halted,
    Outcome,
    PlanCannotRun,
    PlanError,
    RecoveryApp,
    RecoveryError,
    Runner,
    RunSummary,
    RunView,
    available_strategies,
    batch_strategies,
    load_plan,
)
from recovery_core.projections import default_failure_log
from recovery_core.store import parse_store_url
from recovery_core.strategies import STRATEGIES

__all__ = ["build_parser", "main"]

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_BAD_INPUT = 2
EXIT_ABORTED = 4

#: How much of a run id the tables show: a prefix every command accepts as RUN.
SHORT_RUN_ID = 8
#: The characters of an error that ``recovery log`` shows (its first line).
LOG_ERROR_WIDTH = 60

DECISIONS: tuple[str, ...] = get_args(Decision)


def _show(app: RecoveryApp, view: RunView, as_json: bool) -> None:
    store = store_to_name(app.store_hint(view.workspace), view.workspace)
    if as_json:
        print_json(run_json(view, store, command=recovery_command()))
    else:
        sys.stdout.write(status_text(view, store) + "\n")


def _report(app: RecoveryApp, outcome: Outcome, as_json: bool) -> int:
    if as_json:
        _show(app, outcome.view, True)
    elif isinstance(outcome, Completed):
        sys.stderr.write(f"run {outcome.run_id} completed\n")
    elif isinstance(outcome, Aborted):
        sys.stderr.write(f"run {outcome.run_id} aborted: {outcome.reason}\n")
    elif isinstance(outcome, Halted):
        batch_id = outcome.failure.batch_id
        recorded = outcome.open.recorded
        if outcome.made_by_host:
            sys.stderr.write(host_made_text(batch_id, recorded is not None) + "\n")
        waiting = "a decision" if recorded is None else "the host application"
        sys.stderr.write(
            f"run {outcome.run_id} halted at batch {batch_id}; "
            f"waiting for {waiting} (exit 3)\n"
        )
    return outcome.exit_code


# -- commands ------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    """``recovery run PLAN``: resume the plan's unfinished run here, or start one.

    Everything the command line says is checked before anything is written."""
    plan_path = Path(args.plan)
    plan = load_plan(plan_path)
    workspace_dir = Path(args.workspace or Path.cwd())
    if not workspace_dir.is_dir():
        raise UsageError(f"--workspace {workspace_dir}: no such directory")
    workspace = GitWorkspace(workspace_dir, exclude=[plan_path])
    plan.require_runners()
    if problems := preflight(plan, workspace.root).problems:
        raise PlanCannotRun(str(plan_path), problems)
    make_strategy(args.strategy, args.agent)
    batch_strategies(plan)  # a policy's unknown strategy: exit 2, nothing written
    notifiers = make_notifiers(args.notify)
    runner_timing()  # a bad setting stops it here, before anything is written
    _require_terminal(args)
    url = RecoveryApp.store_url(workspace.root, args.store)
    # The workspace is held before anything is written (its info/exclude, the
    # store): a second runner here stops with exit 5, naming this one.
    with workspace.locked(_holder(plan.plan_id)):
        workspace.prepare(
            commits=any(b.commit_strategy == "commit" for b in plan.batches)
        )
        app = open_store(url)
        runner = make_runner(
            app,
            plan,
            workspace=workspace,
            strategy=args.strategy,
            notifiers=notifiers,
            agent=args.agent,
        )
        outcome = _drive(runner, app, workspace, args)
    return _report(app, outcome, args.json)


def _require_terminal(args: argparse.Namespace) -> None:
    """``--interactive`` asks at a terminal: refused (exit 2) without one."""
    if args.interactive and not (sys.stdin.isatty() and sys.stderr.isatty()):
        raise UsageError(
            "--interactive asks for the decision at a terminal, and this one has "
            "none (standard input or error is not a terminal): use --wait and "
            "`recovery decide` from elsewhere"
        )


def _drive(
    runner: Runner, app: RecoveryApp, workspace: GitWorkspace, args: argparse.Namespace
) -> Outcome:
    """Runs the runner as ``--wait`` and ``--interactive`` ask."""
    if not args.interactive:
        return runner.run(wait=args.wait, poll_s=args.poll)
    ask = terminal_asker(app, workspace, operator_name(None))
    return runner.run(wait=True, poll_s=args.poll, ask=ask)


def cmd_check(args: argparse.Namespace) -> int:
    """``recovery check PLAN``: everything ``run`` would refuse, and what would
    stop the plan before a step could judge anything; writes nothing."""
    plan_path = Path(args.plan)
    plan = load_plan(plan_path)
    workspace_dir = Path(args.workspace or Path.cwd())
    if not workspace_dir.is_dir():
        raise UsageError(f"--workspace {workspace_dir}: no such directory")
    problems: list[str] = []
    try:
        plan.require_runners()
    except PlanError as exc:
        problems += exc.problems
    try:
        batch_strategies(plan)
    except PlanError as exc:
        problems += exc.problems
    with GitWorkspace(workspace_dir, exclude=[plan_path]) as workspace:
        commits = any(b.commit_strategy == "commit" for b in plan.batches)
        try:
            workspace.prepare(commits=commits, write=False)
        except RecoveryError as exc:
            problems.append(f"workspace: {exc}")
        found = preflight(plan, workspace.root)
    problems += found.problems
    if args.json:
        checked: dict[str, Any] = {
            "plan": str(plan_path),
            "can_run": not problems,
            "problems": problems,
            "notes": list(found.notes),
        }
        if problems:  # also the error object every failing --json command prints
            failed = PlanCannotRun(str(plan_path), problems)
            checked.update(error=str(failed), exit_code=failed.exit_code)
        print_json(checked)
    elif found.notes:
        sys.stdout.write("".join(f"note: {note}\n" for note in found.notes))
    if problems:
        error = PlanCannotRun(str(plan_path), problems)
        if not args.json:
            sys.stderr.write(f"recovery: error: {error}\n")
        return error.exit_code
    if not args.json:
        steps = sum(len(b.actions) + len(b.validation) for b in plan.batches)
        sys.stdout.write(
            f"plan {plan_path} can run: {len(plan.batches)} batch(es), "
            f"{steps} action(s) and step(s) checked\n"
        )
    return EXIT_OK


def _holder(plan_id: str, run_id: str | None = None) -> dict[str, str]:
    """This process, as the workspace lock names its holder."""
    holder = {"plan": plan_id, "host": socket.gethostname(), "pid": str(os.getpid())}
    if run_id is not None:
        holder["run"] = run_id
    return holder


def cmd_resume(args: argparse.Namespace) -> int:
    """``recovery resume RUN``: carry out the decision and go on."""
    app = open_existing(args)
    run_id = app.resolve(args.run)
    view = app.view(run_id)
    if view.state == "completed":
        return _report(app, Completed(view.run_id, view), args.json)
    if view.state == "aborted":
        return _report(
            app, Aborted(view.run_id, view, view.abort_reason or ""), args.json
        )
    _require_terminal(args)
    plan = app.recorded_plan(run_id)
    workspace = GitWorkspace(view.workspace)
    runner = make_runner(
        app,
        plan,
        workspace=workspace,
        strategy=_resume_strategy(args, view),
        notifiers=make_notifiers(args.notify),
        run_id=run_id,
        agent=args.agent,
    )
    with workspace.locked(_holder(plan.plan_id, str(run_id))):
        workspace.prepare()
        outcome = _drive(runner, app, workspace, args)
    return _report(app, outcome, args.json)


def _resume_strategy(args: argparse.Namespace, view: RunView) -> str | None:
    """``--strategy``; else, for a recover decision waiting to be carried
    out, the strategy that proposed the fix (only it can apply it)."""
    if args.strategy is not None or args.agent is not None:
        return str(args.strategy) if args.strategy is not None else None
    pending = view.open_decision.recorded if view.open_decision else None
    recovering = pending is not None and pending.decision == "recover"
    if recovering and view.strategy and view.strategy in available_strategies():
        return view.strategy
    return None


def cmd_status(args: argparse.Namespace) -> int:
    """``recovery status [RUN]``."""
    app = open_existing(args)
    view = app.view(app.resolve(args.run))
    _show(app, view, args.json)
    return EXIT_OK


def _log_decision(app: RecoveryApp, view: RunView) -> None:
    """Brings the workspace's failure log up to the decision just recorded
    (its line shows who decided), when the workspace is on this host; else
    the next runner there does."""
    if not default_failure_log(view.workspace).parent.parent.is_dir():
        return
    try:
        write_failure_log(app, view.workspace)
    except OSError as exc:
        sys.stderr.write(f"recovery: note: could not write the failure log: {exc}\n")


def cmd_decide(args: argparse.Namespace) -> int:
    """``recovery decide RUN BATCH DECISION``: record the operator's decision."""
    app = open_existing(args)
    run_id = app.resolve(args.run)
    operator = operator_name(args.operator)
    amended = None
    if args.amended_plan is not None:
        amended = load_plan(Path(args.amended_plan))
        amended.require_runners()
    view = app.decide(
        run_id,
        args.batch,
        args.decision,
        operator=operator,
        reason=args.reason,
        plan=amended,
    )
    _log_decision(app, view)
    if args.json:
        _show(app, view, True)
    else:
        sys.stdout.write(
            f"recorded: {args.decision} for batch {args.batch} of run {view.run_id} "
            f"by {operator}\n"
        )
        if amended is not None:
            sys.stdout.write(
                f"the run follows the amended plan {args.amended_plan} from now on\n"
            )
        if view.state == "aborted":
            sys.stdout.write("the run is aborted\n")
        elif (held := view.claim) is not None:
            sys.stdout.write(
                f"runner {held.runner_id} (process {held.pid} on {held.host}) "
                "is waiting for it and will carry it out\n"
            )
        else:
            hint = store_to_name(app.store_hint(view.workspace), view.workspace)
            store = f" --store {shlex.quote(hint)}" if hint else ""
            sys.stdout.write(
                f"carry it out with: {recovery_command()} resume{store} {view.run_id}\n"
            )
    return EXIT_ABORTED if view.state == "aborted" else EXIT_OK


def cmd_log(args: argparse.Namespace) -> int:
    """``recovery log [RUN] [--rebuild]``: the failure log."""
    app = open_existing(args)
    run_id = app.resolve(args.run)
    view = app.view(run_id)
    if args.rebuild:
        changed = write_failure_log(app, view.workspace)
        state = "rebuilt" if changed else "unchanged"
        sys.stderr.write(f"{state}: the failure log of {view.workspace}\n")
    entries = app.failure_log(
        workspace=view.workspace, run_id=None if args.all else run_id
    )
    if args.json:
        print_json([e.as_json() for e in entries])
        return EXIT_OK
    rows = [
        [
            e.timestamp[:19],
            e.run_id[:SHORT_RUN_ID],
            e.failure.batch_id,
            str(e.failure.attempt),
            e.failure.step_id,
            e.failure.component,
            clip(e.failure.error, LOG_ERROR_WIDTH),
        ]
        for e in entries
    ]
    headers = ["TIME (UTC)", "RUN", "BATCH", "ATTEMPT", "STEP", "COMPONENT", "ERROR"]
    sys.stdout.write(format_table(headers, rows) + "\n")
    return EXIT_OK


def _holder_of(view: RunView) -> ClaimView | None:
    """The runner holding an unfinished run (a finished run keeps its last
    claim in its state, but nobody holds it)."""
    return view.claim if view.state in ("running", "halted") else None


def _listed_run(summary: RunSummary, view: RunView) -> dict[str, Any]:
    """One run as ``recovery runs --json`` lists it."""
    held = _holder_of(view)
    return {
        "run_id": view.run_id,
        "state": view.state,
        "plan_id": view.plan_id,
        "workspace": view.workspace,
        "store": view.store,
        "started_at": summary.started_at,
        "version": view.version,
        "awaiting_decision": None
        if view.awaiting is None
        else {"batch_id": view.awaiting[0], "attempt": view.awaiting[1]},
        "decision": None if view.decision is None else attrs.asdict(view.decision),
        "runner": None if held is None else attrs.asdict(held),
    }


def _halted_at(view: RunView) -> str:
    open_now = view.open_decision
    if open_now is None:
        return ""
    at = f"{open_now.batch_id} attempt {open_now.attempt}"
    decided = open_now.recorded
    return at if decided is None else f"{at} ({decided.decision} decided)"


def cmd_runs(args: argparse.Namespace) -> int:
    """``recovery runs``: the runs in the store, newest first."""
    app = open_existing(args)
    listed = [(s, app.view(s.run_id)) for s in reversed(app.runs())]
    if args.json:
        print_json([_listed_run(summary, view) for summary, view in listed])
        return EXIT_OK
    rows = [
        [
            view.run_id[:SHORT_RUN_ID],
            view.state,
            view.plan_id,
            view.workspace,
            summary.started_at[:19],
            _halted_at(view),
            ""
            if (held := _holder_of(view)) is None
            else f"{held.runner_id} (process {held.pid} on {held.host})",
        ]
        for summary, view in listed
    ]
    headers = [
        "RUN",
        "STATE",
        "PLAN",
        "WORKSPACE",
        "STARTED (UTC)",
        "HALTED AT",
        "RUNNER",
    ]
    sys.stdout.write(format_table(headers, rows) + "\n")
    return EXIT_OK


def _add_runs_command(
    add: Callable[
        [str, Callable[[argparse.Namespace], int], str], argparse.ArgumentParser
    ],
) -> None:
    add("runs", cmd_runs, "the runs in the store, newest first")


def cmd_strategies(args: argparse.Namespace) -> int:
    """``recovery strategies``: the registered strategies, with the package
    and version each comes from."""
    found = available_strategies()
    rows = []
    for name, source in found.items():
        shipped = STRATEGIES.provenance(name)
        rows.append((name, source, shipped.package, shipped.version))
    if args.json:
        print_json(
            [
                {"name": n, "source": s, "package": p, "version": v}
                for n, s, p, v in rows
            ]
        )
    else:
        table = [[n, s, v or ""] for n, s, _, v in rows]
        sys.stdout.write(format_table(["STRATEGY", "FROM", "VERSION"], table) + "\n")
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
            "--strategy",
            help="recovery strategy (default: manual-git in a git workspace); "
            "see `recovery strategies`",
        )
        sub.add_argument(
            "--agent",
            metavar="COMMAND",
            help="the agent command of the architect-agent strategy (implied): "
            "it gets the failure as JSON and answers with a patch "
            "(default: the batch's agent in the plan, else RECOVERY_AGENT_COMMAND)",
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
        sub.add_argument(
            "--interactive",
            action="store_true",
            help="on a halt, ask for the decision at this terminal (then wait)",
        )
        sub.add_argument("--poll", type=float, default=1.0, help=argparse.SUPPRESS)

    run = add("run", cmd_run, "start a run of a plan, or resume its unfinished run")
    run.add_argument("plan", help="the plan file (JSON)")
    run.add_argument(
        "--workspace", help="the git workspace (default: the current folder)"
    )
    runner_options(run)

    check = add("check", cmd_check, "check that a plan can run here, writing nothing")
    check.add_argument("plan", help="the plan file (JSON)")
    check.add_argument(
        "--workspace", help="the git workspace (default: the current folder)"
    )

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
    decide.add_argument(
        "--plan",
        dest="amended_plan",
        metavar="PLAN",
        help="with retry: the amended plan the run follows from now on",
    )

    resume = add("resume", cmd_resume, "carry out the decision and go on")
    resume.add_argument("run", help="run id, unique prefix or 'latest'")
    runner_options(resume)

    history.add_arguments(
        add(
            "history",
            history.cmd_history,
            "the run's timeline, or its state as of a point",
        )
    )

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
    _add_runs_command(add)

    show = add("show", cmd_show, "a failed attempt's quarantined change, as a diff")
    add_arguments(show)
    restore = add(
        "restore", cmd_restore, "bring a quarantined change back into the working tree"
    )
    add_arguments(restore)
    verify.add_arguments(
        add(
            "verify",
            verify.cmd_verify,
            "check runs' histories and projections, or an export (--bundle)",
        )
    )
    export_cli.add_export_arguments(
        add("export", export_cli.cmd_export, "write a run's events, manifest and refs")
    )
    export_cli.add_prune_arguments(
        add("prune", export_cli.cmd_prune, "retire the git refs of finished runs")
    )
    report = add("report", cmd_report, "the run as one self-contained HTML page")
    add_report_arguments(report)

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


def _store_file(args: argparse.Namespace) -> Path | None:
    """The SQLite file the command uses, when it can be told (for messages)."""
    store = getattr(args, "store", None)
    workspace = getattr(args, "workspace", None)
    try:
        if workspace:
            url = RecoveryApp.store_url(workspace, store)
        else:
            url = find_store_url(Path.cwd(), store)
        return parse_store_url(url).path
    except (RecoveryError, OSError):
        return None


def _wants_json(argv: Sequence[str]) -> bool:
    """Whether the command line asks for JSON (before any ``--``)."""
    words = list(argv)
    if "--" in words:
        words = words[: words.index("--")]
    return "--json" in words


def _json_error(
    as_json: bool, message: str, code: int, problems: Sequence[str] = ()
) -> int:
    """With ``--json``, the error object on stdout; returns ``code``."""
    if as_json:
        print_json({"error": message, "exit_code": code, "problems": list(problems)})
    return code


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    """The parsed command line; with ``--json``, a usage error also prints the
    JSON error object (argparse's own message still goes to stderr)."""
    if not _wants_json(argv):
        return parser.parse_args(argv)
    said = io.StringIO()
    try:
        with contextlib.redirect_stderr(said):
            return parser.parse_args(argv)
    except SystemExit as exc:
        text = said.getvalue()
        sys.stderr.write(text)
        if exc.code not in (0, None):
            lines = text.strip().splitlines() or ["bad usage"]
            message = lines[-1].partition(": error: ")[2] or lines[-1]
            code = exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT
            _json_error(True, message, code)
        raise


def main(argv: Sequence[str] | None = None) -> int:
    """Runs ``recovery`` and returns its exit code."""
    parser = build_parser()
    words = list(sys.argv[1:] if argv is None else argv)
    args = _parse(parser, words)
    as_json = bool(getattr(args, "json", False))
    # SIGTERM (a stopped container) and SIGHUP (a closed terminal) end a runner
    # as Ctrl-C does.
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    try:
        code: int = args.func(args)
    except RecoveryError as exc:
        sys.stderr.write(f"recovery: error: {exc}\n")
        problems = exc.problems if isinstance(exc, PlanError) else ()
        return _json_error(as_json, str(exc), exc.exit_code, problems)
    except KeyboardInterrupt:
        sys.stderr.write("recovery: interrupted\n")
        return _json_error(as_json, "interrupted", 130)
    except Exception as exc:
        ours = as_recovery_error(exc, _store_file(args))
        if ours is not None:
            sys.stderr.write(f"recovery: error: {ours}\n")
            return _json_error(as_json, str(ours), ours.exit_code)
        sys.stderr.write(
            "recovery: internal error (a bug; please report it with this trace):\n"
            + traceback.format_exc()
        )
        message = f"internal error (a bug): {type(exc).__name__}: {exc}"
        return _json_error(as_json, message, EXIT_INTERNAL)
    return code
