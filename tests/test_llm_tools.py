"""LLMClient.chat: tool calling over real HTTP (the fake server), the content fallback for
servers without a tool parser, cache, retries, usage lines, secrets, offline dispatch."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

import pytest
from fake_openai import FakeOpenAI, Faults, tool_responder

from agentskiller.config import resolve
from agentskiller.llm import LLMClient, LLMConfig, LLMError, LLMRequestError, LLMTransportError, ProviderRequest
from agentskiller.llm.base import ProviderResponse
from agentskiller.llm.cache import cache_key
from agentskiller.llm.chat import ChatAnswer, normalize_tool_calls, parse_content_tool_calls
from agentskiller.llm.offline import OfflineRequest, handler
from agentskiller.llm.usage import parse_usage_lines

SECRET = "sk-test-TOOLS-SECRET-9876543210fedcba"
SEED = 7


def _tool(name: str, **props: str) -> dict:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": f"The {name} tool.",
            "parameters": {
                "type": "object",
                "properties": {k: {"type": v} for k, v in props.items()},
                "required": sorted(props),
            },
        },
    }


TOOLS = [_tool("get_user", user_id="integer"), _tool("cancel_order", order_id="string")]
CALLS = [
    {"name": "get_user", "arguments": {"user_id": 3}},
    {"name": "cancel_order", "arguments": {"order_id": "o-17", "reason": "späte Lieferung"}},
]


def _msgs(text: str = "Cancel my order o-17, I am user 3.") -> list[dict]:
    return [{"role": "system", "content": "You are a support agent."}, {"role": "user", "content": text}]


@pytest.fixture
def oa_config(offline_llm_config, monkeypatch) -> dict:
    monkeypatch.setenv("AGENTSKILLER_TEST_KEY", SECRET)
    return {
        **offline_llm_config,
        "provider": "openai",
        "api_key_env": "AGENTSKILLER_TEST_KEY",
        "models": {"text": "fake-text", "code": "fake-code"},
        "timeout_s": 2.0,
        "max_retries": 8,
        "backoff_initial_s": 0.005,
        "backoff_max_s": 0.02,
    }


def _client(cfg: dict, base_url: str | None = None, usage=None, **over) -> LLMClient:
    extra = {"base_url": base_url} if base_url else {}
    return LLMClient.from_config({**cfg, **extra, **over}, seed=SEED, usage_log=usage.logger if usage else None)


def _fixed(text: str):
    return lambda body, headers: text


def _args(answer: ChatAnswer) -> list[tuple[str, dict]]:
    return [(tc.function.name, tc.parsed_arguments()) for tc in answer.tool_calls]


# ------------------------------------------------------------- native calls
def test_native_tool_calls_are_read_and_the_request_carries_the_tools(oa_config, usage_log):
    with FakeOpenAI(tool_responder("native", CALLS)) as srv:
        with _client(oa_config, srv.base_url, usage_log) as c:
            ans = c.chat("test.chat", _msgs(), tools=TOOLS)
        body = srv.chat_requests()[0].body
        headers = srv.chat_requests()[0].headers
    assert ans.content is None and ans.finish_reason == "tool_calls" and not ans.tool_call_fallback
    assert [tc.id for tc in ans.tool_calls] == ["call_fake_1_0", "call_fake_1_1"]
    assert _args(ans) == [(c["name"], c["arguments"]) for c in CALLS]
    assert all(isinstance(tc.function.arguments, str) and tc.type == "function" for tc in ans.tool_calls)
    assert body["tools"] == TOOLS and body["tool_choice"] == "auto"
    assert body["model"] == "fake-text" and body["seed"] == SEED and "response_format" not in body
    assert headers["x-agentskiller-task"] == "test.chat"
    (row,) = parse_usage_lines(usage_log.text)
    assert row["role"] == "assistant" and row["outcome"] == "ok" and row["cache_hit"] is False
    assert "tool_call_fallback" not in row
    assert ans.usage.prompt_tokens > 0 and ans.usage.completion_tokens > 0


def test_a_conversation_with_tool_results(oa_config):
    with FakeOpenAI(tool_responder("native", CALLS[:1])) as srv:
        with _client(oa_config, srv.base_url) as c:
            convo = _msgs()
            first = c.chat("test.chat", convo, tools=TOOLS)
            convo += [
                first.as_message(),
                {"role": "tool", "tool_call_id": first.tool_calls[0].id, "content": '{"name": "Ann"}'},
            ]
            second = c.chat("test.chat", convo, tools=TOOLS)
        sent = srv.chat_requests()[1].body["messages"]
    assert second.content == 'Done: {"name": "Ann"}' and second.tool_calls == [] and second.finish_reason == "stop"
    assert sent[2]["tool_calls"][0]["function"] == {"name": "get_user", "arguments": '{"user_id": 3}'}
    assert sent[3]["tool_call_id"] == first.tool_calls[0].id


def test_role_picks_the_model(oa_config):
    with FakeOpenAI(tool_responder("native")) as srv:
        with _client(oa_config, srv.base_url, models={**oa_config["models"], "assistant": "fake-assistant"}) as c:
            c.chat("test.chat", _msgs(), tools=TOOLS)
            c.chat("test.chat", _msgs(), role="user")
            c.chat("test.chat", _msgs(), role="code")
            named = {"type": "function", "function": {"name": "cancel_order"}}
            c.chat("test.chat", _msgs(), tools=TOOLS, tool_choice=named)
        models = [r.body["model"] for r in srv.chat_requests()]
        no_tools = srv.chat_requests()[1].body
        assert srv.chat_requests()[3].body["tool_choice"] == named
    assert models == ["fake-assistant", "fake-text", "fake-code", "fake-assistant"]
    assert "tools" not in no_tools and "tool_choice" not in no_tools


def test_roles_in_the_config():
    cfg = LLMConfig.model_validate({"models": {"text": "t", "code": "c"}})
    assert [cfg.model_for(r) for r in ("text", "code", "user", "assistant")] == ["t", "c", "t", "t"]
    cfg = LLMConfig.model_validate({"models": {"text": "t", "user": "u", "assistant": "a"}})
    assert (cfg.model_for("user"), cfg.model_for("assistant")) == ("u", "a")
    with pytest.raises(ValueError, match="unknown LLM role 'judge'"):
        cfg.model_for("judge")
    models = resolve({"llm": {"models": {"assistant": "my-agent"}}})["llm"]["models"]
    assert models["assistant"] == "my-agent" and models["user"] is None


def test_bad_arguments_fail_before_any_request(oa_config):
    with FakeOpenAI(tool_responder("native")) as srv:
        with _client(oa_config, srv.base_url) as c:
            with pytest.raises(ValueError, match="tool_choice"):
                c.chat("test.chat", _msgs(), tools=TOOLS, tool_choice="sometimes")
            with pytest.raises(ValueError, match="not an OpenAI function tool"):
                c.chat("test.chat", _msgs(), tools=[{"name": "get_user"}])
        assert srv.chat_requests() == []


# ---------------------------------------------------------- content fallback
@pytest.mark.parametrize("style", ["json", "tags"])
def test_calls_written_into_the_content_are_parsed(oa_config, usage_log, caplog, style):
    caplog.set_level(logging.INFO, logger="agentskiller.llm.openai")
    history = [
        *_msgs(),
        {"role": "assistant", "content": None, "tool_calls": normalize_tool_calls(CALLS[:1])},
        {"role": "tool", "tool_call_id": "call_0", "content": '{"name": "Ann"}'},
        {"role": "user", "content": "And now both, please."},
    ]
    with FakeOpenAI(tool_responder(style, CALLS)) as srv:
        with _client(oa_config, srv.base_url, usage_log) as c:
            ans = c.chat("test.chat", history, tools=TOOLS)
            assert c.stats.tool_call_fallbacks == 1
    assert _args(ans) == [(x["name"], x["arguments"]) for x in CALLS]
    # ids continue after the conversation's calls; arguments re-serialised as JSON text
    assert [tc.id for tc in ans.tool_calls] == ["call_1", "call_2"]
    assert ans.tool_calls[1].function.arguments == json.dumps(CALLS[1]["arguments"], ensure_ascii=False)
    assert ans.tool_call_fallback and ans.finish_reason == "tool_calls"
    assert ans.content == (None if style == "json" else "Let me look that up.")
    (row,) = parse_usage_lines(usage_log.text)
    assert row["tool_call_fallback"] is True
    assert "wrote 2 tool call(s) into its text" in caplog.text


def test_unknown_tool_names_are_ignored(oa_config):
    unknown = '{"name": "drop_database", "arguments": {"really": true}}'
    with FakeOpenAI(_fixed(unknown)) as srv:
        with _client(oa_config, srv.base_url) as c:
            ans = c.chat("test.chat", _msgs(), tools=TOOLS)
    assert ans.tool_calls == [] and ans.content == unknown and not ans.tool_call_fallback
    assert ans.finish_reason == "stop"

    mixed = (
        "On it.\n<tool_call>\n"
        + json.dumps({"name": "drop_database", "arguments": {}})
        + "\n</tool_call>\n<tool_call>\n"
        + json.dumps(CALLS[0])
        + "\n</tool_call>"
    )
    with FakeOpenAI(_fixed(mixed)) as srv:
        with _client(oa_config, srv.base_url, cache_mode="off") as c:
            ans = c.chat("test.chat", _msgs(), tools=TOOLS)
    assert _args(ans) == [("get_user", {"user_id": 3})] and ans.tool_call_fallback
    assert ans.content.startswith("On it.") and "drop_database" in ans.content and "get_user" not in ans.content


def test_no_fallback_when_tools_are_not_to_be_called(oa_config):
    text = json.dumps(CALLS[0])
    with FakeOpenAI(_fixed(text)) as srv:
        with _client(oa_config, srv.base_url) as c:
            none = c.chat("test.chat", _msgs(), tools=TOOLS, tool_choice="none")
            bare = c.chat("test.chat", _msgs())
        assert srv.chat_requests()[0].body["tool_choice"] == "none"
    assert none.tool_calls == [] == bare.tool_calls and none.content == text == bare.content


def test_reasoning_is_never_parsed_for_calls(oa_config):
    decoy = json.dumps({"name": "cancel_order", "arguments": {"order_id": "DECOY"}})
    text = f"<think>I could call {decoy} but first the user.</think>\n{json.dumps(CALLS[0])}"
    with FakeOpenAI(_fixed(text)) as srv:
        with _client(oa_config, srv.base_url) as c:
            ans = c.chat("test.chat", _msgs(), tools=TOOLS)
    assert _args(ans) == [("get_user", {"user_id": 3})] and ans.content is None
    assert "DECOY" in ans.reasoning


@pytest.mark.parametrize(
    "content, calls, left",
    [
        ('{"name": "get_user", "arguments": {"user_id": 1}}', [("get_user", {"user_id": 1})], None),
        ('{"name": "get_user", "parameters": {"user_id": 1}}', [("get_user", {"user_id": 1})], None),
        ('{"tool": "get_user", "arguments": {"user_id": 1}}', [("get_user", {"user_id": 1})], None),
        ('{"function": {"name": "get_user", "arguments": "{\\"user_id\\": 1}"}}', [("get_user", {"user_id": 1})], None),
        (
            '{"type": "function", "function": {"name": "cancel_order", "arguments": {"order_id": "x"}}}',
            [("cancel_order", {"order_id": "x"})],
            None,
        ),
        (
            '[{"name": "get_user", "arguments": {"user_id": 1}}, {"tool": "cancel_order", "arguments": {}}]',
            [("get_user", {"user_id": 1}), ("cancel_order", {})],
            None,
        ),
        ('{"tool_calls": [{"name": "get_user", "arguments": {}}]}', [("get_user", {})], None),
        (
            'Sure, one moment.\n```json\n{"name": "get_user", "arguments": {"user_id": 2}}\n```',
            [("get_user", {"user_id": 2})],
            "Sure, one moment.",
        ),
        (
            'I will call {"name": "get_user", "arguments": {"user_id": 2}} now.',
            [("get_user", {"user_id": 2})],
            "I will call  now.",
        ),
        ('<tool_call>{"name": "get_user", "arguments": {"user_id": 4}}', [("get_user", {"user_id": 4})], None),
        # not calls: data the assistant shows, unknown names, arguments that are no object
        ('Your profile: {"user_id": 3, "name": "Ann"}', None, None),
        ('{"name": "get_user", "arguments": [1, 2]}', None, None),
        ('[{"name": "get_user", "arguments": {}}, {"user_id": 3}]', None, None),
        ("I cannot help with that {not json}.", None, None),
        ('<tool_call>{"name": "rm_rf", "arguments": {}}</tool_call>', None, None),
    ],
)
def test_content_forms(content, calls, left):
    found = parse_content_tool_calls(content, TOOLS)
    if calls is None:
        assert found is None
        return
    assert [(c["name"], c["arguments"]) for c in found.calls] == calls
    assert found.content == left


def test_normalize_keeps_ids_and_string_arguments():
    raw = [
        {"id": "abc", "type": "function", "function": {"name": "get_user", "arguments": '{"user_id":1}'}},
        {"name": "cancel_order", "arguments": {"order_id": "x"}},
    ]
    out = normalize_tool_calls(raw, offset=4)
    assert out[0] == raw[0]
    assert out[1] == {
        "id": "call_5",
        "type": "function",
        "function": {"name": "cancel_order", "arguments": '{"order_id": "x"}'},
    }
    with pytest.raises(ValueError, match="tool call 0"):
        normalize_tool_calls([{"arguments": {}}])


# ------------------------------------------------------------------- cache
def test_the_cache_answers_the_same_request_without_http(oa_config, usage_log):
    with FakeOpenAI(tool_responder("tags", CALLS)) as srv:
        with _client(oa_config, srv.base_url, usage_log) as c:
            first = c.chat("test.chat", _msgs(), tools=TOOLS)
        with _client(oa_config, srv.base_url, usage_log) as c:
            again = c.chat("test.chat", _msgs(), tools=TOOLS)
            assert c.stats.cache_hits == 1 and c.stats.provider_calls == 0
        assert len(srv.chat_requests()) == 1
        assert again == first and again.tool_call_fallback
        # what the answer depends on is in the key: tools, tool_choice, the model
        with _client(oa_config, srv.base_url) as c:
            c.chat("test.chat", _msgs(), tools=TOOLS[:1])
            c.chat("test.chat", _msgs(), tools=TOOLS, tool_choice="required")
            c.chat("test.chat", _msgs(), tools=TOOLS, role="code")
            c.chat("test.chat", _msgs(), tools=TOOLS)  # a hit again
            assert c.stats.provider_calls == 3 and c.stats.cache_hits == 1
        assert len(srv.chat_requests()) == 4
    rows = parse_usage_lines(usage_log.text)
    assert [r["cache_hit"] for r in rows] == [False, True]
    assert all(r["tool_call_fallback"] is True for r in rows)
    entries = [json.loads(p.read_text()) for p in Path(oa_config["cache_dir"]).glob("??/*.json")]
    chat_entries = [e for e in entries if e.get("task") == "test.chat"]
    assert chat_entries and all(e["request"]["tools"] for e in chat_entries)


def test_generate_cache_keys_are_unchanged(offline_llm_config):
    """chat adds its fields to the key only for chat calls: caches written before stay valid."""
    c = _client({**offline_llm_config, "cache_mode": "off"})
    req = ProviderRequest("test.chat_offline", "text", "offline-text", _msgs(), None, None, 0.0, 8192, SEED)
    old_style = cache_key(
        {
            "provider": "offline",
            "model": "offline-text",
            "task": "test.chat_offline",
            "messages": _msgs(),
            "schema": None,
            "temperature": 0.0,
            "max_tokens": 8192,
            "response_format": "text",
            "seed": SEED,
            "salt": c.provider.cache_salt(req),
        }
    )
    assert c._key(req) == old_style
    req.chat = True
    assert c._key(req) != old_style


# ------------------------------------------------------ retries and refusals
def test_429_and_500_are_retried(oa_config, usage_log):
    prompts = [f"question {i}" for i in range(6)]
    with FakeOpenAI(tool_responder("native", CALLS)) as srv:
        with _client(oa_config, srv.base_url, cache_mode="off") as c:
            clean = [c.chat("test.chat", _msgs(p), tools=TOOLS) for p in prompts]
    faults = Faults(rate=0.5, kinds=("429", "500"), seed=1, retry_after_s=0.01)
    with FakeOpenAI(tool_responder("native", CALLS), faults=faults) as srv:
        with _client(oa_config, srv.base_url, usage_log, cache_mode="off") as c:
            faulty = [c.chat("test.chat", _msgs(p), tools=TOOLS) for p in prompts]
            failed = c.stats.failed_attempts
        seen = [r.fault for r in srv.chat_requests()]
    assert {"429", "500"} <= set(seen), seen
    # the fake's ids count its requests: compare what the model said
    assert [_args(a) for a in faulty] == [_args(a) for a in clean]
    errors = [r for r in parse_usage_lines(usage_log.text) if r["outcome"] == "error"]
    assert len(errors) == failed == sum(f is not None for f in seen)


def test_an_endpoint_that_keeps_failing_is_a_transport_error(oa_config):
    faults = Faults(rate=1.0, kinds=("500",))
    with FakeOpenAI(tool_responder("native"), faults=faults) as srv:
        with _client(oa_config, srv.base_url, max_retries=None, retry_window_s=0.3) as c:
            t0 = time.monotonic()
            with pytest.raises(LLMTransportError, match="last error") as err:
                c.chat("test.chat", _msgs(), tools=TOOLS)
    assert time.monotonic() - t0 < 5
    assert "127.0.0.1" in str(err.value) and not isinstance(err.value, LLMError)


def test_a_server_refusing_tools_is_a_request_error(oa_config):
    # vLLM started without --enable-auto-tool-choice answers like this
    faults = Faults(
        reject_params={"tools": '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser'}
    )
    with FakeOpenAI(tool_responder("native"), faults=faults) as srv:
        with _client(oa_config, srv.base_url) as c:
            with pytest.raises(LLMRequestError, match="enable-auto-tool-choice"):
                c.chat("test.chat", _msgs(), tools=TOOLS)
        assert len(srv.chat_requests()) == 1


def test_read_only_cache_miss_is_a_request_error(oa_config):
    with FakeOpenAI(tool_responder("native")) as srv:
        with _client(oa_config, srv.base_url, cache_mode="read_only") as c:
            with pytest.raises(LLMRequestError, match="cache miss in read_only mode"):
                c.chat("test.chat", _msgs(), tools=TOOLS)
        assert srv.chat_requests() == []


# ------------------------------------------------------------------ secrets
def test_api_key_never_in_cache_or_logs(oa_config, usage_log, caplog):
    caplog.set_level(logging.DEBUG)
    faults = Faults(rate=0.4, kinds=("429", "500"), seed=5)
    with FakeOpenAI(tool_responder("json", CALLS), faults=faults) as srv:
        with _client(oa_config, srv.base_url, usage_log) as c:
            for i in range(4):
                c.chat("test.chat", _msgs(f"q{i}"), tools=TOOLS)
        chats = srv.chat_requests()
    assert chats and all(r.headers.get("authorization") == f"Bearer {SECRET}" for r in chats)
    for rec in chats:
        assert SECRET.encode() not in rec.raw
        assert SECRET not in repr({k: v for k, v in rec.headers.items() if k != "authorization"})
    files = [p for p in Path(oa_config["cache_dir"]).rglob("*") if p.is_file()]
    assert files
    assert [p for p in files if SECRET.encode() in p.read_bytes()] == []
    assert parse_usage_lines(usage_log.text)
    assert SECRET not in usage_log.text and SECRET not in caplog.text


# ------------------------------------------------------------------ offline
@handler("test.chat_offline")
def _offline_agent(req: OfflineRequest) -> dict | str:
    if req.tools and req.messages[-1]["role"] != "tool":
        name = req.tools[0]["function"]["name"]
        return {
            "content": "Checking.",
            "tool_calls": [{"name": name, "arguments": {"user_id": req.rng.randint(1, 99)}}],
        }
    return "Done."


@handler("test.chat_offline_bad")
def _offline_bad(req: OfflineRequest) -> dict:
    return {"text": "not a turn"}


def test_offline_chat_dispatches_to_the_task_handler(offline_llm_config, usage_log):
    with _client(offline_llm_config, usage=usage_log) as c:
        first = c.chat("test.chat_offline", _msgs(), tools=TOOLS, context={"user": 3})
        assert c.stats.provider_calls == 1
    assert first.content == "Checking." and first.finish_reason == "tool_calls" and not first.tool_call_fallback
    assert [tc.id for tc in first.tool_calls] == ["call_0"] and first.tool_calls[0].function.name == "get_user"
    assert isinstance(first.tool_calls[0].function.arguments, str)
    assert first.model == "offline-text"
    with _client(offline_llm_config) as c:
        assert c.chat("test.chat_offline", _msgs(), tools=TOOLS, context={"user": 3}) == first
        assert c.stats.cache_hits == 1
    with _client({**offline_llm_config, "cache_mode": "off"}) as c:
        assert c.chat("test.chat_offline", _msgs(), tools=TOOLS, context={"user": 3}) == first
        convo = [
            *_msgs(),
            first.as_message(),
            {"role": "tool", "tool_call_id": "call_0", "content": "{}"},
        ]
        done = c.chat("test.chat_offline", convo, tools=TOOLS)
        assert done.content == "Done." and done.tool_calls == [] and done.finish_reason == "stop"
        with pytest.raises(LLMError, match="offline chat handler returned dict"):
            c.chat("test.chat_offline_bad", _msgs())
        with pytest.raises(LLMError, match="no handler for task test.chat_nobody"):
            c.chat("test.chat_nobody", _msgs())
    (row,) = parse_usage_lines(usage_log.text)
    assert row["task"] == "test.chat_offline" and row["role"] == "assistant" and row["provider"] == "offline"


# -------------------------------------------------------------- concurrency
class _SlowProvider:
    name = "slow"

    def __init__(self) -> None:
        self.active = 0
        self.peak = 0
        self.lock = threading.Lock()

    def cache_salt(self, request):
        return {}

    def complete(self, request):
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
        time.sleep(0.03)
        with self.lock:
            self.active -= 1
        return ProviderResponse(
            "", request.model, 1, 1, "tool_calls", tool_calls=[{"name": "get_user", "arguments": {}}]
        )


def test_chat_calls_share_the_concurrency_limit(offline_llm_config):
    prov = _SlowProvider()
    c = LLMClient(LLMConfig.model_validate({**offline_llm_config, "max_concurrency": 2, "cache_mode": "off"}), prov)
    answers: list[ChatAnswer] = []
    # more threads than llm.max_concurrency, none of them from map(): the client's own limit holds
    threads = [
        threading.Thread(target=lambda i=i: answers.append(c.chat("test.chat", _msgs(f"q{i}"), tools=TOOLS)))
        for i in range(6)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(answers) == 6 and all(a.tool_calls[0].id == "call_0" for a in answers)
    assert 1 < prov.peak <= 2
