"""The ``surface`` step on real code: standard-library modules (and their own
unittest files) copied into a real git repository, changed the way a batch
would change them, and compared against a real baseline snapshot."""

from __future__ import annotations

import ast
import json
import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from recovery_adapters import GitWorkspace
from recovery_adapters.validation import surface
from recovery_adapters.validation.surface import (
    CACHE_DIR,
    FileSurface,
    extract_surface,
    surface_step,
)
from recovery_core import RecoveryApp
from recovery_core.plan import Batch, Identifier, ModuleName, Step, StepKind, parse_plan
from recovery_core.ports import StepContext, StepOutcome
from recovery_core.runner import Halted
from support import STDLIB, copy_stdlib, git

COPIED = ("shlex", "textwrap", "colorsys", "fnmatch")
PACKAGE_INIT = (
    '"""Standard-library modules, copied."""\n\nfrom .textwrap import dedent, wrap\n'
)


@pytest.fixture
def stdrepo(tmp_path: Path) -> Path:
    """A git repository holding the package ``stdcopy`` (shlex, textwrap, colorsys
    and fnmatch from this Python's standard library) and the standard library's
    own unittest files for them under ``tests/``, in one commit."""
    root = tmp_path / "work"
    copy_stdlib(root, COPIED, package_init=PACKAGE_INIT)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "standard library copies")
    return root


class Attempt:
    """A batch's attempt in ``root``: the baseline snapshot is taken on creation;
    :meth:`check` runs the surface step on what changed since."""

    def __init__(self, root: Path, attempt: int = 1) -> None:
        self.root = root
        self.workspace = GitWorkspace(root)
        self.workspace.prepare()
        self.baseline: str | None = self.workspace.snapshot(
            run_id="run-1", batch_id="b1", attempt=attempt
        )

    def context(self, expected: tuple[str, ...] = ()) -> StepContext:
        """The context the runner would give the step now."""
        return StepContext(
            root=self.workspace.root,
            run_id="run-1",
            batch=Batch(batch_id=Identifier("b1"), expected_surface_changes=expected),
            attempt=1,
            baseline=self.baseline,
            changed_files=self.workspace.changed_files(self.baseline),
            phase="post_build_validation",
            workspace=self.workspace,
        )

    def check(
        self, modules: tuple[str, ...] = ("stdcopy",), expected: tuple[str, ...] = ()
    ) -> StepOutcome:
        """Runs the surface step on ``modules``."""
        return surface_step(surface_of(*modules), self.context(expected))


def surface_of(*modules: str) -> Step:
    """A surface step on ``modules``."""
    return Step(
        name=Identifier("functional_surface"),
        kind=StepKind("surface"),
        modules=tuple(ModuleName(m) for m in modules),
    )


def replace_once(path: Path, old: str, new: str) -> None:
    """Replaces the one occurrence of ``old`` in the file ``path``."""
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {path}"
    path.write_text(text.replace(old, new))


def definition(path: Path, qualname: str) -> ast.FunctionDef | ast.ClassDef:
    """The def or class named ``qualname`` (``Class.method``) in the file."""
    body: list[ast.stmt] = ast.parse(path.read_text()).body
    found: ast.FunctionDef | ast.ClassDef | None = None
    for part in qualname.split("."):
        found = next(
            n
            for n in body
            if isinstance(n, ast.FunctionDef | ast.ClassDef) and n.name == part
        )
        body = found.body
    assert found is not None
    return found


def line_of(path: Path, qualname: str) -> int:
    """The line of the def or class ``qualname`` in the file."""
    return definition(path, qualname).lineno


def remove_definition(path: Path, qualname: str) -> int:
    """Deletes the def or class ``qualname`` (with its decorators) from the file;
    returns the line it was at."""
    node = definition(path, qualname)
    first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    lines = path.read_text().splitlines(keepends=True)
    assert node.end_lineno is not None
    del lines[first - 1 : node.end_lineno]
    path.write_text("".join(lines))
    return node.lineno


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The file names the surface step parses, in order."""
    seen: list[str] = []

    def counting(source: bytes, filename: str = "<unknown>") -> FileSurface:
        seen.append(filename)
        return extract_surface(source, filename)

    monkeypatch.setattr(surface, "extract_surface", counting)
    yield seen


def cache_entries(root: Path) -> list[Path]:
    """The entries of the workspace's surface cache."""
    folder = root / CACHE_DIR
    return sorted(folder.rglob("*.json")) if folder.exists() else []


def test_removed_function_fails_naming_the_symbol_file_and_line(
    stdrepo: Path,
) -> None:
    """A public function removed from a module fails the step; the error's first
    line (the failure reason) names the qualified symbol, says it was removed
    and where it was; the component is that file and line."""
    attempt = Attempt(stdrepo)
    fnmatch_py = stdrepo / "stdcopy" / "fnmatch.py"
    line = remove_definition(fnmatch_py, "fnmatchcase")
    outcome = attempt.check()
    assert not outcome.passed
    first_line = outcome.error.splitlines()[0]
    assert (
        f"stdcopy.fnmatch.fnmatchcase: removed (was at stdcopy/fnmatch.py:{line})"
        in first_line
    )
    assert outcome.component == f"stdcopy/fnmatch.py:{line}"
    assert "expected_surface_changes" in outcome.error
    assert "unexpected: stdcopy.fnmatch.fnmatchcase: removed" in outcome.output_tail


def test_changed_signature_fails_with_before_and_after(stdrepo: Path) -> None:
    """A parameter added to a public function fails the step, quoting the
    signature before and after and the line of the function now."""
    attempt = Attempt(stdrepo)
    shlex_py = stdrepo / "stdcopy" / "shlex.py"
    replace_once(
        shlex_py,
        "def split(s, comments=False, posix=True):",
        "def split(s, comments=False, posix=True, punctuation_chars=False):",
    )
    outcome = attempt.check()
    assert not outcome.passed
    line = line_of(shlex_py, "split")
    assert outcome.error.splitlines()[0] == (
        "surface changed: stdcopy.shlex.split: signature "
        "`(s, comments=False, posix=True)` -> "
        "`(s, comments=False, posix=True, punctuation_chars=False)` "
        f"(stdcopy/shlex.py:{line})"
    )
    assert outcome.component == f"stdcopy/shlex.py:{line}"


def test_annotation_and_default_changes_are_signature_changes(
    stdrepo: Path,
) -> None:
    """Annotations and default values are part of a signature; reformatting the
    same signature is not a change."""
    attempt = Attempt(stdrepo)
    textwrap_py = stdrepo / "stdcopy" / "textwrap.py"
    replace_once(
        textwrap_py, "def dedent(text):", "def dedent(\n    text ,\n):"
    )  # layout only
    replace_once(
        textwrap_py,
        "def indent(text, prefix, predicate=None):",
        "def indent(text: str, prefix: str, predicate=bool) -> str:",
    )
    outcome = attempt.check()
    assert not outcome.passed
    assert "stdcopy.textwrap.dedent" not in outcome.error
    assert (
        "stdcopy.textwrap.indent: signature `(text, prefix, predicate=None)` -> "
        "`(text: str, prefix: str, predicate=bool) -> str`"
    ) in outcome.error


def test_method_removed_from_a_class_fails(stdrepo: Path) -> None:
    """A public method removed from a class fails the step, named with its class;
    the class and its other methods are not reported."""
    attempt = Attempt(stdrepo)
    shlex_py = stdrepo / "stdcopy" / "shlex.py"
    line = remove_definition(shlex_py, "shlex.push_source")
    outcome = attempt.check()
    assert not outcome.passed
    unexpected = outcome.error.splitlines()[1:-1]
    assert unexpected == [
        f"  stdcopy.shlex.shlex.push_source: removed (was at stdcopy/shlex.py:{line})"
    ]


def test_method_that_becomes_async_or_static_fails(stdrepo: Path) -> None:
    """Becoming async, or turning from a method into a staticmethod, changes how a
    caller must call it: both fail, each said plainly."""
    attempt = Attempt(stdrepo)
    shlex_py = stdrepo / "stdcopy" / "shlex.py"
    replace_once(shlex_py, "def quote(s):", "async def quote(s):")
    replace_once(
        shlex_py,
        "    def push_token(self, tok):",
        "    @staticmethod\n    def push_token(self, tok):",
    )
    outcome = attempt.check()
    assert not outcome.passed
    assert "stdcopy.shlex.quote: became async" in outcome.error
    assert (
        "stdcopy.shlex.shlex.push_token: was a method, now a staticmethod"
        in outcome.error
    )


def test_expected_surface_changes_let_a_removal_pass(stdrepo: Path) -> None:
    """A removal the batch declares in expected_surface_changes passes and is
    reported as expected; a declared class covers its methods."""
    attempt = Attempt(stdrepo)
    remove_definition(stdrepo / "stdcopy" / "fnmatch.py", "fnmatchcase")
    remove_definition(stdrepo / "stdcopy" / "shlex.py", "shlex.push_source")
    refused = attempt.check(expected=("stdcopy.fnmatch.fnmatchcase",))
    assert not refused.passed
    assert "push_source" in refused.error
    assert "fnmatchcase" not in refused.error
    outcome = attempt.check(
        expected=("stdcopy.fnmatch.fnmatchcase", "stdcopy.shlex.shlex")
    )
    assert outcome.passed, outcome.error
    assert "expected:   stdcopy.fnmatch.fnmatchcase: removed" in outcome.output_tail
    assert "expected:   stdcopy.shlex.shlex.push_source: removed" in outcome.output_tail


def test_additions_pass_and_are_reported(stdrepo: Path) -> None:
    """A new public method and a new module pass; each is reported with its
    signature, a new class once (its methods come with it)."""
    attempt = Attempt(stdrepo)
    replace_once(
        stdrepo / "stdcopy" / "textwrap.py",
        "    def fill(self, text):",
        "    def unwrap(self, text: str, *, width: int = 70) -> str:\n"
        "        return ' '.join(text.split())\n\n"
        "    def fill(self, text):",
    )
    (stdrepo / "stdcopy" / "extra.py").write_text(
        "class Thing:\n"
        "    def __init__(self, name: str) -> None:\n"
        "        self.name = name\n\n"
        "    async def fetch(self) -> bytes:\n"
        "        return b''\n"
    )
    outcome = attempt.check()
    assert outcome.passed, outcome.error
    assert (
        "added:      stdcopy.textwrap.TextWrapper.unwrap: added method "
        "`(self, text: str, *, width: int=70) -> str`"
    ) in outcome.output_tail
    assert "added:      stdcopy.extra.Thing: added class `()` (stdcopy/extra.py:1)" in (
        outcome.output_tail
    )
    assert "Thing.fetch" not in outcome.output_tail


def test_deleted_module_fails_for_all_its_symbols(stdrepo: Path) -> None:
    """Deleting a module file removes every public name it had (those in its
    __all__), each reported with the line it was at; declaring the module as
    expected lets the deletion pass."""
    attempt = Attempt(stdrepo)
    colorsys_py = stdrepo / "stdcopy" / "colorsys.py"
    exported = [
        "rgb_to_yiq",
        "yiq_to_rgb",
        "rgb_to_hls",
        "hls_to_rgb",
        "rgb_to_hsv",
        "hsv_to_rgb",
    ]
    lines = {name: line_of(colorsys_py, name) for name in exported}
    colorsys_py.unlink()
    outcome = attempt.check()
    assert not outcome.passed
    listed = outcome.error.splitlines()[1:-1]
    assert sorted(listed) == sorted(
        f"  stdcopy.colorsys.{name}: removed (was at stdcopy/colorsys.py:{line})"
        for name, line in lines.items()
    )
    assert attempt.check(expected=("stdcopy.colorsys",)).passed


def test_name_left_out_of_all_fails_and_a_name_added_to_it_passes(
    stdrepo: Path,
) -> None:
    """``__all__`` decides what a module exports: a name dropped from it fails
    (the function still exists but is no longer public); a name added to it is
    reported as an addition."""
    attempt = Attempt(stdrepo)
    textwrap_py = stdrepo / "stdcopy" / "textwrap.py"
    replace_once(
        textwrap_py,
        "__all__ = ['TextWrapper', 'wrap', 'fill', 'dedent', 'indent', 'shorten']",
        "__all__ = ['TextWrapper', 'wrap', 'fill', 'dedent', 'indent']",
    )
    outcome = attempt.check()
    assert not outcome.passed
    assert outcome.error.splitlines()[0] == (
        "surface changed: stdcopy.textwrap.shorten: no longer exported (left out "
        "of __all__) (stdcopy/textwrap.py:10)"
    )

    replace_once(
        textwrap_py,
        "__all__ = ['TextWrapper', 'wrap', 'fill', 'dedent', 'indent']",
        "__all__ = ['TextWrapper', 'wrap', 'fill', 'dedent', 'indent', 'shorten']\n"
        "__all__ += ['unwrap']\n\n\ndef unwrap(text):\n    return text\n",
    )
    outcome = attempt.check()
    assert outcome.passed, outcome.error
    assert "stdcopy.textwrap.unwrap: added function `(text)`" in outcome.output_tail
    assert "stdcopy.textwrap.__all__: added 'unwrap'" in outcome.output_tail


def test_removed_reexport_in_a_package_init_fails(stdrepo: Path) -> None:
    """In a package's ``__init__.py``, a name imported from the package itself is
    part of the package's surface: dropping the import fails."""
    attempt = Attempt(stdrepo)
    replace_once(
        stdrepo / "stdcopy" / "__init__.py",
        "from .textwrap import dedent, wrap",
        "from .textwrap import dedent",
    )
    outcome = attempt.check()
    assert not outcome.passed
    assert outcome.error.splitlines()[0] == (
        "surface changed: stdcopy.wrap: removed (was at stdcopy/__init__.py:3)"
    )


def test_function_moved_to_another_module_and_imported_back_passes(
    stdrepo: Path,
) -> None:
    """A function moved into a private module and imported back under its name
    is still there: the step passes and reports the move."""
    attempt = Attempt(stdrepo)
    fnmatch_py = stdrepo / "stdcopy" / "fnmatch.py"
    node = definition(fnmatch_py, "translate")
    source = fnmatch_py.read_text()
    moved = "\n".join(source.splitlines()[node.lineno - 1 : node.end_lineno])
    remove_definition(fnmatch_py, "translate")
    replace_once(
        fnmatch_py,
        "import functools\n",
        "import functools\n\nfrom ._translate import translate\n",
    )
    (stdrepo / "stdcopy" / "_translate.py").write_text(f"import re\n\n{moved}\n")
    outcome = attempt.check()
    assert outcome.passed, outcome.error
    assert (
        "moved:      stdcopy.fnmatch.translate: now imported from ._translate"
        in outcome.output_tail
    )
    assert "added:      stdcopy._translate.translate" in outcome.output_tail


def test_unparsable_changed_file_fails_with_the_syntax_error_location(
    stdrepo: Path,
) -> None:
    """A changed module that does not parse has no surface to vouch for: the step
    fails with the SyntaxError and its file, line and column."""
    attempt = Attempt(stdrepo)
    shlex_py = stdrepo / "stdcopy" / "shlex.py"
    line = line_of(shlex_py, "join")
    replace_once(shlex_py, "def join(split_command):", "def join(split_command:")
    outcome = attempt.check()
    assert not outcome.passed
    assert outcome.error.startswith(
        "surface not checked: stdcopy.shlex: cannot read its surface: SyntaxError: "
    )
    assert f"(stdcopy/shlex.py:{line}:" in outcome.error
    assert outcome.component == f"stdcopy/shlex.py:{line}"


def test_changes_outside_the_named_modules_are_not_examined(
    stdrepo: Path, parses: list[str]
) -> None:
    """Changed files outside the step's modules (another module of the package,
    the tests) are not read at all."""
    attempt = Attempt(stdrepo)
    remove_definition(stdrepo / "stdcopy" / "shlex.py", "split")
    remove_definition(stdrepo / "tests" / "test_shlex.py", "ShlexTest")
    outcome = attempt.check(modules=("stdcopy.textwrap", "stdcopy.fnmatch"))
    assert outcome.passed, outcome.error
    assert parses == []
    assert "0 changed file(s) examined" in outcome.output_tail


def test_module_that_is_not_in_the_workspace_fails(stdrepo: Path) -> None:
    """A module name that matches no file (a typo in the plan) fails rather than
    passing a check that looked at nothing."""
    attempt = Attempt(stdrepo)
    outcome = attempt.check(modules=("stdcopy", "stdcopy.textwarp"))
    assert not outcome.passed
    assert outcome.error.splitlines()[0] == (
        "surface not checked: stdcopy.textwarp: not in the workspace (no "
        "stdcopy/textwarp.py or stdcopy/textwarp/, at the top or below src/)"
    )


def test_src_layout_modules_are_found(tmp_path: Path) -> None:
    """A module below ``src/`` is found by its dotted name."""
    root = tmp_path / "srcrepo"
    (root / "src" / "tools").mkdir(parents=True)
    (root / "src" / "tools" / "__init__.py").write_text("")
    shutil.copyfile(STDLIB / "shlex.py", root / "src" / "tools" / "shlex.py")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "src layout")
    attempt = Attempt(root)
    remove_definition(root / "src" / "tools" / "shlex.py", "quote")
    outcome = attempt.check(modules=("tools",))
    assert not outcome.passed
    assert "tools.shlex.quote: removed (was at src/tools/shlex.py:" in outcome.error


def test_no_baseline_fails_closed(stdrepo: Path) -> None:
    """Without a baseline snapshot there is nothing to compare with: the step
    fails and says why, rather than passing unchecked."""
    attempt = Attempt(stdrepo)
    attempt.baseline = None
    outcome = attempt.check()
    assert not outcome.passed
    assert "no baseline snapshot" in outcome.error


def test_only_changed_files_are_parsed_and_cached(
    stdrepo: Path, parses: list[str]
) -> None:
    """Only the changed file is parsed, once as it was and once as it is; the
    cache gets exactly those two entries, named by their git blob ids; the
    unchanged modules and tests are never read."""
    attempt = Attempt(stdrepo)
    shlex_py = stdrepo / "stdcopy" / "shlex.py"
    before = shlex_py.read_bytes()
    replace_once(shlex_py, "def quote(s):", "def quote(s, /):")
    outcome = attempt.check()
    assert not outcome.passed
    assert parses == ["stdcopy/shlex.py", "stdcopy/shlex.py"]
    keys = {p.parent.name + p.stem for p in cache_entries(stdrepo)}
    assert keys == {surface.blob_id(before), surface.blob_id(shlex_py.read_bytes())}
    assert (
        surface.blob_id(before)
        == git(stdrepo, "rev-parse", "HEAD:stdcopy/shlex.py").strip()
    )
    assert surface.blob_id(shlex_py.read_bytes()) == (
        git(stdrepo, "hash-object", "--no-filters", "stdcopy/shlex.py").strip()
    )
    assert "1 changed file(s) examined (2 parsed, 0 from the cache)" in (
        outcome.output_tail
    )
    assert git(stdrepo, "status", "--porcelain", "--", ".recovery") == ""


def test_warm_cache_parses_nothing_new(stdrepo: Path, parses: list[str]) -> None:
    """Run again (as a retry or a new process would), the step parses nothing: the
    surfaces come from the cache on disk, and the outcome is the same."""
    attempt = Attempt(stdrepo)
    replace_once(
        stdrepo / "stdcopy" / "textwrap.py",
        "def shorten(text, width, **kwargs):",
        "def shorten(text, width, *, placeholder=' [...]', **kwargs):",
    )
    (stdrepo / "stdcopy" / "more.py").write_text("def more(): ...\n")
    cold = attempt.check()
    assert len(parses) == 3
    warm = attempt.check()
    assert len(parses) == 3
    assert (warm.passed, warm.error, warm.component) == (
        cold.passed,
        cold.error,
        cold.component,
    )
    assert "(0 parsed, 3 from the cache)" in warm.output_tail


def test_content_seen_in_an_earlier_batch_is_not_parsed_again(
    stdrepo: Path, parses: list[str]
) -> None:
    """What a batch leaves behind is the next batch's baseline: its surface is
    already cached, so the next batch parses only its own new content."""
    first = Attempt(stdrepo, attempt=1)
    textwrap_py = stdrepo / "stdcopy" / "textwrap.py"
    replace_once(
        textwrap_py,
        "def fill(text, width=70, **kwargs):",
        "def fill(text, width=72, **kwargs):",
    )
    first.check(expected=("stdcopy.textwrap.fill",))
    assert len(parses) == 2
    second = Attempt(stdrepo, attempt=2)
    replace_once(
        textwrap_py,
        "def fill(text, width=72, **kwargs):",
        "def fill(text, width=80, **kwargs):",
    )
    outcome = second.check(expected=("stdcopy.textwrap.fill",))
    assert outcome.passed, outcome.error
    assert len(parses) == 3


def test_corrupt_cache_entries_are_ignored_and_recomputed(
    stdrepo: Path, parses: list[str]
) -> None:
    """A cache entry that is not JSON, or JSON of the wrong shape, is treated as
    missing: the file is parsed again, the outcome is unchanged, and the entry is
    rewritten whole."""
    attempt = Attempt(stdrepo)
    remove_definition(stdrepo / "stdcopy" / "fnmatch.py", "filter")
    cold = attempt.check()
    entries = cache_entries(stdrepo)
    assert len(entries) == 2
    entries[0].write_text("{not json")
    entries[1].write_text(json.dumps({"format": 1, "blob": "x", "surface": []}))
    parses.clear()
    again = attempt.check()
    assert len(parses) == 2
    assert (again.passed, again.error) == (cold.passed, cold.error)
    for entry in entries:
        data = json.loads(entry.read_text())
        assert data["blob"] == entry.parent.name + entry.stem
    parses.clear()
    attempt.check()
    assert parses == []


def test_surface_step_in_a_run_halts_the_batch_with_the_symbol(
    stdrepo: Path,
) -> None:
    """Registered as the ``surface`` kind of a runner, the step gets the batch's
    snapshot and changed files from the real runner: a removed method halts the
    batch, and the recorded failure names the symbol."""
    plan = parse_plan(
        {
            "plan_id": "surface-plan",
            "batches": [
                {
                    "batch_id": "refactor",
                    "expected_surface_changes": ["stdcopy.fnmatch.filter"],
                    "validation": [
                        {
                            "name": "functional_surface",
                            "kind": "surface",
                            "modules": ["stdcopy"],
                        }
                    ],
                }
            ],
        }
    )
    app = RecoveryApp.open("memory://")
    runner = app.runner(
        plan,
        workspace=GitWorkspace(stdrepo),
        step_runners={"surface": surface_step},
    )
    with runner.batch("refactor") as session:
        remove_definition(stdrepo / "stdcopy" / "fnmatch.py", "filter")
        remove_definition(stdrepo / "stdcopy" / "textwrap.py", "TextWrapper.fill")
    outcome = session.outcome
    assert isinstance(outcome, Halted)
    failure = outcome.failure
    assert failure.step == "functional_surface"
    assert failure.failure_reason is not None
    assert "stdcopy.textwrap.TextWrapper.fill: removed" in failure.failure_reason, (
        failure.failure_reason
    )
    assert "stdcopy.fnmatch.filter" not in failure.error
    assert failure.component.startswith("stdcopy/textwrap.py:")


def _children_running(what: str) -> list[int]:
    """The pids of this process's children whose command line holds ``what``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and what.encode() in command:
            found.append(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_baseline_reader_survives_a_killed_git_process(stdrepo: Path) -> None:
    """The workspace's long-lived ``git cat-file`` that reads the baseline is
    replaced when it dies between steps: the next step still gets the right
    answer."""
    others = set(_children_running("cat-file --batch"))
    attempt = Attempt(stdrepo)
    assert attempt.baseline is not None
    remove_definition(stdrepo / "stdcopy" / "fnmatch.py", "filter")
    first = attempt.check()
    readers = set(_children_running("cat-file --batch")) - others
    assert len(readers) == 1, readers
    (killed,) = readers
    os.kill(killed, signal.SIGKILL)
    again = attempt.check()
    assert (again.passed, again.error) == (first.passed, first.error)
    replaced = set(_children_running("cat-file --batch")) - others
    assert len(replaced) == 1 and killed not in replaced


def test_baseline_paths_with_spaces_and_newlines_are_read(stdrepo: Path) -> None:
    """Odd file names are read from the baseline exactly; a path absent from it
    is None."""
    odd = ["stdcopy/two words.py", "stdcopy/new\nline.py", "stdcopy/x missing.py"]
    for number, name in enumerate(odd):
        (stdrepo / name).write_text(f"VALUE = {number}\n")
    git(stdrepo, "add", "-A")
    git(stdrepo, "commit", "-q", "-m", "odd names")
    head = git(stdrepo, "rev-parse", "HEAD").strip()
    names = [*odd, "stdcopy/absent.py", "stdcopy"]
    workspace = GitWorkspace(stdrepo)
    found = workspace.read(head, names)
    assert found == {
        "stdcopy/two words.py": b"VALUE = 0\n",
        "stdcopy/new\nline.py": b"VALUE = 1\n",
        "stdcopy/x missing.py": b"VALUE = 2\n",
        "stdcopy/absent.py": None,
        "stdcopy": None,
    }
    assert workspace.read(head, odd[:1]) == {odd[0]: b"VALUE = 0\n"}


def test_baseline_that_is_not_a_commit_fails_the_step(stdrepo: Path) -> None:
    """A baseline id that names no commit is an error, not a baseline where
    every file is new."""
    attempt = Attempt(stdrepo)
    remove_definition(stdrepo / "stdcopy" / "fnmatch.py", "filter")
    context = attrs.evolve(attempt.context(), baseline="0" * 40)
    outcome = surface_step(surface_of("stdcopy"), context)
    assert not outcome.passed
    assert outcome.error.startswith(f"cannot read the baseline {'0' * 12}: ")
    assert "is not a commit" in outcome.error
