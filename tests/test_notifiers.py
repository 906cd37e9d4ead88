"""The notifiers, each against the real thing: a file appended to by several
processes at once, real programs, a real HTTP server on 127.0.0.1, Apprise's
``json://`` service against that server, and the ``recovery`` command line
halting a run with several notifiers, one of which cannot deliver."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import multiprocessing
import shlex
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import attrs
import pytest

from recovery_adapters import (
    AppriseNotifier,
    CommandNotifier,
    ConsoleNotifier,
    InboxNotifier,
    WebhookNotifier,
    notification_json,
)
from recovery_adapters.cli.wiring import NOTIFIERS, UsageError, make_notifiers
from recovery_adapters.notify import SCHEMA
from recovery_adapters.notify.console import format_notification
from recovery_adapters.notify.webhook import signature
from recovery_adapters.words import recovery_command
from recovery_core import Notification, Notifier, RecoveryApp
from recovery_core.records import Failure, OpenDecision, failure_json
from recovery_core.run import Run
from support import (
    BUGGY_CALC,
    run_cli,
    unit_tests_step,
    write_file_action,
    write_plan,
)

SECRET = "s3cret-for-tests"


def sample(batch: str = "2", attempt: int = 1) -> Notification:
    """A notification of a failed unit test step, as a halt builds it."""
    failure = Failure(
        batch_id=batch,
        attempt=attempt,
        step="unit_tests",
        phase="post_build_validation",
        kind="command",
        component="app/calc.py",
        error="FAIL: test_add (tests.test_calc.CalcTest)\nAssertionError: -1 != 5",
        exit_code=1,
        changed_files=("app/calc.py",),
        quarantine_ref=f"refs/recovery/r/{batch}/{attempt}/quarantine",
    )
    return Notification(
        run_id="0f1e2d3c-0000-4000-8000-000000000001",
        plan_id="plan-7",
        workspace="/srv/work",
        failure=failure,
        open=OpenDecision(batch, attempt, ("retry", "skip", "abort")),
        strategy="manual-git",
        analysis="the change was quarantined",
        hints=("git diff a b",),
        store="sqlite:////srv/events.sqlite3",
    )


# -- the JSON ------------------------------------------------------------------


def test_notification_json_is_versioned_and_complete() -> None:
    """The object names its schema and carries the failure, the decision open
    now, the strategy's answer, the quarantine ref and the commands."""
    n = sample()
    data = notification_json(n)
    assert data["schema"] == SCHEMA == "recovery-core/notification/1"
    assert data["id"] == f"{n.run_id}/2/1"
    assert (data["run_id"], data["plan_id"], data["batch_id"], data["attempt"]) == (
        n.run_id,
        "plan-7",
        "2",
        1,
    )
    assert data["failure"] == failure_json(n.failure)
    assert data["quarantine_ref"] == "refs/recovery/r/2/1/quarantine"
    assert data["open_decision"] == {
        "batch_id": "2",
        "attempt": 1,
        "decisions": ["retry", "skip", "abort"],
        "recorded": None,
    }
    assert data["strategy"] == "manual-git"
    assert data["hints"] == ["git diff a b"]
    assert data["store"] == "sqlite:////srv/events.sqlite3"
    assert data["made_by_host"] is False
    assert data["next_commands"]["resume"].startswith("recovery resume --store ")
    assert len(data["next_commands"]["decide"]) == 3
    # The quarantined change: the commands that show it and bring it back,
    # naming the attempt (a later one may fail too).
    store = "--store sqlite:////srv/events.sqlite3"
    assert (
        data["next_commands"]["show"]
        == f"recovery show {store} {n.run_id} 2 --attempt 1"
    )
    assert data["next_commands"]["restore"] == (
        f"recovery restore {store} {n.run_id} 2 --attempt 1"
    )
    # Built without a run state or a log entry (as a host may), those are null.
    assert data["run"] is None
    assert data["failure_log_entry"] is None
    json.dumps(data)


def test_no_quarantine_no_change_commands() -> None:
    """Without a quarantine (a strategy such as noop), the JSON has no show or
    restore command and the console names none; an attempt that changed no
    file has a show command but nothing to restore."""
    n = sample()
    kept_none = attrs.evolve(
        n, failure=attrs.evolve(n.failure, quarantine_ref=None), hints=()
    )
    data = notification_json(kept_none)
    assert (data["next_commands"]["show"], data["next_commands"]["restore"]) == (
        None,
        None,
    )
    assert " show " not in format_notification(kept_none)
    assert "quarantine:" not in format_notification(kept_none)
    unchanged = attrs.evolve(n, failure=attrs.evolve(n.failure, changed_files=()))
    data = notification_json(unchanged)
    assert data["next_commands"]["show"] is not None
    assert data["next_commands"]["restore"] is None
    assert " restore " not in format_notification(unchanged)


def test_the_console_names_the_quarantine_and_the_recovery_commands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The console shows the quarantine ref (with the baseline) for those who
    audit with git, then ``recovery show`` and ``recovery restore`` of the
    attempt as they are typed here; the strategy's own hints stay its own."""
    monkeypatch.chdir(tmp_path)
    n = attrs.evolve(
        sample(), failure=attrs.evolve(sample().failure, baseline="ab" * 20)
    )
    text = format_notification(n)
    command = recovery_command()
    store = "--store sqlite:////srv/events.sqlite3"
    assert (
        "  quarantine: refs/recovery/r/2/1/quarantine (baseline abababababab)" in text
    )
    lines = text.splitlines()
    at = lines.index(
        "  look at the change, or bring it back into the working tree, with:"
    )
    assert lines[at + 1 : at + 3] == [
        f"    {command} show {store} {n.run_id} 2 --attempt 1",
        f"    {command} restore {store} {n.run_id} 2 --attempt 1",
    ]
    assert "  the strategy suggests:\n    git diff a b\n" in text
    assert "git apply" not in text


def test_the_reference_names_every_field() -> None:
    """docs/reference/notifications.md names every field of the object, and of
    its open decision and its commands."""
    text = (
        Path(__file__).resolve().parents[1] / "docs" / "reference" / "notifications.md"
    ).read_text(encoding="utf-8")
    data = notification_json(sample())
    for key in [*data, *data["open_decision"], *data["next_commands"]]:
        assert f"`{key}`" in text, key
    assert SCHEMA in text


# -- the inbox -----------------------------------------------------------------


def _append_many(path: str, writer: int, count: int) -> None:
    notifier = InboxNotifier(path)
    for i in range(count):
        notifier.notify(sample(batch=f"w{writer}", attempt=i + 1))


def test_inbox_lines_from_several_processes_are_whole_and_none_is_lost(
    tmp_path: Path,
) -> None:
    """Six processes append 40 notifications each to one inbox (in a folder
    that does not exist yet): 240 lines, each valid JSON, none lost or torn."""
    path = tmp_path / "deep" / "er" / "inbox.jsonl"
    context = multiprocessing.get_context("spawn")
    writers = [
        context.Process(target=_append_many, args=(str(path), w, 40)) for w in range(6)
    ]
    for process in writers:
        process.start()
    for process in writers:
        process.join(120)
        assert process.exitcode == 0
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b""
    records = [json.loads(line) for line in lines[:-1]]
    assert len(records) == 240
    assert {(r["batch_id"], r["attempt"]) for r in records} == {
        (f"w{w}", i + 1) for w in range(6) for i in range(40)
    }
    assert all(r["schema"] == SCHEMA for r in records)


def test_inbox_line_after_a_torn_line_stays_whole(tmp_path: Path) -> None:
    """A line a killed writer left without its newline does not swallow the
    next notification."""
    path = tmp_path / "inbox.jsonl"
    path.write_bytes(b'{"torn": ')
    notifier = InboxNotifier(path)
    notifier.notify(sample())
    assert notifier.channel == f"inbox:{path}"
    torn, line, end = path.read_bytes().split(b"\n")
    assert torn == b'{"torn": ' and end == b""
    assert json.loads(line)["batch_id"] == "2"


# -- the command ---------------------------------------------------------------


def test_command_gets_the_json_on_stdin(tmp_path: Path) -> None:
    """A real script reads the notification from its standard input."""
    out = tmp_path / "got.json"
    script = tmp_path / "receive.py"
    script.write_text(
        "import json, os, sys, pathlib\n"
        "data = json.load(sys.stdin)\n"
        "data['env_schema'] = os.environ['RECOVERY_NOTIFICATION_SCHEMA']\n"
        f"pathlib.Path({str(out)!r}).write_text(json.dumps(data))\n"
    )
    (notifier,) = make_notifiers([f"command:{sys.executable} {script}"])
    assert isinstance(notifier, CommandNotifier)
    assert notifier.channel == f"command:{sys.executable}"
    notifier.notify(sample())
    got = json.loads(out.read_text())
    assert got["env_schema"] == SCHEMA
    assert {k: v for k, v in got.items() if k != "env_schema"} == json.loads(
        json.dumps(notification_json(sample()))
    )


def test_command_that_fails_raises_with_its_exit_code_and_output() -> None:
    """Exit 7 is not delivered: the error names the command, the code and the
    end of what it printed."""
    code = "import sys; sys.stdin.read(); print('mailer is down', file=sys.stderr); sys.exit(7)"
    notifier = CommandNotifier([sys.executable, "-c", code])
    with pytest.raises(RuntimeError) as caught:
        notifier.notify(sample())
    message = str(caught.value)
    assert "exited 7" in message
    assert sys.executable in message
    assert "mailer is down" in message


def test_command_that_hangs_is_ended_at_its_timeout(tmp_path: Path) -> None:
    """A command that never ends (nor does the child it started) is ended with
    its process group at the timeout, and the delivery fails."""
    pid_file = tmp_path / "child.pid"
    code = (
        "import subprocess, sys, time, pathlib; "
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        f"pathlib.Path({str(pid_file)!r}).write_text(str(child.pid)); "
        "time.sleep(60)"
    )
    notifier = CommandNotifier([sys.executable, "-c", code], timeout_s=1.5)
    started = time.monotonic()
    with pytest.raises(RuntimeError, match=r"timed out after 1\.5 s"):
        notifier.notify(sample())
    assert time.monotonic() - started < 15
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while Path(f"/proc/{child}").exists() and time.monotonic() < deadline:
        status = Path(f"/proc/{child}/stat").read_text().split()[2]
        if status == "Z":
            break
        time.sleep(0.05)
    assert (
        not Path(f"/proc/{child}").exists()
        or Path(f"/proc/{child}/stat").read_text().split()[2] == "Z"
    )


# -- the webhook ---------------------------------------------------------------


@attrs.define
class Received:
    """One request the server got."""

    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    """A real HTTP server on 127.0.0.1 in a thread: it answers the statuses of
    ``script`` in turn (then 200), or, for the status 0, waits ``hang_s``
    before answering 200 (too late for the client)."""

    def __init__(self, script: Sequence[int] = (), hang_s: float = 0.0) -> None:
        self.script = list(script)
        self.hang_s = hang_s
        self.got: list[Received] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                receiver.got.append(
                    Received(
                        self.path, {k.lower(): v for k, v in self.headers.items()}, body
                    )
                )
                status = receiver.script.pop(0) if receiver.script else 200
                if status == 0:
                    time.sleep(receiver.hang_s)
                    status = 200
                answer = b'{"ok": true}'
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except OSError:
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook?token=t0k"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests to 127.0.0.1 go straight to the test's server."""
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("RECOVERY_WEBHOOK_SECRET", raising=False)


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_webhook_posts_the_json_signed_with_the_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The body is the notification's JSON, as application/json, and its
    signature verifies with the secret from RECOVERY_WEBHOOK_SECRET."""
    monkeypatch.setenv("RECOVERY_WEBHOOK_SECRET", SECRET)
    with Receiver() as receiver:
        (notifier,) = make_notifiers([f"webhook:{receiver.url}"])
        assert isinstance(notifier, WebhookNotifier)
        port = receiver.server.server_address[1]
        assert notifier.channel == f"webhook:http://127.0.0.1:{port}"
        notifier.notify(sample())
    (got,) = receiver.got
    assert got.path == "/hook?token=t0k"
    assert got.headers["content-type"].startswith("application/json")
    assert json.loads(got.body) == json.loads(json.dumps(notification_json(sample())))
    expected = hmac.new(SECRET.encode(), got.body, hashlib.sha256).hexdigest()
    assert got.headers["x-recovery-signature"] == f"sha256={expected}"
    assert signature(SECRET, got.body) == got.headers["x-recovery-signature"]
    assert got.headers["x-recovery-schema"] == SCHEMA
    assert got.headers["x-recovery-notification"] == notification_json(sample())["id"]


def test_webhook_without_a_secret_is_not_signed() -> None:
    with Receiver() as receiver:
        WebhookNotifier(receiver.url).notify(sample())
    (got,) = receiver.got
    assert "x-recovery-signature" not in got.headers


def test_webhook_credentials_in_the_url_are_basic_auth_not_in_the_channel() -> None:
    with Receiver() as receiver:
        url = receiver.url.replace("http://", "http://ops:pa%40ss@")
        notifier = WebhookNotifier(url)
        notifier.notify(sample())
    (got,) = receiver.got
    token = base64.b64encode(b"ops:pa@ss").decode()
    assert got.headers["authorization"] == f"Basic {token}"
    assert "ops" not in notifier.channel and "pa" not in notifier.channel


def test_webhook_retries_after_a_500_then_succeeds() -> None:
    """A 500 and a 503 are tried again, after the backoff; the third try is
    taken, with the same body and notification id each time."""
    with Receiver([500, 503]) as receiver:
        started = time.monotonic()
        WebhookNotifier(receiver.url, backoff_s=(0.2, 0.4)).notify(sample())
        took = time.monotonic() - started
    assert len(receiver.got) == 3
    assert len({r.body for r in receiver.got}) == 1
    assert len({r.headers["x-recovery-notification"] for r in receiver.got}) == 1
    assert took >= 0.6


def test_webhook_gives_up_after_the_bound() -> None:
    """Failing every try, it stops after the bound and says every answer."""
    with Receiver([500, 429, 502, 500]) as receiver:
        notifier = WebhookNotifier(receiver.url, tries=3, backoff_s=(0.05,))
        with pytest.raises(RuntimeError) as caught:
            notifier.notify(sample())
    assert len(receiver.got) == 3
    message = str(caught.value)
    assert "gave up after 3 tries" in message
    assert "HTTP 500" in message and "HTTP 429" in message and "HTTP 502" in message
    assert "t0k" not in message  # the query (a token) is not in errors


def test_webhook_400_is_not_retried() -> None:
    with (
        Receiver([400]) as receiver,
        pytest.raises(RuntimeError, match=r"HTTP 400 .*not retried"),
    ):
        WebhookNotifier(receiver.url, backoff_s=(0.05,)).notify(sample())
    assert len(receiver.got) == 1


def test_webhook_that_hangs_times_out_per_request() -> None:
    """A server that does not answer in time is a failed try, retried, then
    given up on."""
    with Receiver([0, 0], hang_s=3.0) as receiver:
        notifier = WebhookNotifier(
            receiver.url, tries=2, backoff_s=(0.05,), timeout_s=0.5
        )
        started = time.monotonic()
        with pytest.raises(RuntimeError, match="gave up after 2 tries"):
            notifier.notify(sample())
        assert time.monotonic() - started < 2.9
    assert len(receiver.got) == 2


def test_webhook_closed_port_is_a_connection_error() -> None:
    port = closed_port()
    notifier = WebhookNotifier(f"http://127.0.0.1:{port}/", backoff_s=(0.01,))
    with pytest.raises(RuntimeError, match="cannot connect"):
        notifier.notify(sample())


@pytest.mark.parametrize(
    "url", ["ftp://example.com/x", "file:///etc/passwd", "example.com/hook", "http://"]
)
def test_webhook_takes_only_http_urls(url: str) -> None:
    with pytest.raises(UsageError, match="http:// or https://"):
        make_notifiers([f"webhook:{url}"])


# -- apprise -------------------------------------------------------------------


def test_apprise_json_scheme_reaches_a_local_server() -> None:
    """Through Apprise's json:// service, the title and body reach a real HTTP
    server: the run, the batch, the step, the error and the decide commands."""
    pytest.importorskip("apprise")
    with Receiver() as receiver:
        port = receiver.server.server_address[1]
        (notifier,) = make_notifiers([f"apprise:json://127.0.0.1:{port}/"])
        assert isinstance(notifier, AppriseNotifier)
        assert notifier.channel == "apprise:json"
        notifier.notify(sample())
    (got,) = receiver.got
    data = json.loads(got.body)
    n = sample()
    assert n.run_id[:8] in data["title"] and "batch 2" in data["title"]
    assert "post_build_validation.unit_tests" in data["message"]
    assert "FAIL: test_add" in data["message"]
    assert (
        f"recovery decide --store sqlite:////srv/events.sqlite3 {n.run_id} 2 retry"
        in data["message"]
    )
    assert data["type"] == "failure"


def test_apprise_that_cannot_deliver_raises() -> None:
    pytest.importorskip("apprise")
    (notifier,) = make_notifiers([f"apprise:json://127.0.0.1:{closed_port()}/"])
    with pytest.raises(RuntimeError, match="did not deliver"):
        notifier.notify(sample())


def test_apprise_missing_is_a_usage_error_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch, repo: Path
) -> None:
    """Without the library, the spec is refused when the notifiers are made
    (exit 2 from the command line), saying what to install."""
    monkeypatch.setitem(sys.modules, "apprise", None)  # what an absent package gives
    with pytest.raises(UsageError, match=r"pip install 'recovery-core\[apprise\]'"):
        make_notifiers(["apprise:json://127.0.0.1:9/"])
    code = (
        "import sys; sys.modules['apprise'] = None; "
        "from recovery_adapters.cli import main; "
        "sys.exit(main(['run', 'plan.json', '--notify', 'apprise:json://127.0.0.1:9/']))"
    )
    write_plan(repo / "plan.json", failing_plan())
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "pip install 'recovery-core[apprise]'" in done.stderr
    assert not (repo / ".recovery").exists()


# -- the registry --------------------------------------------------------------


def test_unknown_kind_lists_the_available_ones() -> None:
    with pytest.raises(UsageError) as caught:
        make_notifiers(["pager:42"])
    message = str(caught.value)
    assert "unknown notifier 'pager'" in message
    for kind in ("apprise", "command", "console", "inbox", "webhook"):
        assert kind in message


def test_builtin_kinds_come_from_the_entry_point_group() -> None:
    """Each built-in kind is declared in recovery_core.notifiers (so that a
    third-party package adds a kind the same way)."""
    declared = {ep.name: ep for ep in entry_points(group="recovery_core.notifiers")}
    for kind in ("apprise", "command", "console", "inbox", "webhook"):
        dist = declared[kind].dist
        assert dist is not None and dist.name == "recovery-core"
        assert declared[kind].load() is NOTIFIERS.get(kind)


class _Pager:
    channel = "pager"

    def __init__(self, arg: str) -> None:
        self.arg = arg

    def notify(self, notification: Notification) -> None:
        pass


def test_a_registered_kind_is_made_from_its_argument() -> None:
    NOTIFIERS.register("pager", _Pager)
    try:
        console, pager = make_notifiers(["console", "pager:ops-team"])
    finally:
        NOTIFIERS.unregister("pager")
    assert isinstance(console, ConsoleNotifier)
    assert isinstance(pager, _Pager) and isinstance(pager, Notifier)
    assert pager.arg == "ops-team"


# -- through the command line --------------------------------------------------


def failing_plan() -> dict[str, Any]:
    """One batch whose change breaks the unit tests."""
    return {
        "plan_id": "notify-plan",
        "batches": [
            {
                "batch_id": "1",
                "component": "app/calc.py",
                "actions": [write_file_action("generate", "app/calc.py", BUGGY_CALC)],
                "validation": [unit_tests_step()],
            }
        ],
    }


def notified_events(repo: Path) -> Iterator[Run.OperatorNotified]:
    app = RecoveryApp.open(f"sqlite:///{repo / '.recovery' / 'events.sqlite3'}")
    (run,) = app.runs()
    for event in app.history(run.run_id):
        if isinstance(event, Run.OperatorNotified):
            yield event


def test_cli_halt_writes_the_inbox_and_posts_the_webhook(repo: Path) -> None:
    """`recovery run --notify inbox:PATH --notify webhook:URL`: the halt (exit
    3) appends the notification to the inbox and posts the same JSON, signed;
    both deliveries are recorded. The notification has the run's state, the
    failure-log entry and the quarantine ref."""
    write_plan(repo / "plan.json", failing_plan())
    inbox = repo.parent / "ops" / "inbox.jsonl"
    with Receiver() as receiver:
        done = run_cli(
            "run",
            "plan.json",
            "--notify",
            f"inbox:{inbox}",
            "--notify",
            f"webhook:{receiver.url}",
            cwd=repo,
            env={"RECOVERY_WEBHOOK_SECRET": SECRET},
        )
    assert done.returncode == 3, done.stderr
    (line,) = inbox.read_text().splitlines()
    note = json.loads(line)
    (got,) = receiver.got
    assert json.loads(got.body) == note
    assert got.headers["x-recovery-signature"] == signature(SECRET, got.body)
    assert note["schema"] == SCHEMA
    assert note["batch_id"] == "1" and note["attempt"] == 1
    assert note["failure"]["step"] == "post_build_validation.unit_tests"
    assert note["quarantine_ref"].startswith("refs/recovery/")
    assert note["quarantine_ref"].endswith("/1/1/quarantine")
    assert note["run"]["state"] == "halted"
    assert note["run"]["batches"][0]["status"] == "failed"
    log = (repo / ".recovery" / "logs" / "bootstrap_errors.log").read_text()
    assert json.loads(log.splitlines()[-1]) == note["failure_log_entry"]
    assert note["open_decision"]["decisions"] == ["retry", "skip", "abort"]
    events = list(notified_events(repo))
    assert [(e.channel, e.delivered, e.error) for e in events] == [
        (f"inbox:{inbox}", True, None),
        (f"webhook:http://127.0.0.1:{receiver.server.server_address[1]}", True, None),
    ]


def test_cli_webhook_on_a_closed_port_still_halts_and_records_the_error(
    repo: Path,
) -> None:
    """A webhook nobody answers does not hide the failure: the run halts (exit
    3), the console still tells, and OperatorNotified records delivered=false
    with the error."""
    write_plan(repo / "plan.json", failing_plan())
    port = closed_port()
    done = run_cli(
        "run",
        "plan.json",
        "--notify",
        f"webhook:http://127.0.0.1:{port}/hook",
        "--notify",
        "console",
        cwd=repo,
    )
    assert done.returncode == 3, done.stderr
    assert "halted: batch 1 attempt 1 failed" in done.stderr
    status = json.loads(run_cli("status", "--json", cwd=repo).stdout)
    assert status["state"] == "halted"
    webhook, console = notified_events(repo)
    assert webhook.channel == f"webhook:http://127.0.0.1:{port}"
    assert webhook.delivered is False
    assert webhook.error is not None
    assert "gave up after 3 tries" in webhook.error
    assert "cannot connect" in webhook.error
    assert (console.channel, console.delivered) == ("console", True)


def test_cli_bad_notify_spec_exits_2_before_anything_is_written(repo: Path) -> None:
    write_plan(repo / "plan.json", failing_plan())
    done = run_cli("run", "plan.json", "--notify", "webhook:ftp://x/", cwd=repo)
    assert done.returncode == 2
    assert "http:// or https://" in done.stderr
    assert not (repo / ".recovery").exists()


@pytest.mark.parametrize("answer", ["fails", "hangs"])
def test_cli_webhook_that_fails_or_hangs_still_halts_and_records_why(
    repo: Path, answer: str
) -> None:
    """Through `recovery run`: a webhook that answers 500 every time, or one
    that hangs past the request timeout, is tried to its bound; the run still
    halts (exit 3), the command notifier beside it still delivers, and
    OperatorNotified records the webhook's error."""
    write_plan(repo / "plan.json", failing_plan())
    out = repo.parent / "from-command.json"
    command = f"{sys.executable} -c " + shlex.quote(
        f"import sys; open({str(out)!r}, 'w').write(sys.stdin.read())"
    )
    script, hang = ([500, 500], 0.0) if answer == "fails" else ([0, 0], 3.0)
    with Receiver(script, hang_s=hang) as receiver:
        done = run_cli(
            "run",
            "plan.json",
            "--notify",
            f"webhook:{receiver.url}",
            "--notify",
            f"command:{command}",
            cwd=repo,
            env={"RECOVERY_WEBHOOK_TRIES": "2", "RECOVERY_WEBHOOK_TIMEOUT_S": "1"},
        )
        tried = len(receiver.got)
    assert done.returncode == 3, done.stderr
    assert tried == 2
    webhook, by_command = notified_events(repo)
    assert webhook.delivered is False
    assert webhook.error is not None and "gave up after 2 tries" in webhook.error
    assert ("500" if answer == "fails" else "timed out") in webhook.error
    assert by_command.delivered is True, by_command.error
    assert json.loads(out.read_text())["schema"] == SCHEMA
