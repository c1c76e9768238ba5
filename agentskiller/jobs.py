"""The bridge between a Snakemake job and a step function.

``scripts/<rule>.py`` calls :func:`run_job` with the ``snakemake`` object and a step
function ``run(ctx)``. Everything a step needs (named input/output paths, params,
wildcards, the resolved config (``ctx.config``, a dict) and its typed view (``ctx.cfg``), a logger on the job's log file, a seeded RNG and the LLM
client) is in the :class:`StepContext`; steps never touch the snakemake object, so they are
testable without Snakemake (:meth:`StepContext.from_paths`).
"""

from __future__ import annotations

import logging
import random
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import io
from .config import Config, resolve

log = logging.getLogger("agentskiller")


#: the empty file Snakemake writes into every ``directory()`` output when its job ends
SNAKEMAKE_DIR_MARKER = ".snakemake_timestamp"


def _named(obj: Any) -> dict[str, Any]:
    """Named items of a snakemake Namedlist (input/output/log) as plain paths."""
    out: dict[str, Any] = {}
    keys = obj.keys() if hasattr(obj, "keys") else []
    for k in keys:
        v = getattr(obj, k)
        if isinstance(v, (list, tuple)) or (hasattr(v, "__iter__") and not isinstance(v, (str, bytes))):
            out[k] = [Path(x) for x in v]
        else:
            out[k] = Path(v)
    return out


@dataclass
class StepContext:
    """``config`` may be partial (tests): it is resolved against the schema's defaults once,
    here, and steps read the typed ``cfg``; ``config`` stays the resolved dict for the layers
    that take plain sections (the LLM client, the sandbox)."""

    step: str
    config: dict
    inputs: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    wildcards: dict[str, str] = field(default_factory=dict)
    threads: int = 1
    log: logging.Logger = field(default_factory=lambda: log)
    _llm: Any = None
    _llm_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    cfg: Config = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.config = resolve(self.config)
        self.cfg = Config.model_validate(self.config)

    # ----------------------------------------------------------- construction
    @classmethod
    def from_paths(
        cls,
        step: str,
        config: dict,
        inputs: dict | None = None,
        outputs: dict | None = None,
        params: dict | None = None,
        wildcards: dict | None = None,
        logger: logging.Logger | None = None,
        llm: Any = None,
    ) -> StepContext:
        def paths(d):
            return {
                k: ([Path(x) for x in v] if isinstance(v, (list, tuple)) else Path(v)) for k, v in (d or {}).items()
            }

        return cls(
            step=step,
            config=config,
            inputs=paths(inputs),
            outputs=paths(outputs),
            params=dict(params or {}),
            wildcards=dict(wildcards or {}),
            log=logger or log,
            _llm=llm,
        )

    @classmethod
    def from_snakemake(cls, smk: Any, step: str) -> StepContext:
        logger = logging.getLogger(f"agentskiller.{step}.{'.'.join(str(v) for v in dict(smk.wildcards).values())}")
        logger.setLevel(logging.INFO)
        logger.propagate = False
        logger.handlers.clear()
        if len(smk.log):
            Path(smk.log[0]).parent.mkdir(parents=True, exist_ok=True)
            fh = logging.FileHandler(smk.log[0], mode="w", encoding="utf-8")
            fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
            logger.addHandler(fh)
            # provider warnings (retries, fallbacks, truncation) belong in the job log too
            llm_logger = logging.getLogger("agentskiller.llm")
            llm_logger.setLevel(logging.INFO)
            llm_logger.addHandler(fh)
        params = {k: getattr(smk.params, k) for k in smk.params.keys()}
        return cls(
            step=step,
            config=dict(smk.config),
            inputs=_named(smk.input),
            outputs=_named(smk.output),
            params=params,
            wildcards={k: str(v) for k, v in dict(smk.wildcards).items()},
            threads=int(getattr(smk, "threads", 1) or 1),
            log=logger,
        )

    # ------------------------------------------------------------------ basics
    @property
    def seed(self) -> int:
        return self.cfg.seed

    @property
    def outputs_dir(self) -> Path:
        return Path(self.cfg.outputs_dir)

    def rng(self, *salt: Any) -> random.Random:
        key = io.sha256_json([self.seed, self.step, sorted(self.wildcards.items()), [str(s) for s in salt]])
        return random.Random(int(key[:16], 16))

    @property
    def llm(self):
        # the lock: steps may first touch ctx.llm from worker threads (client.map)
        with self._llm_lock:
            if self._llm is None:
                from .llm import LLMClient  # lazy: deterministic steps never need it

                self._llm = LLMClient.from_config(self.config["llm"], seed=self.seed, usage_log=self.log)
        return self._llm

    # -------------------------------------------------------------- artifacts
    def input_hashes(self, extra: dict[str, Path] | None = None) -> dict[str, str]:
        hashes: dict[str, str] = {}
        for name, p in {**self.inputs, **(extra or {})}.items():
            if isinstance(p, list):
                hashes[name] = io.sha256_json([io.sha256_file(x) for x in p if Path(x).is_file()])
            elif Path(p).is_file():
                hashes[name] = io.sha256_file(p)
        return hashes

    def meta(self, extra_inputs: dict[str, Path] | None = None) -> dict:
        llm = self.cfg.llm
        return {
            "step": self.step,
            "schema_version": io.SCHEMA_VERSION,
            "provider": llm.provider,
            "models": {"text": llm.models.text, "code": llm.models.code},
            "seed": self.seed,
            "inputs": self.input_hashes(extra_inputs),
        }

    def output(self, name: str) -> Path:
        return Path(self.outputs[name])

    def output_dir(self, name: str):
        """``with ctx.output_dir("db") as d:`` a directory output built in a temporary sibling
        and renamed into place whole, with Snakemake's ``directory()`` timestamp already in it
        (a kill before Snakemake writes it must not leave a different directory)."""
        return io.atomic_dir(self.output(name), marker=SNAKEMAKE_DIR_MARKER)

    def write_json(self, name: str | Path, obj: dict, schema: str | None, with_meta: bool = True) -> None:
        path = self.output(name) if isinstance(name, str) else name
        if with_meta and isinstance(obj, dict):
            obj = {**obj, "meta": self.meta()}
        io.write_json(path, obj, schema)

    def write_text(self, name: str | Path, text: str) -> None:
        io.write_text(self.output(name) if isinstance(name, str) else name, text)

    def write_jsonl(self, name: str | Path, rows: Iterable[Any], schema: str | None) -> None:
        io.write_jsonl(self.output(name) if isinstance(name, str) else name, rows, schema)

    def jsonl_writer(self, name: str | Path, schema: str | None):
        """``with ctx.jsonl_writer("train", schema) as w: w.write(row)``: a JSONL output
        streamed row by row, renamed into place only on success (:func:`io.jsonl_writer`)."""
        return io.jsonl_writer(self.output(name) if isinstance(name, str) else name, schema)


@dataclass(frozen=True)
class Substep:
    """One step of a job that runs several in turn: which of the job's named files are its
    inputs (in the order its meta lists their hashes; an earlier step's output may be one) and
    its outputs. An input is a job file's name, or ``(name in the step, name in the job)``."""

    step: str
    fn: Callable[[StepContext], None]
    inputs: tuple[str | tuple[str, str], ...]
    outputs: tuple[str, ...]

    def named_inputs(self, files: dict[str, Any]) -> dict[str, Any]:
        pairs = [(n, n) if isinstance(n, str) else n for n in self.inputs]
        return {own: files[job] for own, job in pairs if job in files}


def run_steps(ctx: StepContext, steps: Iterable[Substep]) -> None:
    """Run ``steps`` in order, each in the context it would get as a job of its own (its step
    name, only its own files, the job's config, wildcards and log), so each writes byte for byte
    the artifact a job of its own would. Why merge: a step that is a fraction of a second of
    work costs a whole interpreter start-up as a job; merge only steps whose artifacts nothing
    but the next of them reads, or no incremental rebuild is lost."""
    files: dict[str, Any] = {**ctx.inputs, **ctx.outputs}
    for sub in steps:
        sub_ctx = StepContext.from_paths(
            sub.step,
            ctx.config,
            inputs=sub.named_inputs(files),
            outputs={k: files[k] for k in sub.outputs},
            params=ctx.params,
            wildcards=ctx.wildcards,
            logger=ctx.log,
        )
        try:
            sub.fn(sub_ctx)
        finally:
            if sub_ctx._llm is not None:
                sub_ctx._llm.close()


def run_job(smk: Any, step_fn: Callable[[StepContext], None], step: str | None = None) -> None:
    """Entry point for ``scripts/*.py``: build the context, run the step, log failures."""
    step = step or step_fn.__module__.rsplit(".", 1)[-1].split("_", 1)[0]
    ctx = StepContext.from_snakemake(smk, step)
    try:
        step_fn(ctx)
    except Exception:
        ctx.log.exception("step %s failed", step)
        for h in ctx.log.handlers:
            h.flush()
        raise
    finally:
        if ctx._llm is not None:
            ctx._llm.close()
    print(f"{step} done: {', '.join(str(p) for p in ctx.outputs.values())}", file=sys.stderr)
