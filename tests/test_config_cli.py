"""Nested ``--config`` overrides get the types the config schema asks for (agentskiller/config_cli.py)."""

from __future__ import annotations

import yaml
from workflow_helpers import REPO, snakemake

from agentskiller.config_cli import coerce

SCHEMA = yaml.safe_load((REPO / "schemas" / "config.schema.yaml").read_text())


def test_strings_from_the_command_line_are_typed_by_the_schema():
    raw = {
        "llm": {"provider": "openai", "api_key_env": "null", "base_url": "http://h/v1", "max_tokens": "4096"},
        "topics": {"target_count": "20", "seeds": ["travel"]},
        "cross": {"enabled": "false", "max_length": "~"},
        "tasks": {"judge_threshold": "3.5"},
        "seed": 11,
    }
    got = coerce(raw, SCHEMA)
    assert got["llm"] == {"provider": "openai", "api_key_env": None, "base_url": "http://h/v1", "max_tokens": 4096}
    assert got["topics"] == {"target_count": 20, "seeds": ["travel"]}
    assert got["cross"] == {"enabled": False, "max_length": None}
    assert got["tasks"]["judge_threshold"] == 3.5 and got["seed"] == 11


def test_strings_where_the_schema_takes_strings_are_left_alone():
    raw = {"llm": {"models": {"text": "123", "code": "true"}, "cache_dir": "null-dir"}, "outputs_dir": "42"}
    assert coerce(raw, SCHEMA) == raw
    # a value that does not fit stays a string, so the schema check names the key
    assert coerce({"topics": {"target_count": "many"}}, SCHEMA) == {"topics": {"target_count": "many"}}


def test_readme_local_server_command_parses(tmp_path):
    """The README's OpenAI-compatible command, as written, passes config validation (dry run)."""
    res = snakemake(
        tmp_path / "w",
        "-n",
        "--config",
        'llm={provider: openai, base_url: "http://127.0.0.1:8000/v1", api_key_env: null, '
        "models: {text: Qwen/Qwen2.5-7B-Instruct, code: Qwen/Qwen2.5-Coder-7B-Instruct}}",
        "topics={target_count: 20}",
        env={"OPENAI_API_KEY": ""},
        timeout=300,
    )
    assert res.returncode == 0, res.output[-3000:]
    assert "is not set" not in res.output and "is not of type" not in res.output
