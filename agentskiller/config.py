"""The workflow configuration: defaults, resolution and typed sections.

``schemas/config.schema.yaml`` is the only place a default lives (its ``default:`` values).
Snakemake fills them in before any job (``validate`` in rules/common.smk); :func:`resolve`
does the same for anything else (tests, :class:`agentskiller.jobs.StepContext`), so a step
reads ``ctx.cfg.topics.target_count`` and never carries a literal fallback of its own.

The section models have no defaults on purpose: they are built from a resolved dict, and a
key missing there is a bug in the schema, not something to paper over here.
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, model_validator

from agentskiller.yamlload import safe_load

from .io import SCHEMAS_DIR

SCHEMA_PATH = SCHEMAS_DIR / "config.schema.yaml"


class ConfigError(ValueError):
    """A config that does not match the schema; the message names the key."""


@cache
def _schema() -> dict:
    return safe_load(SCHEMA_PATH.read_text(encoding="utf-8"))


def schema() -> dict:
    """The config schema (a copy: callers may not change the cached one)."""
    return copy.deepcopy(_schema())


def _defaults_of(node: dict) -> Any:
    """The default of a schema node; an object's ``default: {}`` is filled from its properties."""
    props = node.get("properties")
    if props is None:
        return copy.deepcopy(node["default"])
    out = copy.deepcopy(node.get("default", {}))
    for key, sub in props.items():
        if "default" in sub:
            out[key] = _defaults_of(sub)
    return out


def defaults() -> dict:
    """The full default config, derived from the schema's ``default:`` values."""
    return _defaults_of(_schema())


def _merge(base: dict, over: dict) -> dict:
    """``over`` deep-merged onto ``base`` (mappings merge, anything else replaces)."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _describe(err: Any) -> str:  # a jsonschema.ValidationError
    where = ".".join(str(p) for p in err.absolute_path)
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        known = set(err.schema.get("properties", {}))
        extra = sorted(k for k in err.instance if k not in known)
        if extra and err.schema.get("additionalProperties") is False:
            keys = ", ".join(f"{where}.{k}" if where else k for k in extra)
            return f"config key {keys}: unknown key (not in {SCHEMA_PATH.name})"
    return f"config key {where or '<root>'}: {err.message}"


def resolve(raw: dict | None) -> dict:
    """``raw`` (a partial config) deep-merged over :func:`defaults` and validated.

    Raises :class:`ConfigError` naming every offending key. Resolving a resolved config
    returns an equal dict.
    """
    import jsonschema  # here: a process that only needs defaults() does not load it

    merged = _merge(defaults(), dict(raw or {}))
    validator = jsonschema.Draft202012Validator(_schema())
    errors = sorted(validator.iter_errors(merged), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        raise ConfigError("invalid config:\n  " + "\n  ".join(_describe(e) for e in errors))
    return merged


# ------------------------------------------------------------------ typed sections
class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelsConfig(_Section):
    text: str
    code: str
    user: str | None  # None = the text model
    assistant: str | None  # None = the text model


class PriceConfig(_Section):
    input_per_mtok: float
    output_per_mtok: float


class LLMSection(_Section):
    """The ``llm`` block as steps see it; the LLM client takes the resolved dict itself."""

    provider: Literal["offline", "openai"]
    base_url: str | None
    api_key_env: str | None
    models: ModelsConfig
    temperature: float
    max_tokens: int
    timeout_s: float
    retry_window_s: float
    max_retries: int | None
    backoff_initial_s: float
    backoff_max_s: float
    max_repair_rounds: int
    repair_temperature_step: float
    repair_temperature_max: float
    response_format: Literal["auto", "json_schema", "json_object", "text"]
    cache_dir: str
    cache_mode: Literal["read_write", "read_only", "off"]
    max_concurrency: int
    max_in_flight: int
    prices: dict[str, PriceConfig]


class TopicsConfig(_Section):
    seeds: list[str]
    target_count: int
    batch_size: int
    max_rounds: int


class EntitiesConfig(_Section):
    batch_size: int


class EntityGraphConfig(_Section):
    batch_size: int


class BlueprintsConfig(_Section):
    outlines_per_person: int
    max_domains: int
    min_tools: int
    max_peripheral: int
    max_relationships: int


class DatabaseConfig(_Section):
    entity_records: int
    relationship_records: int
    max_repair_rounds: int


class PolicyConfig(_Section):
    max_repair_rounds: int


class ToolGraphConfig(_Section):
    min_length: int
    max_length: int
    max_trajectories: int


class ServerConfig(_Section):
    max_repair_rounds: int
    max_tokens: int


class SandboxConfig(_Section):
    """The ``sandbox`` block; the runtime's SandboxSettings takes the resolved dict itself."""

    timeout_s: float
    memory_mb: int
    cpu_s: int
    max_processes: int
    max_output_mb: float
    isolate_network: bool
    disk_mb: int


class TaskKindShares(_Section):
    """Target shares of the task kinds among an env's instances (s15); they sum to 1."""

    action: float
    lookup: float
    refusal: float
    auth_failure: float

    @model_validator(mode="after")
    def _sum_to_one(self) -> TaskKindShares:
        total = self.action + self.lookup + self.refusal + self.auth_failure
        if abs(total - 1) > 1e-6:
            raise ValueError(f"tasks.kinds: the shares sum to {total:g}, not 1")
        return self

    def as_dict(self) -> dict[str, float]:
        return {
            "action": self.action,
            "lookup": self.lookup,
            "refusal": self.refusal,
            "auth_failure": self.auth_failure,
        }


class TasksConfig(_Section):
    judge_threshold: float
    samples_per_template: int
    max_templates: int
    query_repair_rounds: int
    kinds: TaskKindShares
    self_correction_share: float


class CrossConfig(_Section):
    enabled: bool
    max_pairs: int
    min_member_tasks: int
    max_length: int | None


class RolloutConfig(_Section):
    """The ``rollout`` block; ``rollout.settings.RolloutSettings`` takes the resolved dict itself."""

    episodes_per_task: int
    max_turns: int
    max_steps_per_turn: int
    transport: Literal["fast", "mcp"]
    mistake_rate: float
    user: Literal["auto", "offline", "llm"]
    assistant: Literal["auto", "offline", "llm"]
    call_timeout_s: float
    workers: int


class DatasetConfig(_Section):
    min_rows: int


class ClusterConfig(_Section):
    llm_on_submit_host: bool


class Config(_Section):
    """The whole config, typed. Build it with :meth:`from_raw` (or from a resolved dict)."""

    outputs_dir: str
    seed: int
    simulation_time: str
    llm: LLMSection
    topics: TopicsConfig
    entities: EntitiesConfig
    entity_graph: EntityGraphConfig
    blueprints: BlueprintsConfig
    database: DatabaseConfig
    policy: PolicyConfig
    tool_graph: ToolGraphConfig
    server: ServerConfig
    sandbox: SandboxConfig
    tasks: TasksConfig
    cross: CrossConfig
    rollout: RolloutConfig
    dataset: DatasetConfig
    cluster: ClusterConfig

    @classmethod
    def from_raw(cls, raw: dict | None) -> Config:
        return cls.model_validate(resolve(raw))


@cache
def default_config() -> Config:
    """The typed default config (for code that needs a default outside a job, e.g. tests)."""
    return Config.from_raw({})
