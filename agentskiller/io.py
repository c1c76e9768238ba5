"""Artifact I/O: canonical JSON, hashing, atomic writes and schema validation.

Every artifact a rule writes goes through :func:`write_json` / :func:`write_text` /
:func:`write_jsonl`: the content is validated first (when a schema is named), then
written to a temporary file in the same directory and renamed into place, so a killed
job never leaves a half-written file that looks finished.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import cache, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import jsonschema
    from referencing import Registry

# jsonschema and referencing are imported where an artifact is validated: a process that only
# reads and writes files (a sandboxed worker, the MCP server's supervisor) does not pay for them.

SCHEMA_VERSION = 1

#: Root of the workflow checkout (Snakefile, schemas/, rules/ ...).
REPO_ROOT = Path(__file__).resolve().parents[1]
#: the checkout's schemas/ (editable install, the workflow), else the copy a wheel ships inside
#: the package (setup.py); AGENTSKILLER_SCHEMAS_DIR overrides both
_SCHEMAS_DEFAULT = REPO_ROOT / "schemas" if (REPO_ROOT / "schemas").is_dir() else Path(__file__).parent / "schemas"
SCHEMAS_DIR = Path(os.environ.get("AGENTSKILLER_SCHEMAS_DIR", _SCHEMAS_DEFAULT))


class ArtifactValidationError(ValueError):
    """An artifact does not match its JSON Schema."""


# --------------------------------------------------------------------------- JSON
def canonical_json(obj: Any) -> str:
    """One canonical serialization: sorted keys, no whitespace, UTF-8 kept."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_json(obj: Any) -> str:
    return sha256_text(canonical_json(obj))


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()


def read_json(path: str | Path) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def read_jsonl(path: str | Path) -> list[Any]:
    return list(iter_jsonl(path))


def iter_jsonl(path: str | Path) -> Iterator[Any]:
    """The rows of a JSONL file, one at a time (memory bounded by the longest line)."""
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def read_text(path: str | Path) -> str:
    return Path(path).read_text(encoding="utf-8")


# ----------------------------------------------------------------- atomic writes
def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file + fsync + rename in the same dir."""
    with _atomic_file(path, "wb") as fh:
        fh.write(data)


@contextmanager
def _atomic_file(path: str | Path, mode: str, **open_kw: Any) -> Iterator[Any]:
    """A file handle on a temp file beside ``path``: flushed, fsynced and renamed onto ``path``
    when the block ends without an exception, removed otherwise (``path`` stays as it was)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **open_kw) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


@contextmanager
def atomic_dir(path: str | Path, marker: str | None = None) -> Iterator[Path]:
    """Build a directory output in a temporary sibling and rename it into place on success.

    ``marker``: a file created empty inside just before the rename (the workflow engine's
    timestamp of a directory output), so a kill between the rename and the engine's own
    bookkeeping leaves the same directory as a run that never stopped.

    A killed job leaves no half-built directory where the output belongs (Snakemake does not
    re-check incomplete outputs of jobs added after a checkpoint, so a partial directory would
    pass as done on resume); on an exception the sibling is removed. Leftover siblings of
    earlier killed attempts at the same output are removed first: one job owns one output.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    os.chmod(tmp, 0o755)  # like a directory made with mkdir: sandboxed readers run as another uid
    try:
        yield tmp
        if marker:
            (tmp / marker).touch()
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
            os.replace(path, old / path.name)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def dumps_pretty(obj: Any) -> str:
    """Stable, human-readable JSON (sorted keys) used for every JSON artifact."""
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


# ------------------------------------------------------------------- schemas
@cache
def load_schema(name: str) -> dict:
    """Load ``schemas/<name>.schema.json`` (JSON Schema draft 2020-12)."""
    path = SCHEMAS_DIR / f"{name}.schema.json"
    if not path.exists():
        raise FileNotFoundError(f"no JSON Schema for artifact type {name!r}: {path}")
    return read_json(path)


@lru_cache(maxsize=1)
def _registry() -> Registry:
    from referencing import Registry, Resource

    resources = []
    for p in sorted(SCHEMAS_DIR.glob("*.schema.json")):
        schema = read_json(p)
        res = Resource.from_contents(schema) if "$schema" in schema else None
        if res is not None:
            resources.append((p.name, res))
            if "$id" in schema:
                resources.append((schema["$id"], res))
    return Registry().with_resources(resources)


@cache
def _validator(schema_name: str) -> jsonschema.Draft202012Validator:
    """One validator per schema per process (building one resolves every ``$ref``): a
    streamed JSONL artifact validates each of its rows with the same one."""
    import jsonschema

    return jsonschema.Draft202012Validator(load_schema(schema_name), registry=_registry())


def validation_errors(obj: Any, schema_name: str) -> list[str]:
    """Return readable error strings (empty when ``obj`` is valid)."""
    validator = _validator(schema_name)
    if validator.is_valid(obj):
        return []
    errors = []
    for err in sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path)):
        where = "/".join(str(p) for p in err.absolute_path) or "<root>"
        errors.append(f"{where}: {err.message}")
    return errors


def first_validation_error(obj: Any, schema_name: str) -> str | None:
    """The most relevant schema error (jsonschema's ``best_match``, which looks inside
    ``oneOf`` branches) as ``"path: message"``, or None when ``obj`` is valid."""
    validator = _validator(schema_name)

    def leaf(errors: list) -> Any:
        """Into oneOf/anyOf: the branch the document meant (no `const` mismatch, such as the
        status of the other branch, "ok" vs "failed"; then the fewest errors); then the deepest."""
        best = max(errors, key=lambda e: len(e.absolute_path))
        if best.validator in ("oneOf", "anyOf") and best.context:
            branches: dict[Any, list] = {}
            for e in best.context:
                branches.setdefault(e.schema_path[0], []).append(e)
            chosen = min(branches.values(), key=lambda es: (any(e.validator == "const" for e in es), len(es)))
            return leaf(chosen)
        return best

    errors = list(validator.iter_errors(obj))
    if not errors:
        return None
    err = leaf(errors)
    where = "/".join(str(p) for p in err.absolute_path) or "<root>"
    message = err.message if len(err.message) <= 300 else err.message[:297] + "..."
    return f"{where}: {message}"


def validate(obj: Any, schema_name: str) -> None:
    errors = validation_errors(obj, schema_name)
    if errors:
        shown = "\n  ".join(errors[:20])
        more = f"\n  ... and {len(errors) - 20} more" if len(errors) > 20 else ""
        raise ArtifactValidationError(f"artifact does not match schema {schema_name!r}:\n  {shown}{more}")


def write_json(path: str | Path, obj: Any, schema: str | None = None) -> None:
    """Validate ``obj`` against ``schema`` (if given) and write it atomically."""
    if schema:
        validate(obj, schema)
    atomic_write_text(path, dumps_pretty(obj))


class JsonlWriter:
    """What :func:`jsonl_writer` yields: ``write(row)`` validates one row and appends it."""

    def __init__(self, fh: Any, schema: str | None) -> None:
        self._fh = fh
        self._schema = schema
        self.count = 0

    def write(self, row: Any) -> None:
        if self._schema:
            try:
                validate(row, self._schema)
            except ArtifactValidationError as exc:
                raise ArtifactValidationError(f"row {self.count}: {exc}") from None
        self._fh.write(json.dumps(row, sort_keys=True, ensure_ascii=False) + "\n")
        self.count += 1

    def write_all(self, rows: Iterable[Any]) -> None:
        for row in rows:
            self.write(row)


@contextmanager
def jsonl_writer(path: str | Path, schema: str | None = None) -> Iterator[JsonlWriter]:
    """``with jsonl_writer(path, schema) as w: w.write(row)``: a JSONL artifact written row by
    row (memory bounded by one row, not the file) into a temp file in the same directory, each
    row validated against ``schema`` before it is written; renamed into place only when the
    block ends without an exception, so a failed or killed job leaves no file that looks done
    (and an existing file stays as it was)."""
    with _atomic_file(path, "w", encoding="utf-8", newline="\n") as fh:
        yield JsonlWriter(fh, schema)


def write_jsonl(path: str | Path, rows: Iterable[Any], schema: str | None = None) -> None:
    """Write one compact JSON object per line; each row validated against ``schema``.
    ``rows`` may be a generator: it is consumed once, row by row (see :func:`jsonl_writer`)."""
    with jsonl_writer(path, schema) as w:
        w.write_all(rows)


def write_text(path: str | Path, text: str) -> None:
    atomic_write_text(path, text)
