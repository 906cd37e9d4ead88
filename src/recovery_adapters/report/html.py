"""The run report as one self-contained HTML page.

The page has no script and asks for nothing over the network: its style is
inline, and its Content-Security-Policy allows nothing else (no script, no
fonts, no images but ``data:`` ones, no requests), so that even a browser
that got markup past the escaping would neither run nor fetch anything.
Every text that comes from the run is escaped: failure output, tracebacks and
diffs are the output of unreviewed code.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from datetime import datetime

from recovery_adapters.report.model import (
    AttemptEntry,
    DecisionEntry,
    QuarantinedDiff,
    RecoveryAnswer,
    RunReport,
    StepEntry,
    report_of,
)
from recovery_core.records import BatchView, RunView
from recovery_core.run import Run

__all__ = ["CONTENT_SECURITY_POLICY", "render_html", "render_report"]

#: What the page may load or run: its inline style, and nothing else.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "form-action 'none'; base-uri 'none'"
)

#: A bar of the timeline is never narrower than this (percent of the run),
#: so that an attempt of a few milliseconds still shows.
_MIN_BAR = 0.6
#: A traceback or diff of fewer lines than this is shown unfolded.
_OPEN_LINES = 30

_STYLE = """
:root { color-scheme: light; --fg: #1f2328; --muted: #59636e; --line: #d1d9e0;
  --verified: #1a7f37; --failed: #cf222e; --skipped: #9a6700; --running: #0969da;
  --pending: #818b98; --unfinished: #8250df; --aborted: #82071e; }
* { box-sizing: border-box; }
body { margin: 0; padding: 24px 32px 48px; color: var(--fg); background: #fff;
  font: 14px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 32px 0 12px; padding-bottom: 4px;
  border-bottom: 1px solid var(--line); }
h3 { font-size: 15px; margin: 0 0 8px; }
code, pre { font: 12.5px/1.45 ui-monospace, "SFMono-Regular", Menlo, Consolas,
  monospace; }
pre { margin: 0; padding: 8px 10px; background: #f6f8fa; border: 1px solid var(--line);
  border-radius: 6px; overflow-x: auto; white-space: pre-wrap; word-break: break-word; }
a { color: var(--running); }
nav { margin: 12px 0 0; }
nav a { margin-right: 16px; }
.muted { color: var(--muted); }
.badge { display: inline-block; padding: 0 8px; border-radius: 10px; color: #fff;
  font-size: 12px; font-weight: 600; line-height: 20px; vertical-align: middle; }
.s-verified, .s-completed, .s-passed { background: var(--verified); }
.s-failed, .s-halted { background: var(--failed); }
.s-skipped, .s-retried { background: var(--skipped); }
.s-running { background: var(--running); }
.s-pending { background: var(--pending); }
.s-unfinished { background: var(--unfinished); }
.s-aborted { background: var(--aborted); }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px;
  margin: 12px 0 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; vertical-align: top; padding: 4px 8px;
  border-bottom: 1px solid var(--line); }
thead th { color: var(--muted); font-weight: 600; font-size: 12px; }
table.timeline tr.batch th { padding-top: 10px; font-size: 14px; }
table.timeline td.when, table.timeline td.took { white-space: nowrap; }
td.track { width: 34%; min-width: 160px; }
.track-line { position: relative; height: 14px; background: #f0f2f4;
  border-radius: 3px; margin-top: 3px; }
.bar { position: absolute; top: 0; bottom: 0; border-radius: 3px; }
.steps { margin-top: 3px; }
.step { display: inline-block; margin: 1px 4px 1px 0; padding: 0 6px;
  border-radius: 4px; font-size: 12px; border: 1px solid var(--line); }
.step.passed { border-color: #4ac26b; background: #dafbe1; }
.step.failed { border-color: #ff8182; background: #ffebe9; }
.step.retried { border-color: #d4a72c; background: #fff8c5; }
.legend .badge { margin-right: 6px; }
article { border: 1px solid var(--line); border-left: 4px solid var(--failed);
  border-radius: 6px; padding: 12px 16px; margin: 0 0 16px; }
article.proposal { border-left-color: var(--running); }
table.kv th { width: 150px; color: var(--muted); font-weight: 500; }
pre.error { background: #ffebe9; border-color: #ffcecb; }
details { margin: 8px 0 0; }
summary { cursor: pointer; font-weight: 600; }
details pre { margin-top: 6px; }
.d-add { color: #116329; background: #dafbe1; }
.d-del { color: #82071e; background: #ffebe9; }
.d-hunk { color: #0550ae; }
.d-file { font-weight: 700; }
.missing { padding: 6px 10px; border-radius: 6px; background: #fff8c5;
  border: 1px solid #d4a72c; }
footer { margin-top: 40px; color: var(--muted); font-size: 12px; }
"""


def render_html(
    view: RunView,
    events: Iterable[Run.Event],
    diffs: Mapping[tuple[str, int], QuarantinedDiff] | None = None,
) -> str:
    """The report of a run as one HTML page: ``view`` is the run's state
    (:meth:`~recovery_core.RecoveryApp.view`), ``events`` its events in
    order (:meth:`~recovery_core.RecoveryApp.history`), ``diffs`` the
    quarantined changes by ``(batch_id, attempt)``; a failed attempt with no
    entry there is shown without its diff, saying so."""
    return render_report(report_of(view, events), diffs or {})


def render_report(
    report: RunReport, diffs: Mapping[tuple[str, int], QuarantinedDiff]
) -> str:
    """The page of a :class:`~recovery_adapters.report.model.RunReport`."""
    view = report.view
    numbers = {
        (a.batch_id, a.attempt): n for n, a in enumerate(report.failures, start=1)
    }
    parts = [
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n',
        f'<meta http-equiv="Content-Security-Policy" '
        f'content="{_e(CONTENT_SECURITY_POLICY)}">\n',
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
        '<meta name="referrer" content="no-referrer">\n',
        f"<title>Run {_e(view.run_id[:8])} of {_e(view.plan_id)}: "
        "recovery report</title>\n",
        f"<style>{_STYLE}</style>\n</head>\n<body>\n",
        _header(report),
        _timeline(report, numbers),
        _failures(report, diffs, numbers),
        _decisions(report),
        _proposals(report),
        "<footer>Made by <code>recovery report</code> from the run's "
        f"{report.events} events (head digest <code>{_e(view.head_digest)}"
        "</code>). The page loads nothing and runs no script.</footer>\n",
        "</body>\n</html>\n",
    ]
    return "".join(parts)


# -- the parts of the page -----------------------------------------------------


def _header(report: RunReport) -> str:
    view = report.view
    end = report.ended or report.last_event
    facts: list[tuple[str, str]] = [
        ("Run", f"<code>{_e(view.run_id)}</code>"),
        (
            "Plan",
            f"<code>{_e(view.plan_id)}</code> "
            f'<span class="muted">(digest {_e(view.plan_digest[:12])})</span>',
        ),
        ("Workspace", f"<code>{_e(view.workspace)}</code>"),
        ("Store", f"<code>{_e(view.store)}</code>"),
        ("Started", _e(_when(report.started))),
        (
            "Ended" if report.ended is not None else "Last event",
            f"{_e(_when(end))} ({_e(_took((end - report.started).total_seconds()))} "
            "after the start)",
        ),
    ]
    if view.abort_reason:
        facts.append(("Aborted", _e(view.abort_reason)))
    if (failure := view.failure) is not None:
        facts.append(
            (
                "Halted at",
                f"batch <code>{_e(failure.batch_id)}</code> attempt "
                f"{failure.attempt}: {_e(failure.summary)}",
            )
        )
    counts = _counts(view.batches)
    facts.append(("Batches", _e(counts)))
    rows = "".join(f"<dt>{name}</dt><dd>{value}</dd>\n" for name, value in facts)
    nav = (
        '<nav><a href="#timeline">Timeline</a>'
        f'<a href="#failures">Failures ({len(report.failures)})</a>'
        f'<a href="#decisions">Decisions ({len(report.decisions)})</a>'
        f'<a href="#proposals">Recovery proposals ({len(report.proposals)})</a></nav>\n'
    )
    return (
        f"<header>\n<h1>Run report: plan <code>{_e(view.plan_id)}</code> "
        f'{_badge(view.state)}</h1>\n<dl class="facts">\n{rows}</dl>\n{nav}'
        "</header>\n"
    )


def _counts(batches: Iterable[BatchView]) -> str:
    seen: dict[str, int] = {}
    total = 0
    for batch in batches:
        seen[batch.status] = seen.get(batch.status, 0) + 1
        total += 1
    said = ", ".join(f"{n} {status}" for status, n in seen.items())
    return f"{total} ({said})" if said else "none"


def _timeline(report: RunReport, numbers: Mapping[tuple[str, int], int]) -> str:
    start = report.started
    span = max((report.last_event - start).total_seconds(), 1e-6)
    legend = " ".join(
        _badge(s) for s in ("verified", "failed", "skipped", "running", "pending")
    )
    rows: list[str] = []
    for batch in report.view.batches:
        attempts = report.attempts_of(batch.batch_id)
        said = f"{len(attempts)} attempt{'s' if len(attempts) != 1 else ''}"
        commit = (
            f" · commit <code>{_e(batch.commit[:12])}</code>" if batch.commit else ""
        )
        rows.append(
            f'<tr class="batch" id="batch-{_e(batch.batch_id)}"><th>'
            f"Batch <code>{_e(batch.batch_id)}</code></th><td>{_badge(batch.status)}"
            f'</td><td colspan="3" class="muted">{said}{commit}</td></tr>\n'
        )
        for attempt in attempts:
            rows.append(_attempt_row(attempt, start, span, numbers))
    return (
        '<section id="timeline">\n<h2>Timeline</h2>\n'
        f'<p class="legend muted">{legend} · bars sit where each attempt ran '
        "within the run; times are from the run's start</p>\n"
        '<table class="timeline">\n<thead><tr><th>Attempt</th><th>Status</th>'
        "<th>Started</th><th>Took</th><th>When</th></tr></thead>\n<tbody>\n"
        + "".join(rows)
        + "</tbody>\n</table>\n</section>\n"
    )


def _attempt_row(
    attempt: AttemptEntry,
    start: datetime,
    span: float,
    numbers: Mapping[tuple[str, int], int],
) -> str:
    offset = max(0.0, (attempt.started - start).total_seconds())
    took = attempt.duration_s
    left = min(100.0, 100 * offset / span)
    width = max(_MIN_BAR, 100 * (took or 0.0) / span)
    width = min(width, 100.0 - left) if left < 100.0 else _MIN_BAR
    left = min(left, 100.0 - width)
    steps = "".join(_step_chip(s) for s in attempt.steps)
    number = numbers.get((attempt.batch_id, attempt.attempt))
    link = (
        f' · <a href="#failure-{number}">the failure</a>' if number is not None else ""
    )
    return (
        f"<tr><td>attempt {attempt.attempt}{link}</td>"
        f"<td>{_badge(attempt.status)}</td>"
        f'<td class="when">+{_e(_offset(offset))}</td>'
        f'<td class="took">{_e(_took(took)) if took is not None else "not ended"}</td>'
        f'<td class="track"><div class="track-line"><div class="bar s-{attempt.status}" '
        f'style="left:{left:.3f}%;width:{width:.3f}%"></div></div>'
        f'<div class="steps">{steps}</div></td></tr>\n'
    )


def _step_chip(step: StepEntry) -> str:
    mark = {"passed": "✓", "failed": "✗", "retried": "↻"}[step.outcome]
    title = f"{step.phase}.{step.step} {step.outcome} in {_took(step.duration_s)}"
    return (
        f'<span class="step {step.outcome}" title="{_e(title)}">{mark} '
        f'{_e(step.step)} <span class="muted">{_e(_took(step.duration_s))}'
        "</span></span>"
    )


def _failures(
    report: RunReport,
    diffs: Mapping[tuple[str, int], QuarantinedDiff],
    numbers: Mapping[tuple[str, int], int],
) -> str:
    failed = report.failures
    if not failed:
        body = '<p class="muted">No step failed in this run.</p>\n'
    else:
        body = "".join(
            _failure(a, diffs.get((a.batch_id, a.attempt)), report, numbers)
            for a in failed
        )
    return f'<section id="failures">\n<h2>Failures</h2>\n{body}</section>\n'


def _failure(
    attempt: AttemptEntry,
    diff: QuarantinedDiff | None,
    report: RunReport,
    numbers: Mapping[tuple[str, int], int],
) -> str:
    failure = attempt.failure
    assert failure is not None
    rows: list[tuple[str, str]] = [
        (
            "Step",
            f'<code>{_e(failure.step_id)}</code> <span class="muted">'
            f"({_e(failure.kind)})</span>",
        ),
        (
            "Component",
            f"<code>{_e(failure.component)}</code>"
            if failure.component
            else '<span class="muted">not known</span>',
        ),
        ("Error", f'<pre class="error">{_e(failure.error or "(no message)")}</pre>'),
    ]
    said = [f"took {_took(failure.duration_s)}"]
    if failure.exit_code is not None:
        said.append(f"exit code {failure.exit_code}")
    if failure.timed_out:
        said.append("timed out")
    rows.append(("Ran", _e(", ".join(said))))
    if failure.changed_files:
        files = ", ".join(f"<code>{_e(f)}</code>" for f in failure.changed_files)
        rows.append(("Changed files", files))
    if attempt.quarantine_ref:
        rows.append(("Quarantined under", f"<code>{_e(attempt.quarantine_ref)}</code>"))
    else:
        rows.append(
            (
                "Quarantined",
                '<span class="muted">no: the strategy left the '
                "change in the working tree</span>",
            )
        )
    if (answer := attempt.answer) is not None:
        answered = (
            f' proposed a fix: see <a href="#{_proposal_id(answer)}">its proposal</a>'
            if answer.proposal
            else f"<pre>{_e(answer.analysis)}</pre>"
        )
        rows.append(
            (
                "Strategy",
                f"<code>{_e(answer.strategy)}</code>{_e(_shipped(answer))}{answered}",
            )
        )
    for note in attempt.policy_notes:
        rows.append(("Policy", _e(note)))
    for decision in report.decisions:
        if (decision.batch_id, decision.attempt) == (attempt.batch_id, attempt.attempt):
            rows.append(("Decision", _decision_text(decision)))
    table = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>\n" for k, v in rows)
    trace = failure.traceback or failure.output_tail
    label = "Traceback" if failure.traceback else "Output"
    traceback = (
        f"<details{_open(trace)}><summary>{label}</summary><pre>{_e(trace)}</pre>"
        "</details>\n"
        if trace
        else ""
    )
    number = numbers[(attempt.batch_id, attempt.attempt)]
    return (
        f'<article class="failure" id="failure-{number}">\n'
        f"<h3>Batch <code>{_e(attempt.batch_id)}</code>, attempt {attempt.attempt} "
        f"{_badge('failed')}</h3>\n"
        f'<table class="kv">\n{table}</table>\n{traceback}'
        f"{_diff_part(attempt, diff)}</article>\n"
    )


def _diff_part(attempt: AttemptEntry, diff: QuarantinedDiff | None) -> str:
    if attempt.quarantine_ref is None:
        return ""
    if diff is None or diff.missing is not None:
        why = "it was not read" if diff is None else str(diff.missing)
        return (
            f'<p class="missing">The quarantined diff cannot be shown: {_e(why)}.</p>\n'
        )
    files = len(diff.files)
    title = f"Quarantined diff ({files} file{'s' if files != 1 else ''})"
    if not diff.diff:
        return f'<p class="muted">{_e(title)}: the attempt changed no file.</p>\n'
    cut = (
        '<p class="muted">The diff was cut here: <code>recovery show</code> prints '
        "all of it.</p>"
        if diff.truncated
        else ""
    )
    return (
        f"<details{_open(diff.diff)}><summary>{_e(title)}</summary>"
        f'<pre class="diff">{_diff_lines(diff.diff)}</pre>{cut}</details>\n'
    )


def _open(text: str) -> str:
    """A short traceback or diff is shown open; a long one folded."""
    return " open" if text.count("\n") < _OPEN_LINES else ""


def _diff_lines(text: str) -> str:
    out: list[str] = []
    for line in text.splitlines():
        if line.startswith(("diff --git", "+++", "---")):
            kind = "d-file"
        elif line.startswith("@@"):
            kind = "d-hunk"
        elif line.startswith("+"):
            kind = "d-add"
        elif line.startswith("-"):
            kind = "d-del"
        else:
            out.append(_e(line))
            continue
        out.append(f'<span class="{kind}">{_e(line)}</span>')
    return "\n".join(out)


def _decisions(report: RunReport) -> str:
    if not report.decisions:
        body = '<p class="muted">No decision was taken in this run.</p>\n'
    else:
        rows = "".join(
            f"<tr><td>{_e(_when(d.at))}</td><td><code>{_e(d.batch_id)}</code></td>"
            f"<td>{d.attempt}</td><td>{_e(d.decision)}"
            f"{' (with an amended plan)' if d.amended_plan else ''}</td>"
            f"<td>{_e(d.who)}</td><td>{_e(d.reason) or _NO_REASON}</td></tr>\n"
            for d in report.decisions
        )
        body = (
            "<table>\n<thead><tr><th>When (UTC)</th><th>Batch</th><th>Attempt</th>"
            "<th>Decision</th><th>Who</th><th>Why</th></tr></thead>\n<tbody>\n"
            f"{rows}</tbody>\n</table>\n"
        )
    return f'<section id="decisions">\n<h2>Decisions</h2>\n{body}</section>\n'


_NO_REASON = '<span class="muted">no reason given</span>'


def _decision_text(decision: DecisionEntry) -> str:
    why = _e(decision.reason) if decision.reason else _NO_REASON
    return (
        f"<strong>{_e(decision.decision)}</strong> by {_e(decision.who)}, "
        f"{_e(_when(decision.at))}: {why}"
    )


def _proposals(report: RunReport) -> str:
    proposals = report.proposals
    if not proposals:
        body = '<p class="muted">No strategy proposed a fix in this run.</p>\n'
    else:
        body = "".join(_proposal(p) for p in proposals)
    return f'<section id="proposals">\n<h2>Recovery proposals</h2>\n{body}</section>\n'


def _proposal(answer: RecoveryAnswer) -> str:
    pre = answer.prevalidation or "not pre-validated"
    passed = pre.startswith("passed")
    rows: list[tuple[str, str]] = [
        ("Strategy", f"<code>{_e(answer.strategy)}</code>{_e(_shipped(answer))}"),
        ("Patch digest", f"<code>{_e(answer.patch_digest or 'none')}</code>"),
        (
            "Pre-validation",
            _badge("passed" if passed else "failed")
            + ("" if pre in ("passed", "failed") else f" {_e(pre)}"),
        ),
        ("Analysis", f"<pre>{_e(answer.analysis)}</pre>"),
    ]
    files = answer.details.get("patch_files")
    if isinstance(files, list) and files:
        rows.append(("Files", ", ".join(f"<code>{_e(str(f))}</code>" for f in files)))
    if answer.agent_analysis:
        rows.append(("Agent's analysis", f"<pre>{_e(answer.agent_analysis)}</pre>"))
    if answer.checks:
        checks = "".join(
            f"<li>{'✓' if c.get('passed') else '✗'} <code>{_e(str(c.get('check')))}"
            f"</code>{_e(_check_reason(c))}</li>"
            for c in answer.checks
        )
        rows.append(("Checks", f"<ul>{checks}</ul>"))
    if answer.prevalidation_steps:
        steps = "".join(_prevalidation_step(s) for s in answer.prevalidation_steps)
        rows.append(("Steps in the sandbox", steps))
    table = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>\n" for k, v in rows)
    patch = (
        f"<details{_open(answer.patch)}><summary>Proposed patch</summary>"
        '<pre class="diff">'
        f"{_diff_lines(answer.patch)}</pre></details>\n"
        if answer.patch
        else ""
    )
    return (
        f'<article class="proposal" id="{_proposal_id(answer)}">\n'
        f"<h3>Batch <code>{_e(answer.batch_id)}</code>, "
        f"attempt {answer.attempt}: a fix proposed</h3>\n"
        f'<table class="kv">\n{table}</table>\n{patch}</article>\n'
    )


def _proposal_id(answer: RecoveryAnswer) -> str:
    # Batch ids are the plan's words: the anchor is made of numbers only.
    return f"proposal-{answer.attempt}-{_digits(answer.batch_id)}"


def _digits(text: str) -> str:
    return text.encode("utf-8").hex()


def _check_reason(check: Mapping[str, object]) -> str:
    what = f" {check['what']}" if check.get("what") else ""
    reason = f": {check['reason']}" if check.get("reason") else ""
    return f"{what}{reason}"


def _prevalidation_step(step: Mapping[str, object]) -> str:
    passed = bool(step.get("passed"))
    name = str(step.get("name", "?"))
    return _step_chip(
        StepEntry(
            str(step.get("phase", "")),
            name,
            "passed" if passed else "failed",
            _number(step.get("duration_s")),
        )
    )


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


# -- words -----------------------------------------------------------------------


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _badge(status: str) -> str:
    return f'<span class="badge s-{_e(status)}">{_e(status)}</span>'


def _shipped(answer: RecoveryAnswer) -> str:
    if answer.strategy_package is None:
        return ""
    version = f" {answer.strategy_version}" if answer.strategy_version else ""
    return f" ({answer.strategy_package}{version})"


def _when(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S UTC")


def _offset(seconds: float) -> str:
    minutes, rest = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    if hours:
        return f"{hours}:{minutes:02d}:{rest:04.1f}"
    return f"{minutes}:{rest:04.1f}"


def _took(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
