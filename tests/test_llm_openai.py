"""The openai provider through the real SDK against the fault-injecting fake server."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest
from fake_openai import ALL_FAULTS, TRANSPORT_FAULTS, FakeOpenAI, Faults, offline_bridge
from pydantic import BaseModel, ConfigDict

from agentskiller.llm import LLMClient, LLMError
from agentskiller.llm.offline import OfflineRequest, handler
from agentskiller.llm.openai_provider import retry_after_s
from agentskiller.llm.usage import parse_usage_lines
from agentskiller.prompts import extract_context

SECRET = "sk-test-SECRET-0123456789abcdef"
SEED = 7


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    tags: list[str]
    score: int


@handler("test.oa_item")
def _item(req: OfflineRequest) -> dict:
    ctx = req.context or {}
    return {
        "name": ctx.get("name", "?"),
        "tags": sorted(req.rng.sample(["a", "b", "c", "d", "e"], 2)),
        "score": req.rng.randint(0, 100),
    }


@handler("test.oa_long")
def _long(req: OfflineRequest) -> dict:
    return {"name": "x" * int((req.context or {}).get("chars", 10)), "tags": [], "score": 1}


def _messages(name: str | dict) -> list[dict]:
    # The same shape agentskiller.prompts.render produces: input data block at the end.
    ctx = json.dumps(name if isinstance(name, dict) else {"name": name}, indent=2, sort_keys=True)
    return [
        {"role": "system", "content": "You produce items."},
        {"role": "user", "content": f"Make an item.\n\n### Input data (JSON)\n```json\n{ctx}\n```"},
    ]


@pytest.fixture
def oa_config(offline_llm_config, monkeypatch) -> dict:
    monkeypatch.setenv("AGENTSKILLER_TEST_KEY", SECRET)
    return {
        **offline_llm_config,
        "provider": "openai",
        "api_key_env": "AGENTSKILLER_TEST_KEY",
        "models": {"text": "fake-text", "code": "fake-code"},
        "timeout_s": 0.4,
        "max_retries": 6,
        "backoff_initial_s": 0.005,
        "backoff_max_s": 0.02,
    }


def _client(cfg: dict, base_url: str, usage=None, **over) -> LLMClient:
    return LLMClient.from_config(
        {**cfg, "base_url": base_url, **over}, seed=SEED, usage_log=usage.logger if usage else None
    )


def _run_items(cfg: dict, base_url: str, names: list[str], **over) -> list[Item]:
    with _client(cfg, base_url, **over) as c:
        return [c.generate("test.oa_item", _messages(n), schema=Item, context={"name": n}) for n in names]


NAMES = [f"item{i}" for i in range(12)]


def test_bridge_answers_like_offline_and_sends_task_header(oa_config):
    offline = LLMClient.from_config({**oa_config, "provider": "offline", "cache_mode": "off"}, seed=SEED)
    expected = [offline.generate("test.oa_item", _messages(n), schema=Item, context={"name": n}) for n in NAMES[:3]]
    with FakeOpenAI(offline_bridge(SEED)) as srv:
        got = _run_items(oa_config, srv.base_url, NAMES[:3], cache_mode="off")
        reqs = srv.chat_requests()
    assert got == expected
    assert all(r.headers["x-agentskiller-task"] == "test.oa_item" for r in reqs)
    assert all(r.headers["authorization"] == f"Bearer {SECRET}" for r in reqs)
    body = reqs[0].body
    assert body["model"] == "fake-text" and body["seed"] == SEED
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"]["properties"]["score"]["type"] == "integer"
    assert extract_context(body["messages"]) == {"name": "item0"}


def test_thirty_percent_faults_give_the_same_result(oa_config):
    with FakeOpenAI(offline_bridge(SEED)) as srv:
        clean = _run_items(oa_config, srv.base_url, NAMES, cache_mode="off")
    faults = Faults(rate=0.3, kinds=ALL_FAULTS, seed=3, retry_after_s=0.01, slow_s=0.8)
    t0 = time.monotonic()
    with FakeOpenAI(offline_bridge(SEED), faults=faults) as srv:
        # A content fault costs a repair round (p = 0.1 per round here); 5 repairs make a
        # streak that exhausts the bound vanishingly unlikely for any fault seed.
        faulty = _run_items(oa_config, srv.base_url, NAMES, cache_mode="off", max_repair_rounds=5)
        seen = {r.fault for r in srv.chat_requests()}
    assert faulty == clean
    assert len(seen - {None}) >= 3, seen  # several fault kinds were really exercised
    assert time.monotonic() - t0 < 30


def test_all_faults_fail_with_endpoint_and_last_error_in_bounded_time(oa_config):
    faults = Faults(rate=1.0, kinds=TRANSPORT_FAULTS, seed=1, retry_after_s=0.01, slow_s=0.6)
    t0 = time.monotonic()
    with FakeOpenAI(offline_bridge(SEED), faults=faults) as srv:
        with pytest.raises(LLMError) as ei:
            _run_items(oa_config, srv.base_url, ["x"], max_retries=3)
        n = len(srv.chat_requests())
        base_url = srv.base_url
    elapsed = time.monotonic() - t0
    msg = str(ei.value)
    assert base_url in msg and "last error" in msg and "4 attempt(s)" in msg
    assert any(s in msg for s in ("HTTP 429", "HTTP 500", "APITimeoutError"))
    assert n == 4 and elapsed < 4 * 0.6 + 2
    assert SECRET not in msg


def test_retry_after_is_honoured(oa_config):
    faults = Faults(rate=1.0, kinds=("429",), retry_after_s=0.3)
    with FakeOpenAI(offline_bridge(SEED), faults=faults) as srv:
        with pytest.raises(LLMError, match="HTTP 429"):
            _run_items(oa_config, srv.base_url, ["x"], max_retries=2)
        times = [r.t for r in srv.chat_requests()]
    assert len(times) == 3
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert all(g >= 0.29 for g in gaps), gaps  # backoff alone would be <= 0.02 s


def test_retry_after_header_forms():
    assert retry_after_s({"retry-after-ms": "250"}) == 0.25
    assert retry_after_s({"retry-after": "3"}) == 3.0
    assert retry_after_s({}) is None
    assert retry_after_s({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # in the past


def test_truncation_doubles_max_tokens(oa_config):
    with FakeOpenAI(offline_bridge(SEED)) as srv:
        with _client(oa_config, srv.base_url, max_tokens=40) as c:
            # ~80 tokens of answer: 40 truncates, 80 (doubled) fits.
            item = c.generate("test.oa_long", _messages({"chars": 250}), schema=Item, context={"chars": 250})
        limits = [r.body["max_tokens"] for r in srv.chat_requests()]
    assert item.name == "x" * 250 and limits == [40, 80]


def test_persistent_truncation_is_an_error(oa_config):
    with FakeOpenAI(offline_bridge(SEED)) as srv:
        with _client(oa_config, srv.base_url, max_tokens=40) as c, pytest.raises(LLMError, match="truncated"):
            c.generate("test.oa_long", _messages({"chars": 2000}), schema=Item, context={"chars": 2000})
        limits = [r.body["max_tokens"] for r in srv.chat_requests()]
    assert limits == [40, 80, 160]  # capped at 4x


def test_llama_cpp_json_schema_500_falls_back_to_json_object(oa_config):
    with FakeOpenAI(offline_bridge(SEED), faults=Faults(reject_json_schema=True)) as srv:
        with _client(oa_config, srv.base_url, cache_mode="off") as c:
            a = c.generate("test.oa_item", _messages("a"), schema=Item, context={"name": "a"})
            b = c.generate("test.oa_item", _messages("b"), schema=Item, context={"name": "b"})
            assert c.provider.learned_mode == "json_object"
        kinds = [(r.body.get("response_format") or {}).get("type") for r in srv.chat_requests()]
        statuses = [r.status for r in srv.chat_requests()]
    assert (a.name, b.name) == ("a", "b")
    assert kinds == ["json_schema", "json_object", "json_object"]  # the working mode is remembered
    assert statuses == [500, 200, 200]


def test_fallback_to_plain_text_puts_schema_in_system_prompt(oa_config):
    faults = Faults(reject_json_schema=True, reject_json_object=True)
    with FakeOpenAI(offline_bridge(SEED), faults=faults) as srv:
        with _client(oa_config, srv.base_url, cache_mode="off") as c:
            a = c.generate("test.oa_item", _messages("a"), schema=Item, context={"name": "a"})
            assert c.provider.learned_mode == "text"
        reqs = srv.chat_requests()
    assert a.name == "a"
    assert [(r.body.get("response_format") or {}).get("type") for r in reqs] == ["json_schema", "json_object", None]
    system = reqs[-1].body["messages"][0]["content"]
    assert system.startswith("You produce items.") and '"score"' in system and "JSON Schema" in system


def test_explicit_response_format_has_no_fallback(oa_config):
    with FakeOpenAI(offline_bridge(SEED), faults=Faults(reject_json_schema=True)) as srv:
        with _client(oa_config, srv.base_url, response_format="json_schema") as c:
            with pytest.raises(LLMError, match="rejected every response format"):
                c.generate("test.oa_item", _messages("a"), schema=Item, context={"name": "a"})


def test_api_key_never_in_cache_or_logs(oa_config, usage_log, caplog):
    caplog.set_level(logging.DEBUG)
    faults = Faults(rate=0.4, kinds=("500", "malformed"), seed=5)
    with FakeOpenAI(offline_bridge(SEED), faults=faults) as srv:
        with _client(oa_config, srv.base_url, usage_log) as c:
            for n in NAMES[:4]:
                c.generate("test.oa_item", _messages(n), schema=Item, context={"name": n})
        assert any(r.headers.get("authorization") == f"Bearer {SECRET}" for r in srv.chat_requests())
    files = list(Path(oa_config["cache_dir"]).rglob("*"))
    assert files
    for f in files:
        if f.is_file():
            assert SECRET not in f.read_text(), f
    assert parse_usage_lines(usage_log.text)
    assert SECRET not in usage_log.text and SECRET not in caplog.text


def test_cache_key_ignores_base_url_and_api_key(oa_config, monkeypatch):
    with FakeOpenAI(offline_bridge(SEED)) as srv:
        first = _run_items(oa_config, srv.base_url, NAMES[:3])
    monkeypatch.setenv("AGENTSKILLER_TEST_KEY", "sk-a-rotated-key")
    with FakeOpenAI(offline_bridge(SEED)) as srv2:
        with _client(oa_config, srv2.base_url) as c:
            again = [c.generate("test.oa_item", _messages(n), schema=Item, context={"name": n}) for n in NAMES[:3]]
            assert c.stats.cache_hits == 3 and c.stats.provider_calls == 0
        assert srv2.chat_requests() == []
    assert again == first


def test_missing_api_key_for_openai_endpoint(oa_config, monkeypatch):
    monkeypatch.delenv("AGENTSKILLER_TEST_KEY")
    with pytest.raises(LLMError, match="AGENTSKILLER_TEST_KEY"):
        LLMClient.from_config({**oa_config, "base_url": None}, seed=SEED)


def test_local_server_without_key(oa_config):
    with FakeOpenAI(offline_bridge(SEED)) as srv:
        with _client(oa_config, srv.base_url, api_key_env=None) as c:
            assert c.generate("test.oa_item", _messages("k"), schema=Item, context={"name": "k"}).name == "k"
        assert srv.chat_requests()[0].headers["authorization"].startswith("Bearer sk-no-key")


def test_non_retryable_status_fails_fast(oa_config):
    with FakeOpenAI(offline_bridge(SEED)) as srv:
        with _client(oa_config, srv.base_url.replace("/v1", "/nope")) as c, pytest.raises(LLMError, match="404"):
            c.generate("test.oa_item", _messages("a"), context={"name": "a"})
        assert len(srv.chat_requests()) == 0 and len(srv.requests) == 1


def test_models_endpoint(oa_config):
    import openai

    with FakeOpenAI(model="m1") as srv:
        client = openai.OpenAI(api_key="x", base_url=srv.base_url, max_retries=0)
        assert [m.id for m in client.models.list()] == ["m1"]
        client.close()
