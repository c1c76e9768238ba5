"""One source of config defaults: the schema. config/config.yaml, config/README.md, the
typed section models and Snakemake's own default filling must all agree with it."""

from __future__ import annotations

import ast
import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from snakemake.utils import validate as snakemake_validate

from agentskiller.config import SCHEMA_PATH, Config, ConfigError, defaults, resolve, schema
from agentskiller.jobs import StepContext

REPO = Path(__file__).resolve().parents[1]
README = REPO / "config" / "README.md"
CONFIG_YAML = REPO / "config" / "config.yaml"


def schema_leaves(node: dict, prefix: str = "") -> dict[str, dict]:
    """Dotted key -> schema node of every key that is not itself a section with properties."""
    out: dict[str, dict] = {}
    for key, sub in node.get("properties", {}).items():
        name = f"{prefix}{key}"
        if "properties" in sub:
            out.update(schema_leaves(sub, f"{name}."))
        else:
            out[name] = sub
    return out


def config_leaves(cfg: dict, node: dict, prefix: str = "") -> dict[str, Any]:
    """Dotted key -> value of a config, split into keys where the schema has sections."""
    out: dict[str, Any] = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        sub = node.get("properties", {}).get(key, {})
        if isinstance(value, dict) and "properties" in sub:
            out.update(config_leaves(value, sub, f"{name}."))
        else:
            out[name] = value
    return out


def readme_tables(text: str) -> dict[tuple[str, ...], list[list[str]]]:
    """Header cells -> rows of every markdown table (cells stripped)."""
    tables: dict[tuple[str, ...], list[list[str]]] = {}
    header: tuple[str, ...] | None = None
    for line in text.splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = tuple(cells)
            tables.setdefault(header, [])
        elif not set("".join(cells)) <= set("-: "):
            tables[header].append(cells)
    return tables


def readme_defaults() -> dict[str, Any]:
    """key -> default (parsed as YAML) from every `| key | default | meaning |` table."""
    found: dict[str, Any] = {}
    for row in readme_tables(README.read_text()).get(("key", "default", "meaning"), []):
        key, default = _code(row[0]), _code(row[1])
        assert key is not None and default is not None, f"config/README.md row not `key` | `default`: {row}"
        assert key not in found, f"config/README.md lists {key} twice"
        found[key] = yaml.safe_load(default)
    return found


def _code(cell: str) -> str | None:
    """The text of a cell that is exactly one `code span`."""
    m = re.fullmatch(r"`([^`]*)`", cell)
    return m.group(1) if m else None


def readme_differs() -> dict[str, str]:
    tables = readme_tables(README.read_text())
    return {_code(row[0]) or row[0]: row[2] for row in tables.get(("key", "config.yaml", "why"), [])}


# ------------------------------------------------------------- three files agree
def test_every_schema_key_has_a_default():
    missing = [k for k, node in schema_leaves(schema()).items() if "default" not in node]
    assert not missing, f"keys without a default in {SCHEMA_PATH.name}: {missing}"


def test_readme_lists_every_schema_key_with_its_default():
    leaves = schema_leaves(schema())
    documented = readme_defaults()
    assert documented, "no `| key | default | meaning |` rows parsed from config/README.md"
    unknown = sorted(set(documented) - set(leaves))
    assert not unknown, f"config/README.md documents keys the schema does not know: {unknown}"
    undocumented = sorted(set(leaves) - set(documented))
    assert not undocumented, f"schema keys missing from config/README.md: {undocumented}"
    wrong = {
        k: (documented[k], node["default"])
        for k, node in leaves.items()
        if documented[k] != node["default"] or type(documented[k]) is not type(node["default"])
    }
    assert not wrong, f"README default != schema default (README, schema): {wrong}"


def test_config_yaml_keys_are_schema_keys_set_to_their_defaults():
    leaves = schema_leaves(schema())
    values = config_leaves(yaml.safe_load(CONFIG_YAML.read_text()), schema())
    unknown = sorted(set(values) - set(leaves))
    assert not unknown, f"config/config.yaml sets keys the schema does not know: {unknown}"
    explained = readme_differs()
    differing = {k: (v, leaves[k]["default"]) for k, v in values.items() if v != leaves[k]["default"]}
    unexplained = {k: v for k, v in differing.items() if k not in explained}
    assert not unexplained, (
        f"config/config.yaml differs from the schema defaults without a reason in config/README.md "
        f"(value, default): {unexplained}"
    )
    stale = sorted(k for k in explained if k not in differing)
    assert not stale, f"config/README.md explains a difference config/config.yaml no longer has: {stale}"


def test_readme_table_parser_sees_a_wrong_default(tmp_path, monkeypatch):
    """The README check can fail: a changed default in one row is caught."""
    text = README.read_text().replace("| `topics.target_count` | `12` |", "| `topics.target_count` | `13` |")
    assert "`13`" in text
    fake = tmp_path / "README.md"
    fake.write_text(text)
    monkeypatch.setattr(f"{__name__}.README", fake)
    with pytest.raises(AssertionError, match="topics.target_count"):
        test_readme_lists_every_schema_key_with_its_default()


# --------------------------------------------------------------- resolution
def test_defaults_are_what_snakemake_fills_in():
    for partial in ({}, {"seed": 11, "topics": {"target_count": 3}, "llm": {"models": {"text": "m"}}}):
        filled = copy.deepcopy(partial)
        snakemake_validate(filled, str(SCHEMA_PATH))
        assert filled == resolve(partial)
    assert resolve({}) == defaults()


def test_resolve_merges_deeply_and_is_idempotent():
    cfg = resolve({"llm": {"models": {"code": "my-coder"}}, "tasks": {"judge_threshold": 4.5}})
    assert cfg["llm"]["models"] == {**defaults()["llm"]["models"], "code": "my-coder"}
    assert cfg["llm"]["models"]["text"] == defaults()["llm"]["models"]["text"]
    assert cfg["llm"]["provider"] == defaults()["llm"]["provider"]
    assert cfg["tasks"]["judge_threshold"] == 4.5
    assert cfg["tasks"]["max_templates"] == defaults()["tasks"]["max_templates"]
    assert resolve(cfg) == cfg


@pytest.mark.parametrize(
    "raw, key",
    [
        ({"topics": {"target_count": 0}}, "topics.target_count"),
        ({"tasks": {"bogus": 1}}, "tasks.bogus"),
        ({"bogus_key": 1}, "bogus_key"),
        ({"llm": {"cache_mode": "sometimes"}}, "llm.cache_mode"),
        ({"llm": {"models": {"text": 3}}}, "llm.models.text"),
    ],
)
def test_resolve_error_names_the_key(raw, key):
    with pytest.raises(ConfigError, match=re.escape(f"config key {key}:")):
        resolve(raw)


def test_typed_sections_cover_the_schema_exactly():
    """Every schema key is a model field and vice versa (models forbid extras, fields have no
    defaults): a key added to one but not the other fails here."""
    cfg = Config.from_raw({})
    assert cfg.model_dump() == defaults()
    assert cfg.topics.target_count == defaults()["topics"]["target_count"]
    for name, field in Config.model_fields.items():
        assert field.is_required(), name


def test_step_context_resolves_a_partial_config_once():
    ctx = StepContext.from_paths("s01", {"seed": 3, "topics": {"target_count": 5}})
    assert ctx.cfg.seed == ctx.seed == 3
    assert ctx.cfg.topics.target_count == 5
    assert ctx.cfg.topics.batch_size == defaults()["topics"]["batch_size"]
    assert ctx.config["llm"] == defaults()["llm"]  # the dict the LLM client gets
    # meta names the steps' models; the rollout's user/assistant models are not the steps' business
    assert ctx.meta()["models"] == {k: defaults()["llm"]["models"][k] for k in ("text", "code")}
    with pytest.raises(ConfigError, match="config key topics.batch_size:"):
        StepContext.from_paths("s01", {"topics": {"batch_size": 0}})


def test_steps_carry_no_config_fallbacks():
    """Steps read ``ctx.cfg``; a ``config.get(key, literal)`` would be a second default."""
    offenders = []
    for path in sorted((REPO / "agentskiller" / "steps").rglob("*.py")) + [REPO / "agentskiller" / "jobs.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "get"
                and isinstance(node.func.value, ast.Attribute)
                and node.func.value.attr == "config"
            ):
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not offenders, offenders
