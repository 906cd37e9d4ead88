"""The adapters a runner gets when its host names none: the machine it runs on
(entry point group ``recovery_core.hosts``, name ``local``) and the projections
it keeps (group ``recovery_core.projections``, name ``files``: the plan file
and the failure log). ``recovery_adapters`` declares both; a host may register
its own, or pass them to :meth:`RecoveryApp.runner`."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Final

from recovery_core.ports import Projection, RunnerHost
from recovery_core.registry import Registry

__all__ = ["HOSTS", "PROJECTIONS", "default_host", "default_projections"]

ProjectionsFactory = Callable[
    [str | os.PathLike[str], str | os.PathLike[str] | None], Sequence[Projection]
]

HOSTS: Final = Registry[Callable[[], RunnerHost]](
    "runner host", "recovery_core.hosts", check=callable
)
PROJECTIONS: Final = Registry[ProjectionsFactory](
    "projections", "recovery_core.projections", check=callable
)


def default_host() -> RunnerHost:
    """The ``local`` runner host."""
    return HOSTS.get("local")()


def default_projections(
    workspace: str | os.PathLike[str], plan_path: str | os.PathLike[str] | None
) -> list[Projection]:
    """The ``files`` projections of a run in ``workspace`` of the plan at
    ``plan_path``."""
    return list(PROJECTIONS.get("files")(workspace, plan_path))
