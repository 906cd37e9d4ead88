"""An example plugin for recovery-core: the ``example`` strategy (it proposes
putting back what the failed batch changed) and the ``example`` notifier kind
(``--notify example:PATH`` appends one line per halt to a file)."""

from recovery_example_plugin.notifier import ExampleNotifier, example_notifier
from recovery_example_plugin.strategy import ExampleStrategy

__all__ = ["ExampleNotifier", "ExampleStrategy", "example_notifier"]
