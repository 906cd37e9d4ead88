"""The ``surface`` step: the public API of the named modules did not change
unexpectedly.

What counts as the public surface of a module, read statically with :mod:`ast`
(the code is never imported or run):

- module-level functions and classes, with their signatures (parameters,
  defaults and annotations, as :func:`ast.unparse` writes them, so that
  reformatting changes nothing), whether they are ``async``, and for a class its
  decorators, bases and keywords;
- in a class, its methods (with their kind: method, classmethod, staticmethod,
  property, abstract), nested classes and class-level attributes (with their
  annotation, and whether they have a default: a dataclass or attrs field's
  default is part of the constructor);
- module-level variables (presence and annotation; values are not compared);
- ``__all__``; when a module has a literal ``__all__``, only the names it lists are
  public at module level; in a package's ``__init__.py``, names imported from the
  package itself (``from .core import run``) are re-exports, and so is any
  ``import x as x`` / ``from m import y as y`` anywhere.

A name is private when it starts with ``_``, except dunder methods and functions
(``__init__``, ``__call__``, a module's ``__getattr__``), which are public; dunder
variables (``__slots__``, ``__version__``) are not surface. Private classes are not
looked into. Modules are not private by name: a package often implements its
public classes in ``_impl.py`` and re-exports them, so the names of every ``.py``
file below a named module count, qualified by that file's own module
(``app._impl.Engine``). Decorators on functions are not compared (most are
instrumentation: caching, logging, tracing), except the ones that change how a
method is called (``staticmethod``, ``classmethod``, ``property`` and its
setter and deleter, ``abstractmethod``). What is defined under
``if TYPE_CHECKING:`` or ``if __name__ == "__main__":`` does not exist when the
module is imported, so it does not count; both branches of other ``if`` and
``try`` statements do, the later definition winning.

A dotted module name ``a.b`` is the file ``a/b.py`` or every ``.py`` file below the
folder ``a/b/``, at the top of the workspace or below ``src/`` (the src layout).
A named module that is nowhere (a typo in the plan) fails the step rather than
passing a check that looked at nothing.

Only the files the batch changed that lie under the named modules are read: an
unchanged file has an unchanged surface. Each changed file is compared with its
content in the baseline snapshot (``StepContext.baseline``, a commit), read
through the workspace (``StepContext.workspace.read``; for git, its one
long-lived ``git cat-file --batch``): a file absent
from the baseline is all additions, a deleted file is all removals. Without a
baseline the step fails: it cannot vouch for what it could not compare.
Removed or changed public names fail the step unless the batch lists them in
``expected_surface_changes`` (a listed class or module covers everything in it);
additions pass and are reported in the outcome's ``output_tail``. A module-level
name that is removed but still imported under the same name (moved into another
module and imported back) passes and is reported as moved.

A changed file that does not parse fails the step with the SyntaxError's
location: without a parse there is no surface to vouch for, and a plan may run
the surface step without a syntax step. A baseline file that did not parse is
taken as empty (everything in it now is an addition), and reported.

Surfaces are cached by git blob id (the hash of the file's content) under
``<workspace>/.recovery/cache/surface/``, one JSON file per blob, written
atomically; a corrupt entry is ignored and recomputed. A file's content is parsed
once, whatever run, batch or attempt asks for it again, and the content a batch
leaves behind is already known when the next batch compares against it.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Final, Literal

import attrs
import cattrs

from recovery_core.errors import RecoveryError
from recovery_core.plan import Step
from recovery_core.ports import StepContext, StepOutcome
from recovery_core.store import RECOVERY_DIR

__all__ = [
    "Binding",
    "ExportList",
    "FileSurface",
    "ParseProblem",
    "SurfaceCache",
    "SurfaceChange",
    "Symbol",
    "blob_id",
    "extract_surface",
    "module_exists",
    "surface_step",
]

#: Bumped whenever what :func:`extract_surface` records changes, so that entries
#: written by an older version are never read as if they were current.
CACHE_FORMAT: Final = 1


def blob_id(content: bytes) -> str:
    """The id git gives ``content`` as a blob: what ``git hash-object
    --no-filters`` prints, computed here so that hashing a working file costs
    no process."""
    header = b"blob %d\0" % len(content)
    return hashlib.sha1(header + content, usedforsecurity=False).hexdigest()


#: Where the cache lives, relative to the workspace's top.
CACHE_DIR: Final = Path(RECOVERY_DIR) / "cache" / "surface"
#: The source roots a dotted module name is looked for under.
SOURCE_ROOTS: Final = ("", "src/")
_REPORT_LINES: Final = 200
_REPORT_CHARS: Final = 16000

ChangeKind = Literal["removed", "changed", "unreadable", "missing", "added", "moved"]
_BREAKING: Final = frozenset({"removed", "changed", "unreadable", "missing"})
_CALLABLE: Final = frozenset(
    {"function", "method", "classmethod", "staticmethod", "property"}
)


# -- what a file defines ------------------------------------------------------


@attrs.frozen
class Symbol:
    """One public name a file defines. ``name`` is qualified within its module
    (``split``, ``TextWrapper.wrap``)."""

    name: str
    kind: str
    signature: str
    is_async: bool
    line: int


@attrs.frozen
class Binding:
    """A public name a module binds by importing it. ``source`` is the module it
    comes from, with the leading dots of a relative import; ``explicit`` marks the
    ``import x as x`` form that says "this is a re-export"."""

    name: str
    source: str
    line: int
    explicit: bool = False


@attrs.frozen
class ExportList:
    """A module's ``__all__``: its names when it is a literal, else None and only
    its source text is known."""

    names: tuple[str, ...] | None
    text: str
    line: int


@attrs.frozen
class ParseProblem:
    """Why a file's content has no surface: it does not parse."""

    message: str
    line: int
    column: int


@attrs.frozen
class FileSurface:
    """What one file's content defines, independent of where the file lives: the
    unit that is cached by blob id."""

    symbols: tuple[Symbol, ...] = ()
    imports: tuple[Binding, ...] = ()
    exports: ExportList | None = None
    problem: ParseProblem | None = None


def _is_dunder(name: str) -> bool:
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


def _is_public(name: str) -> bool:
    return not name.startswith("_")


def _literal_names(node: ast.expr) -> tuple[str, ...] | None:
    if isinstance(node, ast.List | ast.Tuple) and all(
        isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts
    ):
        return tuple(str(e.value) for e in node.elts if isinstance(e, ast.Constant))
    return None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runs_only_apart(test: ast.expr) -> bool:
    """Whether an ``if`` body never runs when the module is imported: under
    ``TYPE_CHECKING``, or ``if __name__ == "__main__":``."""
    if _is_type_checking(test):
        return True
    return (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
        and len(test.comparators) == 1
        and isinstance(test.comparators[0], ast.Constant)
        and test.comparators[0].value == "__main__"
    )


def _decorator_name(node: ast.expr) -> str:
    target = node.func if isinstance(node, ast.Call) else node
    if isinstance(target, ast.Attribute):
        return target.attr
    if isinstance(target, ast.Name):
        return target.id
    return ""


def _method_kind(decorators: Sequence[ast.expr]) -> str:
    kind, abstract = "method", False
    for decorator in decorators:
        name = _decorator_name(decorator)
        if name in ("staticmethod", "classmethod"):
            kind = name
        elif name in ("property", "cached_property"):
            kind = "property"
        elif name.startswith("abstract"):
            abstract = True
    return f"abstract {kind}" if abstract else kind


def _signature(node: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    text = f"({ast.unparse(node.args)})"
    if node.returns is not None:
        text += f" -> {ast.unparse(node.returns)}"
    return text


class _Collector:
    """Walks a module's statements once, keeping what :class:`FileSurface` holds."""

    def __init__(self) -> None:
        self.symbols: dict[str, Symbol] = {}
        self.imports: dict[str, Binding] = {}
        self.exports: ExportList | None = None

    def define(self, symbol: Symbol) -> None:
        # A new definition replaces the old one and whatever was nested in it.
        prefix = symbol.name + "."
        for stale in [q for q in self.symbols if q.startswith(prefix)]:
            del self.symbols[stale]
        self.symbols[symbol.name] = symbol

    def body(self, statements: Iterable[ast.stmt], prefix: str) -> None:
        top = not prefix
        for node in statements:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                self.function(node, prefix)
            elif isinstance(node, ast.ClassDef):
                if _is_public(node.name):
                    self.klass(node, prefix)
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    self.assign(target, node.value, None, node.lineno, prefix)
            elif isinstance(node, ast.AnnAssign):
                self.assign(
                    node.target, node.value, node.annotation, node.lineno, prefix
                )
            elif isinstance(node, ast.AugAssign) and top:
                if isinstance(node.target, ast.Name) and node.target.id == "__all__":
                    self.extend_exports(node.value, node.lineno)
            elif isinstance(node, ast.Expr) and top:
                self.exports_call(node.value, node.lineno)
            elif isinstance(node, ast.Import | ast.ImportFrom) and top:
                self.imported(node)
            elif isinstance(node, ast.If):
                if not _runs_only_apart(node.test):
                    self.body(node.body, prefix)
                self.body(node.orelse, prefix)
            elif isinstance(node, ast.Try | ast.TryStar):
                self.body(node.body, prefix)
                for handler in node.handlers:
                    self.body(handler.body, prefix)
                self.body(node.orelse, prefix)
                self.body(node.finalbody, prefix)
            elif isinstance(node, ast.With | ast.AsyncWith):
                self.body(node.body, prefix)

    def function(
        self, node: ast.FunctionDef | ast.AsyncFunctionDef, prefix: str
    ) -> None:
        if prefix:
            for decorator in node.decorator_list:
                if (
                    isinstance(decorator, ast.Attribute)
                    and decorator.attr in ("setter", "deleter")
                    and isinstance(decorator.value, ast.Name)
                ):
                    self.accessor(prefix + decorator.value.id, decorator.attr)
                    return
        if not (_is_public(node.name) or _is_dunder(node.name)):
            return
        kind = _method_kind(node.decorator_list) if prefix else "function"
        self.define(
            Symbol(
                name=prefix + node.name,
                kind=kind,
                signature=_signature(node),
                is_async=isinstance(node, ast.AsyncFunctionDef),
                line=node.lineno,
            )
        )

    def accessor(self, qual: str, which: str) -> None:
        prop = self.symbols.get(qual)
        if prop is not None and prop.kind.endswith("property"):
            flag = " [settable]" if which == "setter" else " [deletable]"
            if flag not in prop.signature:
                self.symbols[qual] = attrs.evolve(prop, signature=prop.signature + flag)

    def klass(self, node: ast.ClassDef, prefix: str) -> None:
        bases = [ast.unparse(b) for b in node.bases]
        bases += [ast.unparse(k) for k in node.keywords]
        decorators = " ".join(f"@{ast.unparse(d)}" for d in node.decorator_list)
        signature = f"({', '.join(bases)})"
        if decorators:
            signature = f"{decorators} {signature}"
        qual = prefix + node.name
        self.define(
            Symbol(
                name=qual,
                kind="class",
                signature=signature,
                is_async=False,
                line=node.lineno,
            )
        )
        self.body(node.body, qual + ".")

    def assign(
        self,
        target: ast.expr,
        value: ast.expr | None,
        annotation: ast.expr | None,
        line: int,
        prefix: str,
    ) -> None:
        if isinstance(target, ast.Tuple | ast.List):
            for element in target.elts:
                self.assign(element, None, None, line, prefix)
            return
        if not isinstance(target, ast.Name):
            return
        name = target.id
        if name == "__all__" and not prefix:
            if value is not None:
                names = _literal_names(value)
                self.exports = ExportList(names, ast.unparse(value), line)
            return
        if not _is_public(name):
            return
        qual = prefix + name
        existing = self.symbols.get(qual)
        # `fn = wrap(fn)` re-binds a function or class: keep its signature. A plain
        # re-assignment of a variable keeps the first declaration, unless this one
        # is annotated.
        if existing is not None and (
            existing.kind not in ("variable", "attribute") or annotation is None
        ):
            return
        signature = ""
        if annotation is not None:
            signature = f": {ast.unparse(annotation)}"
            if value is not None:
                signature += " = ..."
        kind = "attribute" if prefix else "variable"
        self.define(Symbol(qual, kind, signature, False, line))

    def extend_exports(self, value: ast.expr, line: int) -> None:
        added = _literal_names(value)
        previous = self.exports
        if previous is None:
            self.exports = ExportList(added, ast.unparse(value), line)
        elif previous.names is not None and added is not None:
            self.exports = ExportList(
                previous.names + added, previous.text, previous.line
            )
        else:
            text = f"{previous.text} + {ast.unparse(value)}"
            self.exports = ExportList(None, text, previous.line)

    def exports_call(self, call: ast.expr, line: int) -> None:
        if not (
            isinstance(call, ast.Call)
            and isinstance(call.func, ast.Attribute)
            and isinstance(call.func.value, ast.Name)
            and call.func.value.id == "__all__"
            and len(call.args) == 1
        ):
            return
        method, argument = call.func.attr, call.args[0]
        if method == "extend":
            self.extend_exports(argument, line)
        elif method == "append":
            self.extend_exports(ast.List(elts=[argument], ctx=ast.Load()), line)
        elif method == "remove" and self.exports is not None:
            names = self.exports.names
            gone = _literal_names(ast.List(elts=[argument], ctx=ast.Load()))
            if names is not None and gone is not None:
                kept = tuple(n for n in names if n not in gone)
                self.exports = attrs.evolve(self.exports, names=kept)
            else:
                text = f"{self.exports.text} - {ast.unparse(argument)}"
                self.exports = ExportList(None, text, self.exports.line)

    def imported(self, node: ast.Import | ast.ImportFrom) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                bound = alias.asname or alias.name.split(".")[0]
                if _is_public(bound):
                    self.imports[bound] = Binding(
                        bound, alias.name, node.lineno, alias.asname == alias.name
                    )
            return
        source = "." * node.level + (node.module or "")
        for alias in node.names:
            bound = alias.asname or alias.name
            if alias.name != "*" and _is_public(bound):
                self.imports[bound] = Binding(
                    bound, source, node.lineno, alias.asname == alias.name
                )


def extract_surface(source: bytes, filename: str = "<unknown>") -> FileSurface:
    """The public surface that the Python ``source`` defines (see the module's
    docstring for what counts). ``filename`` is used in messages only: the
    result depends on the content alone, so that it can be cached by blob id."""
    try:
        tree = ast.parse(source, filename=filename)
    except SyntaxError as exc:
        return FileSurface(
            problem=ParseProblem(
                f"{type(exc).__name__}: {exc.msg}", exc.lineno or 0, exc.offset or 0
            )
        )
    except ValueError as exc:  # null bytes, on the Pythons that raise this
        return FileSurface(problem=ParseProblem(f"SyntaxError: {exc}", 0, 0))
    collector = _Collector()
    collector.body(tree.body, "")
    return FileSurface(
        symbols=tuple(collector.symbols.values()),
        imports=tuple(collector.imports.values()),
        exports=collector.exports,
    )


# -- the cache ----------------------------------------------------------------

_CONVERTER: Final = cattrs.Converter(forbid_extra_keys=True)


class SurfaceCache:
    """Surfaces by blob id, one JSON file per blob below ``folder``.

    Entries are written through a temporary file and a rename, so that a reader
    sees a whole entry or none; one that cannot be read or does not decode is
    ignored (and then overwritten). The Python version is part of the folder's
    name: which syntax parses, and how :func:`ast.unparse` writes it, depend on
    it.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder / f"v{CACHE_FORMAT}-{sys.implementation.cache_tag}"
        self.parsed = 0
        self.reused = 0
        self._memo: dict[str, FileSurface] = {}

    def _entry(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key[2:]}.json"

    def get(self, key: str) -> FileSurface | None:
        """The cached surface of the blob ``key``, or None."""
        if key in self._memo:
            return self._memo[key]
        try:
            raw = json.loads(self._entry(key).read_bytes())
            if raw.get("format") != CACHE_FORMAT or raw.get("blob") != key:
                return None
            surface = _CONVERTER.structure(raw["surface"], FileSurface)
        except Exception:
            # Missing, half-written by a crashed older version, or edited by hand:
            # all mean "not cached".
            return None
        self._memo[key] = surface
        return surface

    def put(self, key: str, surface: FileSurface) -> None:
        """Stores ``surface`` as the blob ``key``'s; a cache that cannot be written
        (a read-only workspace) is only slower, never wrong, so errors pass."""
        self._memo[key] = surface
        entry = self._entry(key)
        data = {
            "format": CACHE_FORMAT,
            "blob": key,
            "surface": _CONVERTER.unstructure(surface),
        }
        try:
            if not entry.parent.is_dir():
                self._make_folder(entry.parent)
            fd, temp = tempfile.mkstemp(dir=entry.parent, prefix=".", suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    json.dump(data, handle, separators=(",", ":"))
                Path(temp).replace(entry)
            except BaseException:
                Path(temp).unlink(missing_ok=True)
                raise
        except OSError:
            pass

    def _make_folder(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        # So that the cache never shows up as a change of the workspace, even
        # where .recovery/ is not excluded from git (the step run on its own).
        marker = self.folder.parent / ".gitignore"
        if not marker.exists():
            marker.write_text("# Created by recovery-core.\n*\n", encoding="utf-8")

    def surface(self, content: bytes, filename: str) -> FileSurface:
        """The surface of ``content``: from the cache, else parsed and stored."""
        key = blob_id(content)
        cached = self.get(key)
        if cached is not None:
            self.reused += 1
            return cached
        made = extract_surface(content, filename)
        self.parsed += 1
        self.put(key, made)
        return made


# -- comparing ------------------------------------------------------------------


@attrs.frozen
class SurfaceChange:
    """One difference between the baseline's surface and the surface now.

    ``path`` and ``line`` locate the symbol now, or, for a removal, where it was
    in the baseline."""

    symbol: str
    kind: ChangeKind
    what: str
    path: str = ""
    line: int = 0
    expected: bool = False

    @property
    def breaking(self) -> bool:
        """Whether this change fails the step (when it was not expected)."""
        return self.kind in _BREAKING

    @property
    def location(self) -> str:
        """``path:line``, or the path alone, or nothing."""
        if self.path and self.line:
            return f"{self.path}:{self.line}"
        return self.path

    def describe(self) -> str:
        """One line: the symbol, what changed, where."""
        where = self.location
        if where and self.kind == "removed":
            where = f"was at {where}"
        return f"{self.symbol}: {self.what}" + (f" ({where})" if where else "")


@attrs.frozen
class _Located:
    symbol: Symbol
    path: str


@attrs.define
class _Side:
    """One module's surface in the baseline or now, merged over its files."""

    exists: bool = False
    public: dict[str, _Located] = attrs.field(factory=dict)
    defined: set[str] = attrs.field(factory=set)
    imports: dict[str, Binding] = attrs.field(factory=dict)
    exports: ExportList | None = None
    exports_path: str = ""


@attrs.frozen
class _File:
    path: str
    module: str
    is_init: bool


def _module_files(path: str, modules: Sequence[str]) -> _File | None:
    """The module ``path`` is, when it lies under one of ``modules``."""
    if not path.endswith(".py"):
        return None
    for root in SOURCE_ROOTS:
        if not path.startswith(root):
            continue
        relative = path[len(root) : -3]
        for module in modules:
            folder = module.replace(".", "/")
            if relative == folder or relative.startswith(folder + "/"):
                is_init = relative.endswith("/__init__") or relative == "__init__"
                dotted = relative.removesuffix("__init__").rstrip("/").replace("/", ".")
                return _File(path, dotted or module, is_init)
    return None


def module_exists(root: Path, module: str) -> bool:
    """Whether the module ``module`` has its file ``a/b.py`` or its folder
    ``a/b/`` in the workspace ``root``, at the top or below ``src/``."""
    # os.path on strings: a step may name many modules, and pathlib's overhead
    # per call would be most of this step's cost on a warm cache.
    top = os.fspath(root)
    folder = module.replace(".", os.sep)
    for base in SOURCE_ROOTS:
        candidate = os.path.join(top, base, folder)  # noqa: PTH118
        if os.path.isdir(candidate) or os.path.isfile(candidate + ".py"):  # noqa: PTH112, PTH113
            return True
    return False


def _is_reexport(binding: Binding, file: _File) -> bool:
    if binding.explicit:
        return True
    if not file.is_init:
        return False
    source = binding.source
    return (
        source.startswith(".")
        or source == file.module
        or source.startswith(file.module + ".")
    )


def _add_to_side(side: _Side, file: _File, surface: FileSurface) -> None:
    side.exists = True
    if surface.exports is not None and side.exports is None:
        side.exports, side.exports_path = surface.exports, file.path
    exported = surface.exports.names if surface.exports is not None else None
    for symbol in surface.symbols:
        top = symbol.name.split(".", 1)[0]
        if "." not in symbol.name:
            side.defined.add(top)
        if exported is not None and top not in exported:
            continue
        side.public[f"{file.module}.{symbol.name}"] = _Located(symbol, file.path)
    for binding in surface.imports:
        side.imports[binding.name] = binding
        qual = f"{file.module}.{binding.name}"
        if binding.name in side.defined or qual in side.public:
            continue
        listed = exported is not None and binding.name in exported
        if listed or (exported is None and _is_reexport(binding, file)):
            symbol = Symbol(
                binding.name, "re-export", binding.source, False, binding.line
            )
            side.public[qual] = _Located(symbol, file.path)


def _article(kind: str) -> str:
    return f"an {kind}" if kind[:1] in "aeiou" else f"a {kind}"


def _family(kind: str) -> str:
    kind = kind.removeprefix("abstract ")
    if kind in _CALLABLE:
        return "callable"
    return "data" if kind in ("variable", "attribute") else kind


def _shown(symbol: Symbol) -> str:
    """How a symbol's signature is quoted in a message."""
    if _family(symbol.kind) == "data":
        return f"`{symbol.name.rsplit('.', 1)[-1]}{symbol.signature}`"
    return f"`{symbol.signature}`"


def _moved(before: Symbol, after: Symbol) -> str:
    """How a name that is still there moved between a definition here and an
    import; its signature is then not compared (only its presence is)."""
    if before.kind == after.kind or "re-export" not in (before.kind, after.kind):
        return ""
    if after.kind == "re-export":
        return (
            f"now imported from {after.signature}; its signature is not compared here"
        )
    return f"now defined here (was imported from {before.signature})"


def _difference(before: Symbol, after: Symbol) -> str:
    if "re-export" in (before.kind, after.kind):
        # Where a re-exported name comes from is not its signature.
        return ""
    parts: list[str] = []
    if before.kind != after.kind:
        parts.append(f"was {_article(before.kind)}, now {_article(after.kind)}")
    if after.is_async and not before.is_async:
        parts.append("became async")
    elif before.is_async and not after.is_async:
        parts.append("is no longer async")
    if before.signature != after.signature and _family(before.kind) == _family(
        after.kind
    ):
        label = {"class": "definition", "data": "declaration"}.get(
            _family(after.kind), "signature"
        )
        parts.append(f"{label} {_shown(before)} -> {_shown(after)}")
    return "; ".join(parts)


def _covered(qual: str, quals: set[str]) -> bool:
    """Whether an enclosing name of ``qual`` is in ``quals``."""
    head = qual
    while "." in head:
        head = head.rsplit(".", 1)[0]
        if head in quals:
            return True
    return False


def _diff_module(module: str, before: _Side, after: _Side) -> list[SurfaceChange]:
    changes: list[SurfaceChange] = []
    gone: set[str] = set()
    new: set[str] = set()
    for qual in sorted(before.public.keys() | after.public.keys()):
        if _covered(qual, gone | new):
            continue
        old, now = before.public.get(qual), after.public.get(qual)
        if now is None and old is not None:
            gone.add(qual)
            local = qual[len(module) + 1 :]
            binding = after.imports.get(local) if "." not in local else None
            if binding is not None:
                changes.append(
                    SurfaceChange(
                        qual,
                        "moved",
                        f"now imported from {binding.source}; its signature is not "
                        "compared here",
                        old.path,
                        binding.line,
                    )
                )
            elif "." not in local and local in after.defined:
                changes.append(
                    SurfaceChange(
                        qual,
                        "changed",
                        "no longer exported (left out of __all__)",
                        after.exports_path or old.path,
                        after.exports.line if after.exports else old.symbol.line,
                    )
                )
            else:
                changes.append(
                    SurfaceChange(qual, "removed", "removed", old.path, old.symbol.line)
                )
        elif old is None and now is not None:
            new.add(qual)
            what = f"added {now.symbol.kind}"
            if now.symbol.kind == "re-export":
                what += f" from {now.symbol.signature}"
            elif now.symbol.signature:
                what += f" {_shown(now.symbol)}"
            changes.append(
                SurfaceChange(qual, "added", what, now.path, now.symbol.line)
            )
        elif old is not None and now is not None:
            moved = _moved(old.symbol, now.symbol)
            if moved:
                changes.append(
                    SurfaceChange(qual, "moved", moved, now.path, now.symbol.line)
                )
                continue
            what = _difference(old.symbol, now.symbol)
            if what:
                changes.append(
                    SurfaceChange(qual, "changed", what, now.path, now.symbol.line)
                )
    if before.exists and after.exists:
        changes.extend(
            _diff_exports(module, before, after, {c.symbol for c in changes})
        )
    return changes


def _diff_exports(
    module: str, before: _Side, after: _Side, reported: set[str]
) -> list[SurfaceChange]:
    qual = f"{module}.__all__"
    old, now = before.exports, after.exports
    if old is None and now is None:
        return []
    if old is None and now is not None:
        return [SurfaceChange(qual, "added", "added", after.exports_path, now.line)]
    if now is None and old is not None:
        return [
            SurfaceChange(qual, "removed", "removed", before.exports_path, old.line)
        ]
    assert old is not None and now is not None
    if old.names is None or now.names is None:
        if old.text == now.text:
            return []
        return [
            SurfaceChange(
                qual,
                "changed",
                f"changed `{old.text}` -> `{now.text}`",
                after.exports_path,
                now.line,
            )
        ]
    changes = []
    kept = set(now.names)
    for name in old.names:
        symbol = f"{module}.{name}"
        if name not in kept and symbol not in reported:
            changes.append(
                SurfaceChange(
                    symbol,
                    "removed",
                    "dropped from __all__",
                    after.exports_path,
                    now.line,
                )
            )
    added = [n for n in now.names if n not in set(old.names)]
    if added:
        listed = ", ".join(repr(n) for n in added)
        changes.append(
            SurfaceChange(
                qual, "added", f"added {listed}", after.exports_path, now.line
            )
        )
    return changes


def _expected(symbol: str, expected: frozenset[str]) -> bool:
    head = symbol
    while True:
        if head in expected:
            return True
        if "." not in head:
            return False
        head = head.rsplit(".", 1)[0]


@attrs.frozen
class _Report:
    changes: tuple[SurfaceChange, ...]
    notes: tuple[str, ...]
    examined: int
    parsed: int
    reused: int


def _compare(
    root: Path,
    read: Callable[[str, Sequence[str]], Mapping[str, bytes | None]],
    modules: Sequence[str],
    baseline: str,
    changed: Sequence[str],
    expected: frozenset[str],
) -> _Report:
    files = [f for f in (_module_files(p, modules) for p in changed) if f is not None]
    notes: list[str] = []
    changes: list[SurfaceChange] = []
    for module in modules:
        if not any(
            f.module == module or f.module.startswith(module + ".") for f in files
        ) and not module_exists(root, module):
            folder = module.replace(".", "/")
            changes.append(
                SurfaceChange(
                    module,
                    "missing",
                    f"not in the workspace (no {folder}.py or {folder}/, at the top "
                    "or below src/)",
                )
            )
    cache = SurfaceCache(root / CACHE_DIR)
    before_content = read(baseline, [f.path for f in files]) if files else {}
    sides: dict[str, tuple[_Side, _Side]] = {}
    unreadable: set[str] = set()
    for file in files:
        before, after = sides.setdefault(file.module, (_Side(), _Side()))
        old = before_content.get(file.path)
        if old is not None:
            surface = cache.surface(old, file.path)
            if surface.problem is None:
                _add_to_side(before, file, surface)
            else:
                before.exists = True
                notes.append(
                    f"{file.path} did not parse in the baseline; its names count "
                    "as additions"
                )
        full = root / file.path
        if full.is_file():
            surface = cache.surface(full.read_bytes(), file.path)
            problem = surface.problem
            if problem is None:
                _add_to_side(after, file, surface)
            else:
                unreadable.add(file.module)
                changes.append(
                    SurfaceChange(
                        file.module,
                        "unreadable",
                        f"cannot read its surface: {problem.message} "
                        f"({file.path}:{problem.line}:{problem.column})",
                        file.path,
                        problem.line,
                    )
                )
    for module, (before, after) in sides.items():
        if module not in unreadable:
            changes.extend(_diff_module(module, before, after))
    marked = [
        attrs.evolve(c, expected=_expected(c.symbol, expected)) if c.breaking else c
        for c in changes
    ]
    marked.sort(key=lambda c: (c.path, c.line, c.symbol))
    return _Report(
        changes=tuple(marked),
        notes=tuple(notes),
        examined=len(files),
        parsed=cache.parsed,
        reused=cache.reused,
    )


def _listing(lines: Iterator[str]) -> str:
    kept: list[str] = []
    size = 0
    rest = 0
    for line in lines:
        if len(kept) >= _REPORT_LINES or size + len(line) > _REPORT_CHARS:
            rest += 1
            continue
        kept.append(line)
        size += len(line) + 1
    if rest:
        kept.append(f"... and {rest} more lines")
    return "\n".join(kept)


def _group(change: SurfaceChange) -> str:
    if change.breaking:
        return "expected" if change.expected else "unexpected"
    return change.kind


def _report_lines(report: _Report, modules: Sequence[str]) -> Iterator[str]:
    yield (
        f"surface of {', '.join(modules)}: {report.examined} changed file(s) "
        f"examined ({report.parsed} parsed, {report.reused} from the cache)"
    )
    for label in ("unexpected", "expected", "moved", "added"):
        for change in report.changes:
            if _group(change) == label:
                yield f"{label + ':':12}{change.describe()}"
    for note in report.notes:
        yield f"{'note:':12}{note}"


def surface_step(step: Step, context: StepContext) -> StepOutcome:
    """Checks that the public surface of ``step.modules`` did not change beyond
    the batch's ``expected_surface_changes`` (see the module's docstring)."""
    started = time.monotonic()
    if not step.modules:
        return StepOutcome(
            passed=False,
            duration_s=time.monotonic() - started,
            error="a surface step needs 'modules' (the dotted names to check)",
        )
    if context.baseline is None or context.workspace is None:
        # Failing closed: without a snapshot there is nothing to compare with, and
        # a pass here would vouch for a surface nobody looked at.
        return StepOutcome(
            passed=False,
            duration_s=time.monotonic() - started,
            error="the surface cannot be compared: the workspace took no baseline "
            "snapshot for this attempt",
        )
    try:
        report = _compare(
            context.root,
            context.workspace.read,
            step.modules,
            context.baseline,
            context.changed_files,
            frozenset(context.batch.expected_surface_changes),
        )
    except RecoveryError as exc:
        return StepOutcome(
            passed=False,
            duration_s=time.monotonic() - started,
            error=f"cannot read the baseline {context.baseline[:12]}: {exc}",
        )
    tail = _listing(_report_lines(report, step.modules))
    unexpected = [c for c in report.changes if c.breaking and not c.expected]
    duration = time.monotonic() - started
    if not unexpected:
        return StepOutcome(passed=True, duration_s=duration, output_tail=tail)
    first = unexpected[0]
    more = len(unexpected) - 1
    # A name removed or changed is a change of the surface; a module that is
    # missing or does not parse is a check that could not be made.
    prefix = (
        "surface changed"
        if first.kind in ("removed", "changed")
        else ("surface not checked")
    )
    headline = f"{prefix}: {first.describe()}" + (
        f" (and {more} more unexpected change{'s' if more > 1 else ''})" if more else ""
    )
    lines = [headline, *(f"  {c.describe()}" for c in unexpected)]
    if any(c.kind in ("removed", "changed") for c in unexpected):
        lines.append(
            "List intended changes in the batch's expected_surface_changes "
            f"(such as {first.symbol!r})."
        )
    return StepOutcome(
        passed=False,
        duration_s=duration,
        error="\n".join(lines),
        component=first.location,
        output_tail=tail,
    )
