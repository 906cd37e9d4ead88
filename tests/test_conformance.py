"""The conformance kit (:mod:`recovery_core.testing`) run on the built-in
strategies and notifiers, each on the real thing: ``noop`` on the in-memory
workspace, ``manual-git`` on a ``GitWorkspace`` in a new git repository,
``architect-agent`` on the in-memory workspace (it asks git of nothing but the
ports, so it works, without proposing, where there is no sandbox), the
console on a stream, the inbox on a file, the command notifier with a real
program, and the webhook against an HTTP server on 127.0.0.1."""

from __future__ import annotations

import io
import os
import shlex
import shutil
import socket
import sys
import tempfile
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from recovery_adapters import (
    ArchitectAgentStrategy,
    CommandNotifier,
    ConsoleNotifier,
    GitWorkspace,
    InboxNotifier,
    ManualGitStrategy,
    WebhookNotifier,
)
from recovery_core import NoopStrategy, Notifier, RecoveryStrategy, Workspace, testing
from support import git


class TestNoop(testing.StrategyConformance):
    """``noop`` on the in-memory workspace."""

    registered_name = "noop"
    proposes = False

    def make_strategy(self) -> RecoveryStrategy:
        return NoopStrategy()


class TestManualGit(testing.StrategyConformance):
    """``manual-git`` on a GitWorkspace of a new repository per workspace."""

    registered_name = "manual-git"
    proposes = False

    def make_workspace(self) -> Workspace:
        root = Path(tempfile.mkdtemp(prefix="conformance-git-"))
        self.addCleanup(shutil.rmtree, root, ignore_errors=True)
        git(root, "init", "-q", "-b", "main")
        git(
            root,
            "-c",
            "user.name=Test",
            "-c",
            "user.email=test@example.com",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "initial",
        )
        workspace = GitWorkspace(root)
        self.addCleanup(workspace.close)
        return workspace

    def write_files(
        self, workspace: Workspace, files: Mapping[str, str | None]
    ) -> None:
        for name, text in files.items():
            path = workspace.root / name
            if text is None:
                path.unlink(missing_ok=True)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")

    def make_strategy(self) -> RecoveryStrategy:
        return ManualGitStrategy()


class TestArchitectAgentWithoutSandbox(testing.StrategyConformance):
    """``architect-agent`` on the in-memory workspace, which has no sandbox:
    it quarantines through the port and says why it proposes nothing."""

    registered_name = "architect-agent"
    proposes = False

    def make_strategy(self) -> RecoveryStrategy:
        return ArchitectAgentStrategy(agent=("false",))

    def test_says_the_workspace_has_no_sandbox(self) -> None:
        context = self.failure_context()
        assert context.workspace.sandbox() is None
        outcome = self.answer(context)
        assert "has no sandbox" in outcome.analysis
        assert outcome.quarantine is not None
        assert outcome.quarantine.files == context.failure.changed_files
        assert context.workspace.changed_files(context.baseline) == ()


class _ClosedStream(io.StringIO):
    """A terminal that went away."""

    def __init__(self) -> None:
        super().__init__()
        self.close()


class TestConsole(testing.NotifierConformance):
    """The console notifier on a stream; a closed stream cannot be written."""

    registered_kind = "console"

    def make_notifier(self) -> Notifier:
        self.stream = io.StringIO()
        return ConsoleNotifier(self.stream)

    def make_undeliverable_notifier(self) -> Notifier:
        return ConsoleNotifier(_ClosedStream())

    def deliveries(self, notifier: Notifier) -> int:
        return self.stream.getvalue().count("== run ")


class _Folder(testing.NotifierConformance):
    """A notifier kit with a temporary folder of its own."""

    def setUp(self) -> None:
        super().setUp()
        self.folder = Path(tempfile.mkdtemp(prefix="conformance-"))
        self.addCleanup(shutil.rmtree, self.folder, ignore_errors=True)

    def lines(self, name: str) -> int:
        path = self.folder / name
        return len(path.read_bytes().splitlines()) if path.exists() else 0


class TestInbox(_Folder):
    """The inbox notifier; an inbox whose folder is a file cannot be written."""

    registered_kind = "inbox"

    def spec_argument(self) -> str:
        return str(self.folder / "inbox" / "halts.jsonl")

    def make_notifier(self) -> Notifier:
        return InboxNotifier(self.spec_argument())

    def make_undeliverable_notifier(self) -> Notifier:
        (self.folder / "a-file").write_text("not a folder\n")
        return InboxNotifier(self.folder / "a-file" / "halts.jsonl")

    def deliveries(self, notifier: Notifier) -> int:
        return self.lines("inbox/halts.jsonl")


APPEND = (
    "import sys; data = sys.stdin.buffer.read(); "
    "open(sys.argv[1], 'ab').write(data.rstrip(b'\\n') + b'\\n')"
)


class TestCommand(_Folder):
    """The command notifier with a real program that appends what it reads;
    a program that exits 1 did not deliver."""

    registered_kind = "command"

    def argv(self) -> list[str]:
        return [sys.executable, "-c", APPEND, str(self.folder / "received.jsonl")]

    def spec_argument(self) -> str:
        return shlex.join(self.argv())

    def make_notifier(self) -> Notifier:
        return CommandNotifier(self.argv())

    def make_undeliverable_notifier(self) -> Notifier:
        return CommandNotifier([sys.executable, "-c", "raise SystemExit(1)"])

    def deliveries(self, notifier: Notifier) -> int:
        return self.lines("received.jsonl")


class _Receiver:
    """An HTTP server on 127.0.0.1 that counts the POSTs it answers 200."""

    def __init__(self) -> None:
        self.posts = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.posts += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class TestWebhook(testing.NotifierConformance):
    """The webhook notifier against a local server; a port nothing listens on
    does not deliver (one try)."""

    registered_kind = "webhook"

    def setUp(self) -> None:
        super().setUp()
        for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
            if name in os.environ:
                self.addCleanup(os.environ.__setitem__, name, os.environ.pop(name))
        self.receiver = _Receiver()
        self.addCleanup(self.receiver.close)

    def spec_argument(self) -> str:
        return self.receiver.url

    def make_notifier(self) -> Notifier:
        return WebhookNotifier(self.receiver.url, timeout_s=10.0)

    def make_undeliverable_notifier(self) -> Notifier:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        return WebhookNotifier(f"http://127.0.0.1:{port}/hook", tries=1, timeout_s=2.0)

    def deliveries(self, notifier: Notifier) -> int:
        return self.receiver.posts
