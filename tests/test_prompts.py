"""Prompt loader/renderer (agentskiller.prompts) and its inverse used by the fake server."""

from __future__ import annotations

import os

import pytest
from fake_openai import FakeOpenAI, Faults, offline_bridge
from pydantic import BaseModel

from agentskiller.llm import LLMClient
from agentskiller.llm.base import format_feedback
from agentskiller.llm.offline import OfflineRequest, handler
from agentskiller.prompts import PromptError, extract_context, load, prompt_version, render

EXAMPLE = """\
version: 2
greet:
  system: |
    You are a $persona. Reply in JSON like {"greeting": "..."}; costs are in $$.
  user: |
    Greet $who. Known facts:
    $facts
bare:
  user: Just $x.
"""


@pytest.fixture
def prompts_dir(tmp_path, monkeypatch):
    d = tmp_path / "prompts"
    d.mkdir()
    (d / "example.yaml").write_text(EXAMPLE)
    monkeypatch.setenv("AGENTSKILLER_PROMPTS_DIR", str(d))
    return d


def test_render_system_user_and_input_block(prompts_dir):
    ctx = {"b": 2, "a": [1, "ü"]}
    msgs = render("example", "greet", ctx, persona="robot", who="Ada", facts={"z": 1, "y": [2]})
    assert [m["role"] for m in msgs] == ["system", "user"]
    assert msgs[0]["content"] == 'You are a robot. Reply in JSON like {"greeting": "..."}; costs are in $.'
    user = msgs[1]["content"]
    assert user.startswith('Greet Ada. Known facts:\n{\n  "y": [\n    2\n  ],\n  "z": 1\n}')
    assert user.endswith('### Input data (JSON)\n```json\n{\n  "a": [\n    1,\n    "ü"\n  ],\n  "b": 2\n}\n```')
    assert extract_context(msgs) == ctx


def test_render_is_canonical_regardless_of_key_order(prompts_dir):
    a = render("example", "bare", {"x": 1, "y": 2}, x="it")
    b = render("example", "bare", {"y": 2, "x": 1}, x="it")
    assert a == b and a[0]["role"] == "user" and a[0]["content"].startswith("Just it.")


def test_missing_variable_prompt_or_file(prompts_dir):
    with pytest.raises(PromptError, match=r"\$who was not given"):
        render("example", "greet", {}, persona="p", facts="f")
    with pytest.raises(PromptError, match="'nothere' not found"):
        render("example", "nothere", {})
    with pytest.raises(PromptError, match="no prompt file for step 'nostep'"):
        render("nostep", "x", {})


def test_version_and_reload_on_edit(prompts_dir):
    assert prompt_version("example") == "2"
    f = prompts_dir / "example.yaml"
    f.write_text(EXAMPLE.replace("version: 2", "version: 3"))
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # coarse mtime file systems
    assert prompt_version("example") == "3"
    f.write_text("greet: {user: x}\n")
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000))
    with pytest.raises(PromptError, match="'version'"):
        load("example")


def test_extract_context_skips_repair_messages_and_missing_block(prompts_dir):
    msgs = render("example", "bare", {"k": [1, 2]}, x="y")
    msgs += [
        {"role": "assistant", "content": "```json\n{}\n```"},
        {"role": "user", "content": format_feedback(["k: wrong"])},
    ]
    assert extract_context(msgs) == {"k": [1, 2]}
    assert extract_context([{"role": "user", "content": "no block"}]) is None


class Greeting(BaseModel):
    greeting: str


@handler("test.prompt_greet")
def _greet(req: OfflineRequest) -> dict:
    if req.round == 0:
        return {"greeting": 1}  # wrong type: forces one repair round through the bridge too
    return {"greeting": f"hi {req.context['who']} #{req.rng.randint(0, 999)} after {req.feedback}"}


def test_rendered_prompt_gives_same_answer_offline_and_via_fake_server(prompts_dir, offline_llm_config, monkeypatch):
    ctx = {"who": "Ada"}
    msgs = render("example", "greet", ctx, persona="bot", who="Ada", facts="none")
    offline = LLMClient.from_config({**offline_llm_config, "cache_mode": "off"}, seed=3)
    want = offline.generate("test.prompt_greet", msgs, schema=Greeting, context=ctx)
    assert want.greeting.startswith("hi Ada #") and "greeting: Input should be a valid string" in want.greeting
    monkeypatch.setenv("K", "sk-x")
    cfg = {**offline_llm_config, "provider": "openai", "api_key_env": "K", "cache_mode": "off", "timeout_s": 5}
    with FakeOpenAI(offline_bridge(3), faults=Faults(reject_json_schema=True)) as srv:
        with LLMClient.from_config({**cfg, "base_url": srv.base_url}, seed=3) as c:
            got = c.generate("test.prompt_greet", msgs, schema=Greeting, context=ctx)
    assert got == want
