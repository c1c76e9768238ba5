"""The openai provider through the real SDK against the fault-injecting fake server."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest
from fake_openai import ALL_FAULTS, TRANSPORT_FAULTS, FakeOpenAI, Faults, offline_bridge
from pydantic import BaseModel, ConfigDict

from agentskiller.llm import LLMClient, LLMContextLengthError, LLMError, LLMRequestError, LLMTransportError
from agentskiller.llm.endpoint_memory import endpoint_id
from agentskiller.llm.offline import OfflineRequest, handler
from agentskiller.llm.openai_provider import context_limits, retry_after_s
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
    from agentskiller.llm.offline.catalog import load_catalog
    from agentskiller.llm.offline.provider import load_handlers

    # Loaded lazily on the first request they would take longer than the short timeout below.
    load_handlers()
    load_catalog()
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
        with pytest.raises(LLMTransportError) as ei:
            _run_items(oa_config, srv.base_url, ["x"], max_retries=3)
        n = len(srv.chat_requests())
        base_url = srv.base_url
    elapsed = time.monotonic() - t0
    msg = str(ei.value)
    assert base_url in msg and "last error" in msg and "4 attempt(s)" in msg
    assert any(s in msg for s in ("HTTP 429", "HTTP 500", "APITimeoutError"))
    assert n == 4 and elapsed < 4 * 0.6 + 2
    assert SECRET not in msg
    assert not isinstance(ei.value, LLMError)  # steps catching LLMError must not swallow it


def test_retry_after_is_honoured(oa_config):
    faults = Faults(rate=1.0, kinds=("429",), retry_after_s=0.3)
    with FakeOpenAI(offline_bridge(SEED), faults=faults) as srv:
        with pytest.raises(LLMTransportError, match="HTTP 429"):
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


def test_llama_cpp_json_schema_500_falls_back_to_json_object(oa_config, caplog):
    with FakeOpenAI(offline_bridge(SEED), faults=Faults(reject_json_schema=True)) as srv:
        with _client(oa_config, srv.base_url, cache_mode="off") as c, caplog.at_level("WARNING"):
            a = c.generate("test.oa_item", _messages("a"), schema=Item, context={"name": "a"})
            b = c.generate("test.oa_item", _messages("b"), schema=Item, context={"name": "b"})
            assert c.provider.learned_mode("fake-text") == "json_object"
        kinds = [(r.body.get("response_format") or {}).get("type") for r in srv.chat_requests()]
        statuses = [r.status for r in srv.chat_requests()]
    assert (a.name, b.name) == ("a", "b")
    assert kinds == ["json_schema", "json_object", "json_object"]  # the working mode is remembered
    assert statuses == [500, 200, 200]
    (warning,) = [r.getMessage() for r in caplog.records if "response_format" in r.getMessage()]
    assert "does not accept response_format json_schema for model fake-text" in warning
    assert "falling back to json_object" in warning


def test_fallback_to_plain_text_puts_schema_in_system_prompt(oa_config):
    faults = Faults(reject_json_schema=True, reject_json_object=True)
    with FakeOpenAI(offline_bridge(SEED), faults=faults) as srv:
        with _client(oa_config, srv.base_url, cache_mode="off") as c:
            a = c.generate("test.oa_item", _messages("a"), schema=Item, context={"name": "a"})
            assert c.provider.learned_mode("fake-text") == "text"
        reqs = srv.chat_requests()
    assert a.name == "a"
    assert [(r.body.get("response_format") or {}).get("type") for r in reqs] == ["json_schema", "json_object", None]
    system = reqs[-1].body["messages"][0]["content"]
    assert system.startswith("You produce items.") and '"score"' in system and "JSON Schema" in system


def test_explicit_response_format_has_no_fallback(oa_config):
    with FakeOpenAI(offline_bridge(SEED), faults=Faults(reject_json_schema=True)) as srv:
        with _client(oa_config, srv.base_url, response_format="json_schema") as c:
            with pytest.raises(LLMRequestError, match="rejected every response format"):
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
    with pytest.raises(LLMRequestError, match="AGENTSKILLER_TEST_KEY"):
        LLMClient.from_config({**oa_config, "base_url": None}, seed=SEED)


def test_local_server_without_key(oa_config):
    with FakeOpenAI(offline_bridge(SEED)) as srv:
        with _client(oa_config, srv.base_url, api_key_env=None) as c:
            assert c.generate("test.oa_item", _messages("k"), schema=Item, context={"name": "k"}).name == "k"
        assert srv.chat_requests()[0].headers["authorization"].startswith("Bearer sk-no-key")


def test_non_retryable_status_fails_fast(oa_config):
    with FakeOpenAI(offline_bridge(SEED)) as srv:
        with (
            _client(oa_config, srv.base_url.replace("/v1", "/nope")) as c,
            pytest.raises(LLMRequestError, match="404"),
        ):
            c.generate("test.oa_item", _messages("a"), context={"name": "a"})
        assert len(srv.chat_requests()) == 0 and len(srv.requests) == 1


def test_models_endpoint(oa_config):
    import openai

    with FakeOpenAI(model="m1") as srv:
        client = openai.OpenAI(api_key="x", base_url=srv.base_url, max_retries=0)
        assert [m.id for m in client.models.list()] == ["m1"]
        client.close()


# ------------------------------------------------------------ transport failures (12.1)
@pytest.fixture
def oa_patient(oa_config) -> dict:
    """oa_config without the short timeout: for tests that count requests on a busy machine."""
    return {**oa_config, "timeout_s": 30}


def _outcomes(usage) -> list[str]:
    return [r.get("outcome") for r in parse_usage_lines(usage.text)]


@pytest.mark.parametrize("kind", ["503", "drop"])
def test_outage_shorter_than_the_retry_window_is_survived(oa_patient, usage_log, kind):
    faults = Faults(outage_s=0.6, outage_kind=kind)
    with FakeOpenAI(offline_bridge(SEED), faults=faults) as srv:
        with _client(oa_patient, srv.base_url, usage_log, max_retries=None, retry_window_s=5, backoff_max_s=0.1) as c:
            item = c.generate("test.oa_item", _messages("a"), schema=Item, context={"name": "a"})
            stats = c.stats
        failed = [r for r in srv.chat_requests() if r.fault]
    assert item.name == "a"
    assert len(failed) >= 3, len(failed)  # far more than the old count budget would matter
    outcomes = _outcomes(usage_log)
    assert outcomes == ["error"] * stats.failed_attempts + ["ok"] and stats.failed_attempts == len(failed)
    rows = parse_usage_lines(usage_log.text)
    assert all(("HTTP 503" if kind == "503" else "APIConnectionError") in r["error"] for r in rows[:-1])


@pytest.mark.parametrize("kind", ["503", "drop"])
def test_outage_longer_than_the_window_is_a_transport_error(oa_patient, kind):
    faults = Faults(outage_s=60, outage_kind=kind)
    t0 = time.monotonic()
    with FakeOpenAI(offline_bridge(SEED), faults=faults) as srv:
        with _client(oa_patient, srv.base_url, max_retries=None, retry_window_s=0.5, backoff_max_s=0.05) as c:
            with pytest.raises(LLMTransportError) as ei:
                c.generate("test.oa_item", _messages("a"), schema=Item, context={"name": "a"})
            n = len(srv.chat_requests())
            # the endpoint is known to be down: the next unit fails at once, without a request
            with pytest.raises(LLMTransportError, match="endpoint is down"):
                c.generate("test.oa_item", _messages("b"), schema=Item, context={"name": "b"})
            assert len(srv.chat_requests()) == n
        base_url = srv.base_url
    msg = str(ei.value)
    assert time.monotonic() - t0 < 3
    assert base_url in msg and "llm.retry_window_s=0.5" in msg and "last error:" in msg
    assert ("HTTP 503" if kind == "503" else "APIConnectionError") in msg
    assert SECRET not in msg and n >= 3


def test_retry_after_is_capped_by_the_window(oa_patient):
    faults = Faults(rate=1.0, kinds=("429",), retry_after_s=30)
    t0 = time.monotonic()
    with FakeOpenAI(offline_bridge(SEED), faults=faults) as srv:
        with pytest.raises(LLMTransportError, match="HTTP 429"):
            _run_items(oa_patient, srv.base_url, ["x"], max_retries=None, retry_window_s=0.4)
        n = len(srv.chat_requests())
    assert time.monotonic() - t0 < 2 and n == 2  # one wait, cut to what was left of the window


def test_map_stops_on_a_transport_error_even_when_fn_catches_llm_errors(oa_patient):
    with FakeOpenAI(offline_bridge(SEED), faults=Faults(outage_s=60)) as srv:
        with _client(oa_patient, srv.base_url, max_retries=None, retry_window_s=0.3, max_concurrency=2) as c:

            def unit(name: str) -> Item | None:
                try:  # what a step does: quarantine a unit whose answer stays bad
                    return c.generate("test.oa_item", _messages(name), schema=Item, context={"name": name})
                except LLMError:
                    return None

            with pytest.raises(LLMTransportError):
                c.map(unit, NAMES)


def test_timeout_is_the_per_request_read_timeout(oa_patient):
    with FakeOpenAI(offline_bridge(SEED)) as srv, _client(oa_patient, srv.base_url, timeout_s=300) as c:
        timeout = c.provider.client.timeout
    assert timeout.read == 300 and timeout.connect == 10.0


# ------------------------------------------------------------- real endpoints (13.8)
TEMPERATURE_REJECTED = (
    "Unsupported value: 'temperature' does not support 0.0 with this model. Only the default (1) value is supported."
)


def test_rejected_temperature_is_dropped_once_and_remembered_across_jobs(oa_patient, caplog):
    faults = Faults(reject_params={"temperature": TEMPERATURE_REJECTED})
    with FakeOpenAI(offline_bridge(SEED), faults=faults) as srv:
        with caplog.at_level("WARNING", logger="agentskiller.llm.openai"):
            first = _run_items(oa_patient, srv.base_url, NAMES[:2])
        job1 = srv.chat_requests()
        second = _run_items(oa_patient, srv.base_url, NAMES[2:4])  # a later job, same cache_dir
        job2 = srv.chat_requests()[len(job1) :]
        base_url = srv.base_url
    assert [i.name for i in first + second] == NAMES[:4]
    # job 1: one refused request, then none; job 2 starts without the parameter
    assert [r.status for r in job1] == [400, 200, 200] and [r.status for r in job2] == [200, 200]
    assert ["temperature" in r.body for r in job1 + job2] == [True, False, False, False, False]
    # a rejected parameter is not a rejected response format
    assert {r.body["response_format"]["type"] for r in job1 + job2} == {"json_schema"}
    (warning,) = [r.getMessage() for r in caplog.records if "rejects parameter" in r.getMessage()]
    assert "temperature" in warning and "fake-text" in warning
    memory = json.loads((Path(oa_patient["cache_dir"]) / "endpoints.json").read_text())
    quirks = memory["endpoints"][endpoint_id(base_url)]["fake-text"]
    assert quirks["dropped_params"] == ["temperature"] and quirks["response_format"] == "json_schema"
    assert SECRET not in json.dumps(memory)


def test_max_tokens_is_renamed_when_the_model_wants_max_completion_tokens(oa_patient):
    msg = "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead."
    with FakeOpenAI(offline_bridge(SEED), faults=Faults(reject_params={"max_tokens": msg})) as srv:
        (item,) = _run_items(oa_patient, srv.base_url, ["a"])
        reqs = srv.chat_requests()
    assert item.name == "a" and [r.status for r in reqs] == [400, 200]
    assert "max_completion_tokens" in reqs[1].body and "max_tokens" not in reqs[1].body


def test_other_400_is_refused_without_format_fallback(oa_patient):
    faults = Faults(reject_params={"messages": "messages[1].content: invalid UTF-8 sequence"})
    with FakeOpenAI(offline_bridge(SEED), faults=faults) as srv:
        with pytest.raises(LLMRequestError, match="refused the request for model fake-text.*invalid UTF-8"):
            _run_items(oa_patient, srv.base_url, ["a"])
        reqs = srv.chat_requests()
    assert len(reqs) == 1 and reqs[0].body["response_format"]["type"] == "json_schema"


def test_learned_response_format_is_remembered_across_jobs(oa_patient):
    with FakeOpenAI(offline_bridge(SEED), faults=Faults(reject_json_schema=True)) as srv:
        _run_items(oa_patient, srv.base_url, ["a"])
        n1 = len(srv.chat_requests())
        _run_items(oa_patient, srv.base_url, ["b", "c"])
        later = srv.chat_requests()[n1:]
    assert n1 == 2  # json_schema refused, json_object worked
    assert [(r.body.get("response_format") or {}).get("type") for r in later] == ["json_object", "json_object"]


@pytest.mark.parametrize(
    "style,counts",
    [
        ("vllm", ["maximum context length is 100", "context window 100 tokens", "requested"]),
        ("openai", ["context window 100 tokens", "prompt "]),
        ("llamacpp", ["context window 100 tokens", "prompt "]),
    ],
)
def test_prompt_too_big_for_the_context_is_a_clear_error(oa_patient, style, counts):
    big = {"name": "y" * 2000}  # ~500 prompt tokens
    with FakeOpenAI(offline_bridge(SEED), faults=Faults(context_window=100, context_style=style)) as srv:
        with _client(oa_patient, srv.base_url) as c, pytest.raises(LLMContextLengthError) as ei:
            c.generate("test.oa_item", _messages(big), schema=Item, context=big)
        reqs = srv.chat_requests()
    msg = str(ei.value)
    assert "the prompt is too big for model fake-text" in msg and srv.base_url in msg
    assert all(c in msg for c in counts), msg
    assert len(reqs) == 1  # no retries, no doubled max_tokens, no format fallback
    assert not isinstance(ei.value, LLMError)


def test_answer_budget_too_big_for_the_context_is_shrunk_once(oa_patient):
    with FakeOpenAI(offline_bridge(SEED), faults=Faults(context_window=2000, context_style="vllm")) as srv:
        with _client(oa_patient, srv.base_url, max_tokens=4000) as c:
            item = c.generate("test.oa_item", _messages("a"), schema=Item, context={"name": "a"})
        reqs = srv.chat_requests()
    prompt = FakeOpenAI.prompt_tokens(reqs[0].body)
    assert item.name == "a" and [r.body["max_tokens"] for r in reqs] == [4000, 2000 - prompt]


def test_full_context_truncation_is_not_retried_with_a_bigger_budget(oa_patient, usage_log):
    # llama.cpp without an error: generation stops where the context is full
    ctx = {"chars": 2000}
    with FakeOpenAI(offline_bridge(SEED), faults=Faults(context_window=150, context_style="fill")) as srv:
        with (
            _client(oa_patient, srv.base_url, usage_log, max_tokens=400) as c,
            pytest.raises(LLMContextLengthError) as ei,
        ):
            c.generate("test.oa_long", _messages(ctx), schema=Item, context=ctx)
        reqs = srv.chat_requests()
    assert [r.body["max_tokens"] for r in reqs] == [400]
    assert "context window is full" in str(ei.value) and "max_tokens=400" in str(ei.value)
    (row,) = parse_usage_lines(usage_log.text)
    assert row["outcome"] == "truncated" and row["completion_tokens"] > 0  # paid for, so logged


def test_budget_truncation_is_not_mistaken_for_a_full_context(oa_patient):
    # the server stopped at the budget (completion_tokens == max_tokens): a bigger one may help
    with FakeOpenAI(offline_bridge(SEED), faults=Faults(rate=1.0, kinds=("truncate",))) as srv:
        with _client(oa_patient, srv.base_url, max_tokens=100) as c, pytest.raises(LLMError, match="truncated") as ei:
            c.generate("test.oa_item", _messages("a"), schema=Item, context={"name": "a"})
        limits = [r.body["max_tokens"] for r in srv.chat_requests()]
    assert limits == [100, 200, 400] and not isinstance(ei.value, LLMContextLengthError)


def test_every_attempt_gets_a_usage_line(oa_patient, usage_log):
    with FakeOpenAI(offline_bridge(SEED)) as srv:
        with _client(oa_patient, srv.base_url, usage_log, max_tokens=40) as c:
            c.generate("test.oa_long", _messages({"chars": 250}), schema=Item, context={"chars": 250})
            stats = c.stats
    rows = parse_usage_lines(usage_log.text)
    assert [r["outcome"] for r in rows] == ["truncated", "ok"]
    assert rows[0]["completion_tokens"] == 40 and rows[0]["attempt"] == 1
    assert stats.failed_attempts == 1 and stats.completion_tokens == sum(r["completion_tokens"] for r in rows)


def test_context_limits_from_server_wordings():
    class E:
        def __init__(self, message, body=None):
            self.message, self.body = message, body

    vllm = E(
        "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens "
        "(4000 in the messages, 1000 in the completion)."
    )
    assert context_limits(vllm) == {"window": 4096, "requested": 5000, "prompt": 4000, "completion": 1000}
    new_vllm = E("This model's maximum context length is 8192 tokens and your request has 9100 input tokens")
    assert context_limits(new_vllm) == {"window": 8192, "prompt": 9100}
    llama = E("the request exceeds the available context size", {"n_ctx": 4096, "n_prompt_tokens": 5000})
    assert context_limits(llama) == {"window": 4096, "prompt": 5000}
    assert context_limits(E("too many tokens")) == {}


@pytest.mark.parametrize("style", ["think", "close_only", "field"])
def test_reasoning_is_kept_apart_from_the_answer(oa_patient, style):
    faults = Faults(reasoning=style)
    with FakeOpenAI(offline_bridge(SEED)) as srv:
        clean = _run_items(oa_patient, srv.base_url, NAMES[:2], cache_mode="off")
    with FakeOpenAI(offline_bridge(SEED), faults=faults) as srv:
        with _client(oa_patient, srv.base_url) as c:
            got = [c.generate("test.oa_item", _messages(n), schema=Item, context={"name": n}) for n in NAMES[:2]]
            assert c.stats.repair_rounds == 0  # the decoy draft in the reasoning was never parsed
        assert len(srv.chat_requests()) == 2
    assert got == clean
    entries = [json.loads(f.read_text()) for f in Path(oa_patient["cache_dir"]).rglob("??/*.json")]
    assert entries and all("DECOY" in e["response"]["reasoning"] for e in entries)
    assert all("DECOY" not in e["response"]["text"] and "think>" not in e["response"]["text"] for e in entries)
