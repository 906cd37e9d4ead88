"""Reading files as a snapshot commit has them, for the validation steps.

One ``git cat-file --batch`` process answers for any number of paths, so that the
cost of looking at the baseline follows the number of files a batch changed, not
the size of the repository.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Final

__all__ = ["GitReadError", "blob_id", "read_at"]

# The same protections as the git workspace's own calls: no fsmonitor daemon and
# no hooks run on behalf of a validation step.
_SAFE_CONFIG: Final = (
    "-c",
    "core.fsmonitor=false",
    "-c",
    f"core.hooksPath={os.devnull}",
)
_DEFAULT_TIMEOUT_S: Final = 120.0


class GitReadError(RuntimeError):
    """Git could not be asked (not installed, not a repository, timed out)."""


def blob_id(content: bytes) -> str:
    """The id git gives ``content`` as a blob: what ``git hash-object --no-filters``
    prints, computed here so that hashing a working file costs no process."""
    header = b"blob %d\0" % len(content)
    return hashlib.sha1(header + content, usedforsecurity=False).hexdigest()


def read_at(
    root: Path,
    commit: str,
    paths: Sequence[str],
    *,
    timeout_s: float | None = None,
) -> dict[str, bytes | None]:
    """The content of each of ``paths`` (relative to the top of the working tree
    ``root``, posix) in ``commit``; None for a path that is not a file there.

    Raises :class:`GitReadError` when git cannot answer at all.
    """
    if not paths:
        return {}
    # A path with a newline would break the line protocol; -z (git >= 2.38) is
    # asked for only then, so that older gits serve the usual case.
    nul = any("\n" in p for p in paths)
    requests = [f"{commit}:{p}".encode() for p in paths]
    payload = (b"\0" if nul else b"\n").join(requests) + (b"\0" if nul else b"\n")
    argv = ["git", *_SAFE_CONFIG, "cat-file", "--batch", *(["-z"] if nul else [])]
    try:
        done = subprocess.run(
            argv,
            cwd=root,
            input=payload,
            capture_output=True,
            timeout=_DEFAULT_TIMEOUT_S if timeout_s is None else timeout_s,
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},
            check=False,
        )
    except FileNotFoundError:
        raise GitReadError("git is not installed") from None
    except subprocess.TimeoutExpired:
        raise GitReadError(
            f"git cat-file did not answer within {timeout_s or _DEFAULT_TIMEOUT_S:.0f}s"
        ) from None
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip() or "no message"
        raise GitReadError(f"git cat-file failed in {root}: {message}")
    return dict(zip(paths, _parse_batch(done.stdout, requests), strict=True))


def _parse_batch(out: bytes, requests: Sequence[bytes]) -> list[bytes | None]:
    """Splits ``git cat-file --batch`` output into one answer per request."""
    answers: list[bytes | None] = []
    position = 0
    for request in requests:
        # The "missing" line echoes the request, which may hold spaces or even a
        # newline: match it whole rather than splitting the header on spaces.
        missing = request + b" missing\n"
        if out.startswith(missing, position):
            answers.append(None)
            position += len(missing)
            continue
        end = out.find(b"\n", position)
        if end < 0:
            raise GitReadError("git cat-file ended its output early")
        header = out[position:end].split(b" ")
        if len(header) != 3 or not header[2].isdigit():
            raise GitReadError(
                f"git cat-file answered {out[position:end][:200]!r} for "
                f"{request.decode(errors='replace')!r}"
            )
        size = int(header[2])
        content = out[end + 1 : end + 1 + size]
        position = end + 1 + size + 1
        answers.append(content if header[1] == b"blob" else None)
    return answers
