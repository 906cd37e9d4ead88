"""The auditor's tools: ``recovery verify`` (what it reads of a run's files
and git), a run's export (its events, a manifest and a git bundle of its refs)
and the check of one on a machine with neither the store nor the repository,
and the retirement of finished runs' refs."""

from recovery_adapters.audit.export import (
    ExportCheck,
    Exported,
    check_export,
    export_run,
)

__all__ = ["ExportCheck", "Exported", "check_export", "export_run"]
