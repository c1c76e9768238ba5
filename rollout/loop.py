"""The episode loop and :func:`run_rollouts`.

An episode: the row's messages (policy, first user message), then turns of assistant
messages - each tool call executed through the transport, its result appended as a ``tool``
message - and user replies, until the user's stop token or ``max_turns`` user turns. Every
episode starts from a fresh state (``transport.reset()``).

Output: one :class:`agentskiller.models.episodes.Episode` per line. Resumable by
``(query_id, episode)``: each finished episode is appended (and flushed) to
``<out>.partial``, a restart skips what is there, and the final file is written atomically,
sorted by ``(env, query_id, episode)``. A kill loses only the episodes in flight. The
offline simulators are deterministic per ``(seed, query, episode)``, so the same settings
give a byte-identical file, whatever the number of workers. A partial file written with
other settings (``<out>.partial.meta``) is discarded, not mixed in.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from agentskiller.models.episodes import Episode, Mistake, Usage

from .llm_agents import AssistantFailure, LLMAssistant, LLMUser
from .nlu import stop_reason
from .offline_assistant import MISTAKE_KINDS, OfflineAssistant
from .offline_assistant import NAME as OFFLINE_ASSISTANT
from .offline_user import NAME as OFFLINE_USER
from .offline_user import OfflineUser
from .settings import RolloutSettings
from .transport import Transport, TransportError, make_transport, server_dir

log = logging.getLogger("rollout")

__all__ = ["episode_id", "episode_seed", "play_episode", "run_rollouts", "load_rows", "read_episodes"]


def episode_id(query_id: str, episode: int) -> str:
    """``sha256("<query_id>:<episode>")[:16]``."""
    return hashlib.sha256(f"{query_id}:{episode}".encode()).hexdigest()[:16]


def episode_seed(seed: int, query_id: str, episode: int) -> int:
    return int(hashlib.sha256(f"{seed}:{query_id}:{episode}".encode()).hexdigest()[:12], 16)


def load_rows(outputs_dir: str | Path, env: str | None = None) -> list[dict]:
    path = Path(outputs_dir) / "dataset" / "train.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in rows if env is None or r["env"] == env]


def read_episodes(path: str | Path) -> list[Episode]:
    return [Episode.model_validate_json(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line]


def _modes(settings: RolloutSettings, llm: Any) -> tuple[str, str]:
    def pick(mode: str) -> str:
        if mode == "auto":
            return "llm" if llm is not None else "offline"
        if mode == "llm" and llm is None:
            raise ValueError("settings ask for an LLM but run_rollouts got no llm client")
        return mode

    return pick(settings.user), pick(settings.assistant)


def models_for(settings: RolloutSettings, llm: Any) -> dict[str, str]:
    from .llm_agents import model_name

    user_mode, asst_mode = _modes(settings, llm)
    return {
        "user": model_name(llm, "user") if user_mode == "llm" else OFFLINE_USER,
        "assistant": model_name(llm, "assistant") if asst_mode == "llm" else OFFLINE_ASSISTANT,
    }


def _agents(row: dict, episode: int, settings: RolloutSettings, llm: Any):
    user_mode, asst_mode = _modes(settings, llm)
    seed = episode_seed(settings.seed, row["id"], episode)
    context = {"query_id": row["id"], "episode": episode}
    if user_mode == "llm":
        user = LLMUser(llm, row["scenario"], context=context)
    else:
        user = OfflineUser(row["scenario"], row["messages"][1]["content"], row["messages"][0]["content"], seed=seed)
    if asst_mode == "llm":
        assistant = LLMAssistant(llm, context=context)
    else:
        rng = random.Random(seed)
        mistake = rng.choice(MISTAKE_KINDS) if rng.random() < settings.mistake_rate else None
        assistant = OfflineAssistant(mistake=mistake)
    return user, assistant


def _tool_message(call: dict, transport: Transport) -> tuple[dict, bool]:
    """Run one tool call; ``(tool message, whether the transport was reached)``."""
    fn = call.get("function") or {}
    name, raw = str(fn.get("name", "")), fn.get("arguments") or "{}"
    try:
        args = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError as exc:
        content = json.dumps({"error": f"the arguments are not valid JSON: {exc}"})
        return {"role": "tool", "tool_call_id": call.get("id", ""), "content": content}, False
    if not isinstance(args, dict):
        content = json.dumps({"error": "the arguments must be a JSON object"})
        return {"role": "tool", "tool_call_id": call.get("id", ""), "content": content}, False
    out = transport.call(name, args)
    return {"role": "tool", "tool_call_id": call.get("id", ""), "content": out.message_content()}, True


def play_episode(
    row: dict,
    episode: int,
    transport: Transport,
    settings: RolloutSettings,
    llm: Any = None,
    user: Any = None,
    assistant: Any = None,
) -> Episode:
    """Play one episode of ``row`` from a fresh state."""
    if user is None or assistant is None:
        u, a = _agents(row, episode, settings, llm)
        user, assistant = user or u, assistant or a
    tools = json.loads(row["tools"]) if isinstance(row["tools"], str) else row["tools"]
    messages: list[dict] = [dict(m) for m in row["messages"]]
    turns = sum(1 for m in messages if m["role"] == "user")
    n_calls = 0
    stop = None
    error = None
    final_hash = None
    try:
        transport.reset()
        served = set(getattr(transport, "tools", None) or [])
        lacking = sorted({t["function"]["name"] for t in tools} - served) if served else []
        if lacking:
            raise TransportError(f"the {row['env']} server does not offer the row's tools: {', '.join(lacking)}")
        while stop is None:
            for _step in range(settings.max_steps_per_turn):
                msg = assistant.respond(messages, tools)
                messages.append(msg)
                calls = msg.get("tool_calls") or []
                if not calls:
                    break
                for c in calls:
                    tool_msg, reached = _tool_message(c, transport)
                    messages.append(tool_msg)
                    n_calls += 1
            if turns >= settings.max_turns:
                stop = "max_turns"
                break
            reason, text = stop_reason(user.reply(messages))
            if text:
                messages.append({"role": "user", "content": text})
            turns += 1
            if reason:
                stop = reason
        final_hash = transport.state_hash()
    except TransportError as exc:
        stop, error = "infra_error", str(exc)
    except AssistantFailure as exc:
        stop, error = "assistant_error", str(exc)
        final_hash = transport.state_hash()
    usage = {}
    for role, agent in (("user", user), ("assistant", assistant)):
        usage[role] = getattr(agent, "usage", None) or Usage()
    mistakes: list[Mistake] = list(getattr(assistant, "mistakes", []) or [])
    return Episode(
        episode_id=episode_id(row["id"], episode),
        query_id=row["id"],
        task_id=row.get("task_id", ""),
        env=row["env"],
        domains=list(row.get("domains") or [row["env"]]),
        episode=episode,
        models={"user": getattr(user, "name", "user"), "assistant": getattr(assistant, "name", "assistant")},
        transport=getattr(transport, "name", settings.transport),
        messages=messages,
        stop_reason=stop,
        turns=turns,
        tool_calls=n_calls,
        final_state_hash=final_hash,
        usage=usage,
        mistakes=mistakes,
        error=error,
    )


def _line(ep: Episode) -> str:
    return json.dumps(ep.model_dump(mode="json"), ensure_ascii=False, sort_keys=True)


def _read_partial(path: Path) -> dict[tuple[str, int], str]:
    done: dict[tuple[str, int], str] = {}
    if not path.exists():
        return done
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            Episode.model_validate(d)
        except ValueError:
            continue  # the line a kill cut short
        done[(d["query_id"], int(d["episode"]))] = line
    return done


class _Transports:
    """One transport per env for the current thread (fast: a persistent process)."""

    def __init__(self, outputs_dir: Path, settings: RolloutSettings) -> None:
        self.outputs_dir = outputs_dir
        self.settings = settings
        self.local = threading.local()
        self.all: list[Transport] = []
        self.lock = threading.Lock()

    def get(self, env: str) -> Transport:
        cache = getattr(self.local, "cache", None)
        if cache is None:
            cache = self.local.cache = {}
        t = cache.get(env)
        if t is None:
            t = make_transport(
                self.settings.transport, server_dir(self.outputs_dir, env), call_timeout_s=self.settings.call_timeout_s
            )
            cache[env] = t
            with self.lock:
                self.all.append(t)
        return t

    def drop(self, env: str) -> None:
        cache = getattr(self.local, "cache", {}) or {}
        t = cache.pop(env, None)
        if t is not None:
            try:
                t.close()
            except Exception:  # already dead
                pass

    def close(self) -> None:
        for t in self.all:
            try:
                t.close()
            except Exception:
                pass


def _failed_episode(row: dict, episode: int, settings: RolloutSettings, models: dict, error: str) -> Episode:
    return Episode(
        episode_id=episode_id(row["id"], episode),
        query_id=row["id"],
        task_id=row.get("task_id", ""),
        env=row["env"],
        domains=list(row.get("domains") or [row["env"]]),
        episode=episode,
        models=models,
        transport=settings.transport,
        messages=[dict(m) for m in row["messages"]],
        stop_reason="infra_error",
        turns=1,
        tool_calls=0,
        final_state_hash=None,
        usage={},
        mistakes=[],
        error=error,
    )


def run_rollouts(
    rows: list[dict],
    outputs_dir: str | Path,
    out_path: str | Path,
    settings: RolloutSettings | dict | None = None,
    llm: Any = None,
) -> dict:
    """Play ``settings.episodes_per_task`` episodes of every row and write them to
    ``out_path`` (JSONL of Episode, sorted by env, query id, episode). Resumes from
    ``<out_path>.partial``. Returns a summary dict."""
    if not isinstance(settings, RolloutSettings):
        settings = RolloutSettings.from_config(settings)
    outputs_dir = Path(outputs_dir)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    partial = out_path.with_name(out_path.name + ".partial")
    meta = out_path.with_name(out_path.name + ".partial.meta")
    models = models_for(settings, llm)
    fingerprint = settings.fingerprint(models)
    if partial.exists():
        old = meta.read_text(encoding="utf-8").strip() if meta.exists() else ""
        if old != fingerprint:
            log.warning("%s: written with other settings; starting over", partial)
            partial.unlink()
    meta.write_text(fingerprint + "\n", encoding="utf-8")
    done = _read_partial(partial)
    wanted = [(r, e) for r in rows for e in range(settings.episodes_per_task)]
    todo = [(r, e) for r, e in wanted if (r["id"], e) not in done]
    t0 = time.monotonic()
    transports = _Transports(outputs_dir, settings)
    lock = threading.Lock()
    stats: Counter = Counter()

    with open(partial, "a", encoding="utf-8") as fh:

        def one(item: tuple[dict, int]) -> None:
            row, e = item
            try:
                transport = transports.get(row["env"])
            except TransportError as exc:
                ep = _failed_episode(row, e, settings, models, str(exc))
            else:
                ep = play_episode(row, e, transport, settings, llm=llm)
                if ep.stop_reason == "infra_error":
                    transports.drop(row["env"])  # a fresh process for the next episode
            line = _line(ep)
            with lock:
                fh.write(line + "\n")
                fh.flush()
                os.fsync(fh.fileno())
                done[(row["id"], e)] = line
                stats["played"] += 1

        try:
            if settings.workers > 1 and len(todo) > 1:
                with ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="rollout") as pool:
                    list(pool.map(one, todo))
            else:
                for item in todo:
                    one(item)
        finally:
            transports.close()

    keys = {(r["id"], e): r["env"] for r, e in wanted}
    lines = sorted((line for k, line in done.items() if k in keys), key=lambda ln: _sort_key(json.loads(ln)))
    fd, tmp = tempfile.mkstemp(dir=out_path.parent, prefix=out_path.name + ".", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        for line in lines:
            fh.write(line + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, out_path)
    partial.unlink(missing_ok=True)
    meta.unlink(missing_ok=True)
    episodes = [json.loads(ln) for ln in lines]
    elapsed = time.monotonic() - t0
    return {
        "out": str(out_path),
        "rows": len(rows),
        "episodes": len(episodes),
        "played": stats["played"],
        "resumed": len(wanted) - len(todo),
        "stop_reasons": dict(sorted(Counter(e["stop_reason"] for e in episodes).items())),
        "tool_calls": sum(e["tool_calls"] for e in episodes),
        "mistakes": sum(len(e["mistakes"]) for e in episodes),
        "infra_errors": sum(1 for e in episodes if e["stop_reason"] == "infra_error"),
        "models": models,
        "transport": settings.transport,
        "seconds": round(elapsed, 3),
    }


def _sort_key(d: dict) -> tuple:
    return (d["env"], d["query_id"], d["episode"])
