"""The one LLM client every step uses.

Size: over 400 lines because generate (with its repair loop), chat and map share one
request path (cache, concurrency limit, stats, usage lines) that is kept in one place.

``generate`` runs the self-correction loop: ask, parse, validate (pydantic), check
(semantic, caller-supplied), and on problems append the answer plus a repair message and ask
again, up to a bound. Every round is looked up in / written to the response cache on its
own, so a rerun replays the whole conversation (repairs included) with zero provider calls,
and every round writes one usage line (plus one per failed, truncated or refused provider
attempt before it). Repair rounds step the temperature up a little
(``llm.repair_temperature_step``), so a model at temperature 0 does not repeat itself.

``chat`` is one assistant (or simulated user) turn with OpenAI-format tools for rollouts:
no repair loop (a conversation answers a bad turn itself), otherwise the same path: one
cache entry per request (the key adds the tools and ``tool_choice``), the same retries and
errors, one usage line per call and per failed attempt, the same ``llm.max_concurrency``.

Errors: :class:`LLMError` only for an answer that stays unacceptable; transport failures
(:class:`LLMTransportError`) and refused requests (:class:`LLMRequestError`) pass through
untouched and, in :meth:`LLMClient.map`, stop the remaining items.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from .base import (
    Attempt,
    LLMConfig,
    LLMError,
    LLMRequestError,
    LLMTransportError,
    ProviderRequest,
    ProviderResponse,
    format_feedback,
)
from .cache import ResponseCache, cache_key
from .chat import ChatAnswer, chat_answer, checked_tools
from .extract import ExtractionError, extract_code, extract_json
from .usage import log_usage

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger("agentskiller.llm")

CheckFn = Callable[[Any], "list[str] | None"]


@dataclass
class LLMStats:
    provider_calls: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    repair_rounds: int = 0
    failed_attempts: int = 0  # provider attempts that gave no answer (their tokens are counted too)
    cost_usd: float = 0.0
    tool_call_fallbacks: int = 0  # chat answers whose tool calls were parsed from the text

    def __getitem__(self, name: str) -> Any:  # stats["cache_hits"] works too
        return getattr(self, name)

    def as_dict(self) -> dict:
        return asdict(self)


def validation_messages(exc: ValidationError) -> list[str]:
    """pydantic errors as short lines a model can act on: ``path: message``."""
    out = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(p) for p in err.get("loc", ())) or "<root>"
        out.append(f"{where}: {err.get('msg')}")
    return out


class LLMClient:
    def __init__(
        self,
        config: LLMConfig,
        provider: Any,
        seed: int = 0,
        usage_log: logging.Logger | None = None,
        cache: ResponseCache | None = None,
    ) -> None:
        self.config = config
        self.provider = provider
        self.seed = int(seed)
        self.usage_log = usage_log
        self.cache = cache or ResponseCache(config.cache_dir, config.cache_mode)
        self.stats = LLMStats()
        self._stats_lock = threading.Lock()
        # Bounds simultaneous provider calls across all threads of this client (map()
        # may nest), independent of how many pools exist.
        self._slots = threading.BoundedSemaphore(config.max_concurrency)
        self._closed = False

    @classmethod
    def from_config(
        cls, llm_config: dict | LLMConfig, seed: int = 0, usage_log: logging.Logger | None = None
    ) -> LLMClient:
        cfg = llm_config if isinstance(llm_config, LLMConfig) else LLMConfig.model_validate(llm_config or {})
        if cfg.provider == "offline":
            from .offline.provider import OfflineProvider

            provider: Any = OfflineProvider(seed)
        else:
            from .openai_provider import OpenAIProvider

            provider = OpenAIProvider(cfg)
        return cls(cfg, provider, seed=seed, usage_log=usage_log)

    # ------------------------------------------------------------------ API
    def generate(
        self,
        task: str,
        messages: Sequence[dict],
        schema: type[BaseModel] | None = None,
        role: str = "text",
        context: Any = None,
        check: CheckFn | None = None,
        max_rounds: int | None = None,
        max_tokens: int | None = None,
    ) -> Any:
        """Ask until the answer parses, validates and passes ``check``.

        ``max_rounds`` is the number of *repair* rounds after the first answer (default
        ``llm.max_repair_rounds``; 0 = no repair); ``max_tokens`` the answer budget of this
        call (default ``llm.max_tokens``; a step with long answers sets its own). Returns a ``schema`` instance, or the text
        (for ``role="code"`` the first fenced code block) when no schema is given; ``check``
        gets that return value and returns a list of problems (empty = accepted).
        """
        if self._closed:
            raise LLMError("LLM client is closed")
        model = self.config.model_for(role)
        repairs = self.config.max_repair_rounds if max_rounds is None else max(0, int(max_rounds))
        schema_json = schema.model_json_schema() if schema is not None else None
        convo: list[dict] = [dict(m) for m in messages]
        feedback: list[str] = []
        errors: list[str] = []
        for rnd in range(repairs + 1):
            req = ProviderRequest(
                task=task,
                role=role,
                model=model,
                messages=[dict(m) for m in convo],
                schema=schema,
                schema_json=schema_json,
                temperature=self.config.round_temperature(rnd),
                max_tokens=int(max_tokens) if max_tokens else self.config.max_tokens,
                seed=self.seed,
                context=context,
                feedback=list(feedback),
                round=rnd,
            )
            text = self._complete(req).text
            value, errors = self._accept(text, schema, role, check)
            if not errors:
                return value
            log.info("task %s round %d: %d problem(s): %s", task, rnd, len(errors), "; ".join(errors)[:500])
            feedback = errors
            convo += [{"role": "assistant", "content": text}, {"role": "user", "content": format_feedback(errors)}]
            if rnd < repairs:
                with self._stats_lock:
                    self.stats.repair_rounds += 1
        shown = "\n  ".join(errors[:20])
        raise LLMError(f"task {task}: no acceptable answer after {repairs + 1} round(s); last errors:\n  {shown}")

    def chat(
        self,
        task: str,
        messages: Sequence[dict],
        tools: Sequence[dict] | None = None,
        role: str = "assistant",
        tool_choice: str | dict = "auto",
        context: Any = None,
    ) -> ChatAnswer:
        """One turn of a conversation: the model's answer to ``messages`` (OpenAI chat
        messages, assistant ``tool_calls`` and ``tool`` results included), offered ``tools``
        (OpenAI function tools, ``{"type": "function", "function": {name, description,
        parameters}}``) under ``tool_choice`` (``auto``, ``none``, ``required`` or a dict
        naming one function; ignored without tools).

        The same request gives the same :class:`ChatAnswer` (from the cache after the first
        time). Nothing is validated or repaired: an empty answer or a call to an unknown tool
        is the caller's to handle. ``role`` picks the model (``llm.models.<role>``; ``user``
        and ``assistant`` default to the text model). ``context`` reaches offline handlers
        (and their cache salt) only. Raises :class:`LLMTransportError` /
        :class:`LLMRequestError` like :meth:`generate`, :class:`LLMError` when the offline
        handler answers something that is not a turn.
        """
        if self._closed:
            raise LLMError("LLM client is closed")
        model = self.config.model_for(role)
        tool_list = checked_tools(tools, tool_choice)
        req = ProviderRequest(
            task=task,
            role=role,
            model=model,
            messages=[dict(m) for m in messages],
            schema=None,
            schema_json=None,
            temperature=self.config.temperature,
            max_tokens=self.config.max_tokens,
            seed=self.seed,
            context=context,
            chat=True,
            tools=tool_list,
            tool_choice=tool_choice if tool_list else None,
        )
        resp = self._complete(req)
        try:
            return chat_answer(resp, req.messages)
        except ValueError as exc:
            raise LLMError(
                f"task {task}: the {self.provider.name} provider answered malformed tool calls: {exc}"
            ) from exc

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """``[fn(x) for x in items]`` on up to ``llm.max_concurrency`` threads, in input
        order. The first failure (in input order) is raised after all items finished,
        except an :class:`LLMTransportError` / :class:`LLMRequestError` (the endpoint is down
        or refuses): then items not yet started are cancelled and that error is raised as
        soon as the running ones end, whatever ``fn`` does with other errors."""
        items = list(items)
        if len(items) <= 1 or self.config.max_concurrency <= 1:
            return [fn(x) for x in items]
        fatal = (LLMTransportError, LLMRequestError)
        pool = ThreadPoolExecutor(max_workers=min(self.config.max_concurrency, len(items)), thread_name_prefix="llm")
        try:
            futures = [pool.submit(fn, x) for x in items]
            pending = set(futures)
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                bad = next((f for f in futures if f in done and isinstance(f.exception(), fatal)), None)
                if bad is not None:
                    for f in pending:
                        f.cancel()
                    pool.shutdown(wait=True)
                    raise bad.exception()
            return [f.result() for f in futures]
        finally:
            pool.shutdown(wait=True)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.provider.close()

    def __enter__(self) -> LLMClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------ internals
    def _key(self, req: ProviderRequest) -> str:
        fields = {
            "provider": self.provider.name,
            "model": req.model,
            "task": req.task,
            "messages": req.messages,
            "schema": req.schema_json,
            "temperature": req.temperature,
            "max_tokens": req.max_tokens,
            "response_format": self.config.response_format if req.schema is not None else "text",
            # Rounds > 0 run at the stepped temperature, already in "temperature".
            "seed": req.seed,
            "salt": self.provider.cache_salt(req),
        }
        if req.chat:  # only for chat calls: generate's keys (and caches) stay as they were
            fields.update(chat=True, tools=req.tools, tool_choice=req.tool_choice)
        return cache_key(fields)

    def _attempt_logger(self, req: ProviderRequest) -> Callable[[Attempt], None]:
        """Usage line + stats for one provider attempt that did not give the answer."""
        counter = [0]

        def on_attempt(a: Attempt) -> None:
            counter[0] += 1
            cost = self.config.cost(req.model, a.prompt_tokens, a.completion_tokens)
            with self._stats_lock:
                self.stats.failed_attempts += 1
                self.stats.prompt_tokens += a.prompt_tokens
                self.stats.completion_tokens += a.completion_tokens
                self.stats.cost_usd += cost
            self._usage_line(
                req,
                a.prompt_tokens,
                a.completion_tokens,
                a.latency_s,
                cost,
                cache_hit=False,
                attempt=counter[0],
                outcome=a.outcome,
                error=(a.error or "")[:300] or None,
            )

        return on_attempt

    def _usage_line(
        self, req: ProviderRequest, prompt: int, completion: int, latency: float, cost: float, **extra: Any
    ) -> None:
        """One ``LLM_USAGE`` line in the job log (the keys agentskiller.usage sums)."""
        log_usage(
            self.usage_log,
            {
                "task": req.task,
                "role": req.role,
                "model": req.model,
                "provider": self.provider.name,
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "latency_s": round(latency, 4),
                "cache_hit": extra.pop("cache_hit"),
                "round": req.round,
                "cost_usd": round(cost, 8),
                **extra,
            },
        )

    def _complete(self, req: ProviderRequest) -> ProviderResponse:
        t0 = time.perf_counter()
        key = self._key(req) if self.cache.enabled else ""
        entry = self.cache.lookup(key, req.task) if key else None
        if entry is not None:
            r = entry["response"]
            resp = ProviderResponse(
                text=r["text"],
                model=r.get("model", req.model),
                prompt_tokens=int(r.get("prompt_tokens", 0)),
                completion_tokens=int(r.get("completion_tokens", 0)),
                finish_reason=r.get("finish_reason"),
                reasoning=r.get("reasoning"),
                tool_calls=r.get("tool_calls"),
                tool_call_fallback=bool(r.get("tool_call_fallback")),
            )
            hit = True
        else:
            req.on_attempt = self._attempt_logger(req)
            with self._slots:
                resp = self.provider.complete(req)
            hit = False
            if key:
                self.cache.put(
                    key,
                    {
                        "task": req.task,
                        "role": req.role,
                        "round": req.round,
                        "provider": self.provider.name,
                        "request": {
                            "model": req.model,
                            "messages": req.messages,
                            **({"tools": req.tools, "tool_choice": req.tool_choice} if req.chat else {}),
                        },
                        "response": {
                            "text": resp.text,
                            "model": resp.model,
                            "prompt_tokens": resp.prompt_tokens,
                            "completion_tokens": resp.completion_tokens,
                            "finish_reason": resp.finish_reason,
                            **({"reasoning": resp.reasoning} if resp.reasoning else {}),
                            **({"tool_calls": resp.tool_calls} if resp.tool_calls else {}),
                            **({"tool_call_fallback": True} if resp.tool_call_fallback else {}),
                        },
                    },
                )
        latency = time.perf_counter() - t0
        cost = 0.0 if hit else self.config.cost(req.model, resp.prompt_tokens, resp.completion_tokens)
        with self._stats_lock:
            if hit:
                self.stats.cache_hits += 1
            else:
                self.stats.provider_calls += 1
                self.stats.prompt_tokens += resp.prompt_tokens
                self.stats.completion_tokens += resp.completion_tokens
                self.stats.cost_usd += cost
            if resp.tool_call_fallback:
                self.stats.tool_call_fallbacks += 1
        self._usage_line(
            req,
            resp.prompt_tokens,
            resp.completion_tokens,
            latency,
            cost,
            cache_hit=hit,
            outcome="ok",
            tool_call_fallback=resp.tool_call_fallback or None,
        )
        return resp

    @staticmethod
    def _accept(text: str, schema: type[BaseModel] | None, role: str, check: CheckFn | None) -> tuple[Any, list[str]]:
        """(value, problems) for one answer; problems empty = accepted."""
        if schema is None:
            value: Any = extract_code(text) if role == "code" else text
            if not value.strip():
                return value, ["the answer is empty"]
        else:
            try:
                data = extract_json(text)
            except ExtractionError as exc:
                return None, [str(exc)]
            try:
                value = schema.model_validate(data)
            except ValidationError as exc:
                return None, validation_messages(exc)
        if check is not None:
            try:
                problems = check(value)
            except Exception as exc:  # a checker crash on odd input is a problem of the answer
                problems = [f"the answer could not be checked: {type(exc).__name__}: {exc}"]
            problems = [str(p) for p in (problems or [])]
            if problems:
                return value, problems
        return value, []
