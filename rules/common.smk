# Config validation, wildcard constraints and input functions shared by every rule file.
import hashlib
import json
import os
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate


validate(config, schema="../schemas/config.schema.yaml")


def _check_secrets(cfg):
    """Fail before any job when the openai provider's key variable is unset."""
    llm = cfg["llm"]
    if llm["provider"] != "openai":
        return
    var = llm.get("api_key_env")
    if var and not os.environ.get(var):
        raise WorkflowError(
            f"config key llm.api_key_env: environment variable {var!r} is not set "
            f"(needed by llm.provider: openai). Export it, or set llm.api_key_env: null "
            f"for a local server that needs no key."
        )


_check_secrets(config)

OUT = config["outputs_dir"]


wildcard_constraints:
    domain=r"[A-Za-z0-9]+",
    entity=r"[A-Z][A-Za-z0-9]*",
    env=r"[A-Za-z0-9]+(\+[A-Za-z0-9]+)*",


_LIB = Path(workflow.basedir) / "agentskiller"


def code_version(*patterns):
    """Short hash of the library files a rule runs (globs under agentskiller/), passed as a
    param: Snakemake tracks only the script file itself, so without this an edited step,
    prompt or offline handler would leave stale outputs in place."""
    h = hashlib.sha256()
    for pattern in patterns:
        for path in sorted(_LIB.glob(pattern)):
            h.update(path.name.encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


def out(path):
    """A path under outputs_dir."""
    return os.path.join(OUT, path)


def _outlines():
    with open(checkpoints.outlines.get().output.outlines, encoding="utf-8") as fh:
        return json.load(fh)["domains"]


def domains():
    """Every domain defined by the s04 outlines checkpoint."""
    return sorted(d["domain"] for d in _outlines())


def envs():
    """What s14-s17 run on: every domain (pairs join in once s10 exists)."""
    return domains()


def used_entities():
    """Entities that some domain uses: the only ones s06 generates tables for."""
    names = set()
    for d in _outlines():
        names.add(d["core_entity"])
        names.update(d["peripheral_entities"])
    return sorted(names)


def domain_entity_tables(wildcards):
    domain = getattr(wildcards, "domain", None) or wildcards.env
    for d in _outlines():
        if d["domain"] == domain:
            ents = [d["core_entity"], *d["peripheral_entities"]]
            return [out(f"database/entities/{e}.json") for e in sorted(ents)]
    raise WorkflowError(f"unknown domain {domain!r}: not in {out('blueprints/outlines.json')}")


def all_blueprints(wildcards):
    return [out(f"blueprints/{d}.json") for d in domains()]


def env_file(pattern):
    """Input function: an env's per-domain artifact (single-domain envs: env == domain)."""

    def _f(wildcards):
        return out(pattern.format(domain=wildcards.env))

    return _f


def per_env(pattern):
    def _f(wildcards):
        return [out(pattern.format(env=e)) for e in envs()]

    return _f


def per_domain(pattern):
    def _f(wildcards):
        return [out(pattern.format(domain=d)) for d in domains()]

    return _f


def get_final_outputs(wildcards):
    files = [out("blueprints/index.json"), out("dataset/train.jsonl"), out("dataset/stats.json")]
    for d in domains():
        files += [
            out(f"tool_lists/{d}.json"),
            out(f"tool_graphs/{d}.json"),
            out(f"servers/{d}/report.json"),
        ]
    return files
