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
import re
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


def code_version(script: str | Path) -> str:
    """Short hash of :func:`files_for` (names and contents)."""
    h = hashlib.sha256()
    for path in files_for(script):
        h.update(path.relative_to(LIB_DIR).as_posix().encode())
        h.update(b"\0")
        h.update(path.read_bytes())
    return h.hexdigest()[:16]
