"""The example plugin passes recovery-core's conformance kit: its strategy
and its notifier, each found by its entry point."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from recovery_example_plugin import ExampleNotifier, ExampleStrategy

from recovery_core import Notifier, RecoveryStrategy, testing


class TestExampleStrategy(testing.StrategyConformance):
    """The ``example`` strategy, on the kit's in-memory workspace."""

    registered_name = "example"
    proposes = True

    def make_strategy(self) -> RecoveryStrategy:
        return ExampleStrategy()


class TestExampleNotifier(testing.NotifierConformance):
    """The ``example`` notifier on a file; a file under a file cannot be
    written."""

    registered_kind = "example"

    def setUp(self) -> None:
        super().setUp()
        self.folder = Path(tempfile.mkdtemp(prefix="example-plugin-"))
        self.addCleanup(shutil.rmtree, self.folder, ignore_errors=True)

    def spec_argument(self) -> str:
        return str(self.folder / "halts.txt")

    def make_notifier(self) -> Notifier:
        return ExampleNotifier(self.spec_argument())

    def make_undeliverable_notifier(self) -> Notifier:
        (self.folder / "a-file").write_text("not a folder\n")
        return ExampleNotifier(self.folder / "a-file" / "halts.txt")

    def deliveries(self, notifier: Notifier) -> int:
        path = self.folder / "halts.txt"
        return len(path.read_text().splitlines()) if path.exists() else 0
