# Config validation, wildcard constraints and input functions shared by every rule file.
import json
import os
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

import yaml as _yaml

from agentskiller.code_version import code_version as _code_version
from agentskiller.config import resolve as _resolve
from agentskiller.config_cli import coerce as _coerce_cli
from agentskiller.env_version import simulator_version as _simulator_version

# Nested --config values arrive as strings (Snakemake parses them with YAML's BaseLoader):
# type them by the schema first, so `--config llm='{api_key_env: null}'` means null.
with open(Path(workflow.basedir) / "schemas" / "config.schema.yaml", encoding="utf-8") as _fh:
    config.update(_coerce_cli(dict(config), _yaml.safe_load(_fh)))
# fills the schema's defaults into `config` (the schema is the only place a default lives)
validate(config, schema="../schemas/config.schema.yaml")
#: the resolved config (what every step sees as ctx.config), for the helpers below
CONFIG = _resolve(config)


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

OUT = CONFIG["outputs_dir"]
#: cluster.llm_on_submit_host: rules that call the LLM run on the host Snakemake runs on (which
#: has network), not as cluster jobs; every other job is still submitted.
LLM_ON_SUBMIT_HOST = bool(CONFIG["cluster"]["llm_on_submit_host"])
#: threads of an LLM-calling rule: with a real endpoint it waits on HTTP, so it holds no core
#: (--cores bounds the CPU jobs, --resources llm=N the LLM jobs, llm.max_in_flight the
#: requests); offline its "LLM" is CPU work, so it holds one
LLM_THREADS = 0 if CONFIG["llm"]["provider"] == "openai" else 1


wildcard_constraints:
    domain=r"[A-Za-z0-9]+",
    entity=r"[A-Z][A-Za-z0-9]*",
    env=r"[A-Za-z0-9]+(\+[A-Za-z0-9]+)*",
    pair=r"[A-Za-z0-9]+\+[A-Za-z0-9]+",


def code_version(script):
    """Hash of the library files a rule's script reaches (derived from its imports, see
    agentskiller/code_version.py): Snakemake tracks only the script file itself, so without
    it an edited step, prompt or offline handler would leave stale outputs in place."""
    return _code_version(Path(workflow.basedir) / script, cache_file=CODE_VERSION_CACHE)


#: where code_version keeps each script's list of files between Snakemake starts (it is
#: re-derived when any package file changes); Snakemake's own state directory
CODE_VERSION_CACHE = Path(".snakemake") / "agentskiller" / "code_files.json"


#: The user simulator's version (prompts/rollout.yaml, the offline user's name): part of every
#: row's env_version, and a param of the dataset rule so that a new simulator restamps the rows.
SIMULATOR_VERSION = _simulator_version()


#: What ctx.meta() stamps into every JSON artifact: every rule reads these. Not the rollout's
#: llm.models.user / llm.models.assistant: a rule that uses them names them itself.
META_KEYS = ("seed", "llm.provider", "llm.models.text", "llm.models.code")
#: What changes an LLM's answers: every LLM-calling step (llm=1 resource) reads it. Not the key,
#: nor the name of its variable; nor timeouts, retries, cache or prices (same answers).
LLM_KEYS = (
    "llm.base_url",
    "llm.temperature",
    "llm.max_tokens",
    "llm.response_format",
    "llm.max_repair_rounds",
)


def _lookup(key):
    node = CONFIG
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise WorkflowError(f"config_for: {key!r} is not a config key")
        node = node[part]
    return node


def config_for(*keys, llm=False):
    """A rule's `cfg` param: canonical JSON of the resolved config its step reads (dotted
    keys or whole sections), plus META_KEYS, plus LLM_KEYS for an LLM rule. Snakemake reruns
    a job whose params changed (rerun trigger `params`), so a new seed, provider, model or
    step setting rebuilds exactly the jobs that read it (and, by their outputs, what follows)."""
    names = sorted(set(META_KEYS) | set(keys) | (set(LLM_KEYS) if llm else set()))
    return json.dumps({k: _lookup(k) for k in names}, sort_keys=True, separators=(",", ":"))


def out(path):
    """A path under outputs_dir."""
    return os.path.join(OUT, path)


#: parsed checkpoint outputs by (path, mtime, size): input functions run once per job (tens of
#: thousands of calls at a thousand domains), the checkpoint files change only when rebuilt
_CHECKPOINT_CACHE = {}


def _checkpoint_view(path, build):
    """``build(parsed JSON of path)``, computed once per version of the file."""
    st = os.stat(path)
    key = (os.path.abspath(path), st.st_mtime_ns, st.st_size)
    if _CHECKPOINT_CACHE.get(key[0], (None,))[0] != key:
        with open(path, encoding="utf-8") as fh:
            _CHECKPOINT_CACHE[key[0]] = (key, build(json.load(fh)))
    return _CHECKPOINT_CACHE[key[0]][1]


def _outline_view(doc):
    outlines = doc["domains"]
    return {
        "domains": sorted(d["domain"] for d in outlines),
        "by_domain": {d["domain"]: d for d in outlines},
        "entities": sorted({e for d in outlines for e in [d["core_entity"], *d["peripheral_entities"]]}),
    }


def _outlines():
    """The s04 outlines checkpoint, parsed once (``.get()`` is still asked every time: it is
    how Snakemake learns that a job depends on the checkpoint)."""
    return _checkpoint_view(checkpoints.outlines.get().output.outlines, _outline_view)


def domains():
    """Every domain defined by the s04 outlines checkpoint."""
    return list(_outlines()["domains"])


def cross_enabled():
    return CONFIG["cross"]["enabled"]


def pairs():
    """The kept pairs of the s10 combinations checkpoint (none when cross.enabled is false)."""
    if not cross_enabled():
        return []
    path = checkpoints.combinations.get().output.combinations
    return _checkpoint_view(path, lambda doc: sorted(p["pair"] for p in doc["pairs"]))


def envs():
    """What s14-s17 run on: every domain, then every kept pair."""
    return domains() + pairs()


def is_pair(env):
    return "+" in env


def members(env):
    """Member domains of a pair env (sorted, as in its name); [env] for a domain."""
    return sorted(env.split("+"))


def used_entities():
    """Entities that some domain uses: the only ones s06 generates tables for."""
    return _outlines()["entities"]


def domain_entity_tables(wildcards):
    """Entity tables of a domain, or the union over a pair's members."""
    name = getattr(wildcards, "domain", None) or getattr(wildcards, "pair", None) or wildcards.env
    by_domain = _outlines()["by_domain"]
    ents = set()
    for domain in members(name):
        if domain not in by_domain:
            raise WorkflowError(f"unknown domain {domain!r}: not in {out('blueprints/outlines.json')}")
        ents.update([by_domain[domain]["core_entity"], *by_domain[domain]["peripheral_entities"]])
    return [out(f"database/entities/{e}.json") for e in sorted(ents)]


def all_blueprints(wildcards):
    return [out(f"blueprints/{d}.json") for d in domains()]


#: What a pair env uses instead of a domain's artifact: a pair file ("{pair}") or, for
#: None, the list of its members' files.
PAIR_ARTIFACTS = {
    "blueprints/{domain}.json": None,
    "tool_graphs/{domain}.json": "cross/{pair}/tool_graph.json",
    "policies/{domain}.md": "cross/{pair}/policy.md",
    "policies/{domain}.json": "cross/{pair}/policy.json",
    "servers/{domain}/report.json": "cross/{pair}/server/report.json",
    "servers/{domain}/tools.py": None,
    "database/{domain}": "cross/{pair}/database",
    "tool_lists/{domain}.json": "cross/{pair}/tool_list.json",
}


def env_path(pattern, env):
    """An env's artifact: the domain's own file, or what PAIR_ARTIFACTS maps a pair to."""
    if not is_pair(env):
        return out(pattern.format(domain=env))
    if pattern not in PAIR_ARTIFACTS:
        raise WorkflowError(f"no pair artifact for {pattern!r}")
    pair_pattern = PAIR_ARTIFACTS[pattern]
    if pair_pattern is None:
        return [out(pattern.format(domain=d)) for d in members(env)]
    return out(pair_pattern.format(pair=env))


def env_file(pattern):
    """Input function: an env's per-domain artifact (single-domain envs: env == domain)."""

    def _f(wildcards):
        return env_path(pattern, wildcards.env)

    return _f


def member_files(pattern):
    """Input function: an env's member artifacts, one per domain (never a pair's own file)."""

    def _f(wildcards):
        return [out(pattern.format(domain=d)) for d in wildcards.env.split("+")]

    return _f


def pair_members_file(pattern):
    """Input function: the list of a pair's member artifacts."""

    def _f(wildcards):
        return [out(pattern.format(domain=d)) for d in members(wildcards.pair)]

    return _f


def per_env_file(pattern):
    """Input function: every env's artifact (a pair's own file, e.g. its policy)."""

    def _f(wildcards):
        files = []
        for e in envs():
            p = env_path(pattern, e)
            files += p if isinstance(p, list) else [p]
        return files

    return _f


def per_env(pattern):
    def _f(wildcards):
        return [out(pattern.format(env=e)) for e in envs()]

    return _f


def per_domain(pattern):
    def _f(wildcards):
        return [out(pattern.format(domain=d)) for d in domains()]

    return _f


def domain_outputs(wildcards):
    """Every artifact of the catalogue and of each domain, up to its rollouts: with
    pair_outputs, every artifact, not only the dataset (Snakemake does not rebuild a deleted
    intermediate file whose consumers are up to date, so each one is requested). Apart from
    pair_outputs because an input function is all or
    nothing: while the s10 checkpoint is incomplete, one that asks for it yields nothing, and
    a domain's queries and rollouts would wait for s10 (that is, for every domain's tasks)."""
    files = [
        out("topics.json"),
        out("entities.json"),
        out("entity_graph.json"),
        out("blueprints/index.json"),
    ]
    files += [out(f"database/entities/{e}.json") for e in used_entities()]
    for d in domains():
        files += [
            out(f"blueprints/{d}.json"),
            out(f"tool_lists/{d}.json"),
            out(f"database/{d}"),
            out(f"policies/{d}.md"),
            out(f"tool_graphs/{d}.json"),
            out(f"servers/{d}/report.json"),
        ]
        files += env_outputs(d)
    return files


def pair_outputs(wildcards):
    """The kept pairs' artifacts and the aggregates over every env (they wait for s10)."""
    files = [
        out("dataset/train.jsonl"),
        out("dataset/tasks_stats.json"),
        out("dataset/card.md"),
        out("dataset/stats.json"),
        out("dataset/trajectories.jsonl"),
        out("evaluation/results.jsonl"),
        out("evaluation/summary.json"),
    ]
    for p in pairs():
        files += [out(f"cross/{p}/server/report.json"), out(f"cross/{p}/tool_list.json")]
        files += env_outputs(p)
    return files


def env_outputs(env):
    """An env's s14-s17 and rollout artifacts."""
    return [
        out(f"task_templates/{env}.json"),
        out(f"instances/{env}.json"),
        out(f"tasks/{env}.json"),
        out(f"queries/{env}.jsonl"),
        out(f"rollouts/{env}.jsonl"),
    ]
