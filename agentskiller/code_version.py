"""Which library files a rule's job runs, and a short hash of them (the rules' ``code`` param).

Snakemake reruns a job when its script file changes, not when a library module the script
reaches does. Each rule therefore passes ``code_version("scripts/<rule>.py")`` as a param, and
this module derives the files from the code itself, so no list is kept by hand:

* the ``agentskiller`` modules the script imports, followed through every import statement
  (module level and inside functions, relative or absolute), packages with their ``__init__``;
* the offline handlers of every LLM task the reached modules name (a string constant such as
  ``"s14.judge"`` matched against the ``@handler("s14.judge")`` decorators), with their own
  imports: the offline provider loads handlers by name at run time, so imports alone miss them;
* the prompt files (``prompts/sNN.yaml``) whose step name appears as a string constant, and the
  data files of reached modules (the offline catalogue).

The static reading over-approximates (a module imported but not used still counts), which is
the safe direction: an edit can cause an extra rerun, never a stale output.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import tempfile
from functools import cache, lru_cache
from pathlib import Path

PACKAGE = "agentskiller"
LIB_DIR = Path(__file__).resolve().parent
TASK_RE = re.compile(r"^s\d\d\.[a-z_]+$")
STEP_RE = re.compile(r"^s\d\d$")

#: data files a module reads at run time, as globs under the package directory
DATA_FILES = {
    "agentskiller.llm.offline.catalog": ("llm/offline/catalog/*.yaml",),
}


@cache
def module_path(module: str) -> Path | None:
    """The source file of an ``agentskiller`` module or package, or None."""
    if module != PACKAGE and not module.startswith(PACKAGE + "."):
        return None
    rel = Path(*module.split(".")[1:])
    for candidate in (LIB_DIR / rel / "__init__.py", (LIB_DIR / rel).with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _module_name(path: Path) -> str:
    rel = path.resolve().relative_to(LIB_DIR).with_suffix("")
    parts = [PACKAGE, *rel.parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


# cached, like _parse: every rule's code_version walks mostly the same modules, in each
# Snakemake process (26 rules re-walking the same trees took 2.7 s of every start; now 0.7 s)
@cache
def _imports(path: Path, module: str | None) -> frozenset[str]:
    """Every module named by an import statement in ``path`` (``module`` is its own name)."""
    is_pkg = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(_parse(path)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if module is None:
                    continue
                base = module.split(".")
                base = base if is_pkg else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            found.add(prefix)
            # "from pkg import name": name may be a submodule
            found.update(f"{prefix}.{alias.name}" for alias in node.names)
    out: set[str] = set()
    for name in found:
        # importing a.b.c runs a/__init__ and a/b/__init__ too
        parts = name.split(".")
        out.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return frozenset(m for m in out if module_path(m) is not None)


@cache
def _constants(path: Path) -> frozenset[str]:
    return frozenset(
        n.value for n in ast.walk(_parse(path)) if isinstance(n, ast.Constant) and isinstance(n.value, str)
    )


@lru_cache(maxsize=1)
def handler_modules() -> dict[str, str]:
    """LLM task -> the offline handler module that registers it."""
    tasks: dict[str, str] = {}
    for path in sorted((LIB_DIR / "llm" / "offline" / "handlers").glob("*.py")):
        for node in ast.walk(_parse(path)):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for dec in node.decorator_list:
                if (
                    isinstance(dec, ast.Call)
                    and getattr(dec.func, "id", getattr(dec.func, "attr", None)) == "handler"
                    and dec.args
                    and isinstance(dec.args[0], ast.Constant)
                ):
                    tasks[str(dec.args[0].value)] = _module_name(path)
    return tasks


def closure(roots: list[str], script: Path | None = None) -> set[str]:
    """The modules reached from ``roots`` (and from ``script``'s imports), handlers included."""
    todo = list(roots)
    if script is not None:
        todo += sorted(_imports(script, None))
    seen: set[str] = set()
    handlers = handler_modules()
    while todo:
        mod = todo.pop()
        if mod in seen:
            continue
        seen.add(mod)
        path = module_path(mod)
        if path is None:
            continue
        todo += sorted(_imports(path, mod) - seen)
        todo += sorted({handlers[c] for c in _constants(path) if TASK_RE.fullmatch(c) and c in handlers} - seen)
    return seen


def files_for(script: str | Path) -> list[Path]:
    """Every library file a job of ``script`` runs or reads, sorted."""
    mods = closure([], Path(script))
    files = {module_path(m) for m in mods}
    for mod in mods:
        path = module_path(mod)
        for const in _constants(path):
            prompt = LIB_DIR / "prompts" / f"{const}.yaml"
            if STEP_RE.fullmatch(const) and prompt.is_file():
                files.add(prompt)
        for pattern in DATA_FILES.get(mod, ()):
            files.update(LIB_DIR.glob(pattern))
    return sorted(f for f in files if f is not None)


def _stat_key(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_mtime_ns, st.st_size]


def _fingerprint() -> str:
    """Name, mtime and size of every package file an import structure or a data file could come
    from: while it stands, every script's :func:`files_for` stands too (only that list is cached;
    the hash always reads the files' current bytes)."""
    h = hashlib.sha256()
    for path in sorted(LIB_DIR.rglob("*")):
        if path.suffix in (".py", ".yaml") and "__pycache__" not in path.parts:
            h.update(f"{path.relative_to(LIB_DIR).as_posix()}\0{_stat_key(path)}\n".encode())
    return h.hexdigest()


#: the loaded cache files: path -> {"fingerprint": ..., "scripts": {script: {"stat", "files"}}}
_STORES: dict[Path, dict] = {}


def _cached_files_for(script: Path, cache_file: Path) -> list[Path]:
    """:func:`files_for` through ``cache_file``: each Snakemake start would otherwise parse and
    walk about 140 modules again (0.6 s of CPU in every ``snakemake`` call)."""
    store = _STORES.get(cache_file)
    if store is None:
        fingerprint = _fingerprint()
        try:
            store = json.loads(cache_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            store = {}
        if not isinstance(store, dict) or store.get("fingerprint") != fingerprint:
            store = {"fingerprint": fingerprint, "scripts": {}}
        _STORES[cache_file] = store
    entry = store["scripts"].get(str(script))
    if entry and entry.get("stat") == _stat_key(script):
        return [LIB_DIR / f for f in entry["files"]]
    files = files_for(script)
    store["scripts"][str(script)] = {
        "stat": _stat_key(script),
        "files": [f.relative_to(LIB_DIR).as_posix() for f in files],
    }
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache_file.parent, prefix=f".{cache_file.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(store, fh, sort_keys=True)
        os.replace(tmp, cache_file)  # whole or not at all: a reader never sees half a file
    except OSError:  # only a cache: a read-only or full disk costs the next start the parsing
        pass
    return files


def code_version(script: str | Path, cache_file: str | Path | None = None) -> str:
    """Short hash of :func:`files_for` (names and contents). With ``cache_file``, the list of
    files is kept there between processes while no package file changes (by name, mtime, size)."""
    script = Path(script).resolve()
    files = _cached_files_for(script, Path(cache_file).resolve()) if cache_file else files_for(script)
    h = hashlib.sha256()
    for path in files:
        h.update(path.relative_to(LIB_DIR).as_posix().encode())
        h.update(b"\0")
        h.update(path.read_bytes())
    return h.hexdigest()[:16]
