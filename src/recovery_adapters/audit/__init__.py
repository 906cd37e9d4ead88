"""Audit adapters: a run's export (its events, a manifest and a git bundle of
its refs) and the check of one on a machine with neither the store nor the
repository."""

from recovery_adapters.audit.export import (
    ExportCheck,
    Exported,
    check_export,
    export_run,
)

__all__ = ["ExportCheck", "Exported", "check_export", "export_run"]
