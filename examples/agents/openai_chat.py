"""An example agent for the ``architect-agent`` strategy that asks any
OpenAI-compatible chat-completions endpoint (a hosted service, a local Ollama
or vLLM) for a patch. Standard library only.

Settings, from the environment:

- ``RECOVERY_AGENT_BASE_URL``: the API's base URL, up to ``/v1`` (default
  ``https://api.openai.com/v1``; Ollama: ``http://127.0.0.1:11434/v1``);
- ``RECOVERY_AGENT_MODEL``: the model (default ``gpt-4o-mini``);
- ``OPENAI_API_KEY``: sent as a bearer token when set (a local server may
  need none);
- ``RECOVERY_AGENT_HTTP_TIMEOUT_S``: how long the request may take (default 120).

It reads the trigger from standard input (or the file ``RECOVERY_TRIGGER``
names), asks for a unified diff against the faulty files, and prints
``{"patch": ..., "analysis": ...}``; exit 0. Exit 1 when the answer holds no
diff, 2 when the endpoint cannot be reached or answers with an error.
recovery-core checks and pre-validates whatever it proposes.
"""

from __future__ import annotations

import json
import os
import re
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

_FENCE = re.compile(r"```(?:diff|patch)?[ \t]*\n(?P<body>.*?)```", re.S)
_MAX_FILE_CHARS = 20_000

SYSTEM = (
    "You fix failed code changes. You get a failed validation step, the change "
    "that caused it and the faulty files. Answer with one unified diff against "
    "the faulty files, as `git diff` prints it (paths a/<path> and b/<path>), "
    "in a ```diff block, then one short paragraph saying what was wrong. "
    "Change as little as needed; never touch .git/ or paths outside the project."
)


def read_trigger() -> dict[str, Any]:
    """The trigger: standard input, else the file ``RECOVERY_TRIGGER`` names."""
    text = sys.stdin.read()
    if not text.strip():
        text = Path(os.environ["RECOVERY_TRIGGER"]).read_text(encoding="utf-8")
    data = json.loads(text)
    assert isinstance(data, dict)
    return data


def prompt(trigger: dict[str, Any]) -> str:
    """What the model is told of the failure."""
    parts = [
        f"Step {trigger.get('step')} failed in {trigger.get('component') or '?'}.",
        f"Error: {trigger.get('error')}",
    ]
    if trigger.get("traceback"):
        parts.append(f"Output:\n{trigger['traceback']}")
    code = trigger.get("code_around_error")
    if isinstance(code, dict):
        numbered = "\n".join(
            f"{number:5d}  {line}"
            for number, line in enumerate(code["lines"], code["first_line"])
        )
        parts.append(f"Code around the error ({code['file']}):\n{numbered}")
    parts.append(f"The change that failed (git diff):\n{trigger.get('diff', '')}")
    for path, content in (trigger.get("files") or {}).items():
        if isinstance(content, str):
            parts.append(f"Faulty file {path}:\n{content[:_MAX_FILE_CHARS]}")
    return "\n\n".join(parts)


def ask(base_url: str, model: str, key: str, text: str, timeout_s: float) -> str:
    """The model's reply to ``text``."""
    body = {
        "model": model,
        "temperature": 0,
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": text},
        ],
    }
    if not base_url.startswith(("http://", "https://")):
        raise ValueError(f"the base URL must be http:// or https://, not {base_url!r}")
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(  # noqa: S310 - http(s) only, checked above
        base_url.rstrip("/") + "/chat/completions",
        data=json.dumps(body).encode(),
        headers=headers,
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
        data = json.loads(response.read())
    content = data["choices"][0]["message"]["content"]
    return str(content)


def split_reply(reply: str) -> tuple[str, str]:
    """The diff in the reply, and the rest of it as the analysis."""
    match = _FENCE.search(reply)
    if match is not None:
        analysis = (reply[: match.start()] + reply[match.end() :]).strip()
        return match["body"], analysis
    start = re.search(r"^(diff --git |--- )", reply, re.M)
    if start is None:
        return "", reply.strip()
    return reply[start.start() :], reply[: start.start()].strip()


def main() -> int:
    trigger = read_trigger()
    base_url = os.environ.get("RECOVERY_AGENT_BASE_URL", "https://api.openai.com/v1")
    model = os.environ.get("RECOVERY_AGENT_MODEL", "gpt-4o-mini")
    key = os.environ.get("OPENAI_API_KEY", "")
    timeout_s = float(os.environ.get("RECOVERY_AGENT_HTTP_TIMEOUT_S", "120"))
    try:
        reply = ask(base_url, model, key, prompt(trigger), timeout_s)
    except (urllib.error.URLError, OSError, ValueError, KeyError, IndexError) as exc:
        sys.stderr.write(f"openai_chat: {base_url}: {exc}\n")
        return 2
    patch, analysis = split_reply(reply)
    if not patch.strip():
        sys.stderr.write("openai_chat: the reply holds no diff\n")
        return 1
    if not patch.endswith("\n"):
        patch += "\n"
    sys.stdout.write(json.dumps({"patch": patch, "analysis": analysis}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
