"""The episode core: a generated env as a resettable, scorable RL environment.

::

    env = EpisodeEnv("outputs", "DentalCareDesk")
    obs = env.reset(env.task_ids()[0])      # policy, tools, first user message, env_version
    env.call_tool("authorize_patient", {"patient_id": "..."})   # -> the tool's result text
    env.send_message_to_user("Shall I book it?")                 # -> the simulated user's reply
    env.score()                             # -> Score(reward, passed, category, diagnostics)
    env.close()

**Where the state lives.** The tool code is generated, so it never runs in the trainer's
process: every env has **one sandboxed session worker** (:mod:`rollout.session_worker`,
started by :class:`rollout.transport.FastTransport` through the same sandbox as
``agentskiller.serve``), shared by every :class:`EpisodeEnv` of that env in this process,
and each episode is a **keyed session** in it (``reset`` with the episode's key makes a
private copy of the initial state, ``drop`` frees it). So 16 (or 256) concurrent episodes
cost one sandbox start and one import of the tool code, not one process each, and still
cannot see each other's state: a tool only ever gets the state of the key it was called
with. One process per episode (what the ``mcp`` transport does) would cost a sandbox start
per ``reset`` - seconds on a loaded machine, which a trainer resetting every step cannot pay.
The transport is thread-safe, so episodes may run in threads. The worker is started on the
first ``reset`` of an env and stopped when its last :class:`EpisodeEnv` closes; one that
dies is replaced on the next ``reset`` (the episode it ran ends as an ``infra_error``).

**The user.** ``send_message_to_user(text)`` appends the assistant's message and returns the
simulated user's answer: the offline user (:class:`rollout.offline_user.OfflineUser`: a
deterministic stand-in that reads only the row's scenario) by default, the LLM user of
the rollouts (:class:`rollout.llm_agents.LLMUser`) when ``llm`` is given, or whatever
``user(row, seed)`` makes (an object with ``reply(messages) -> str``; a scripted user in
tests). When the user ends
the conversation (``###STOP###``, ``###TRANSFER###``, ``###OUT-OF-SCOPE###``, or
``max_turns`` user turns) the episode is over: the reply says so, and later tool calls and
messages are answered with an error and not executed or recorded.

**The reward.** :meth:`EpisodeEnv.score` builds the episode record the rollouts write
(:class:`agentskiller.models.episodes.Episode`: the row's messages, then every tool call and
its result and every user turn, as OpenAI messages) and hands it to the evaluator
(:func:`evaluator.evaluate_episodes`), which replays the calls on a fresh state in its own
sandboxed worker and checks end state, policy and answer. ``reward`` is 1.0 when the
evaluator passes the episode and 0.0 otherwise; ``category`` is its failure category, and
``diagnostics`` its scores (end state, write precision / recall, policy, answer) and
evidence. An episode the assistant ended without the user's stop is recorded with
``stop_reason = "assistant_stop"`` (not a cut-off: a write it never made is a
``missing_write``). :func:`score_episodes` scores many episodes with one evaluator call
(one worker per env), which is what a trainer's reward function wants.

Size: over 400 lines because the shared worker pool, the episode state machine and its
scoring are one contract (keys, locks, the recorded messages the evaluator replays); split,
each part would need the others' internals.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import json
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentskiller.env_version import load_env_parts, row_env_version, row_policy

__all__ = [
    "EpisodeEnv",
    "Observation",
    "Score",
    "EpisodeError",
    "score_episodes",
    "SEND_MESSAGE_TOOL",
    "load_env_rows",
]

#: the conversation with the simulated user as an OpenAI tool (the adapters expose it)
SEND_MESSAGE_TOOL: dict = {
    "type": "function",
    "function": {
        "name": "send_message_to_user",
        "description": (
            "Send a message to the user (the customer) and get their reply. Use it to ask for "
            "information, to ask for confirmation before a change, and to give the final answer."
        ),
        "parameters": {
            "type": "object",
            "properties": {"text": {"type": "string", "description": "the message to the user"}},
            "required": ["text"],
        },
    },
}

#: the end of the conversation, as the tool replies say it
ENDED = "###CONVERSATION_ENDED###"


class EpisodeError(RuntimeError):
    """The env or task does not exist, or the episode is used before ``reset``."""


@dataclass(frozen=True)
class Observation:
    """What an agent sees at the start of an episode."""

    task_id: str
    #: the env's policy (the dataset row's system message)
    system: str
    #: the env's tools, OpenAI format (``{"type": "function", "function": {...}}``)
    tools: list[dict]
    #: the user's first message
    user_message: str
    #: :mod:`agentskiller.env_version` of the env and this task, from the files served now
    env_version: str


@dataclass(frozen=True)
class Score:
    reward: float
    passed: bool
    category: str | None
    diagnostics: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- data
_rows_cache: dict[tuple[str, int], list[dict]] = {}
_rows_lock = threading.Lock()


def load_env_rows(outputs_dir: str | Path, env: str | None = None) -> list[dict]:
    """The dataset rows (``dataset/train.jsonl``) of ``env`` (all when None), cached per
    file modification time."""
    path = Path(outputs_dir).resolve() / "dataset" / "train.jsonl"
    try:
        key = (str(path), path.stat().st_mtime_ns)
    except FileNotFoundError:
        raise EpisodeError(f"no dataset at {path} (run the workflow first)") from None
    with _rows_lock:
        rows = _rows_cache.get(key)
    if rows is None:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        with _rows_lock:
            _rows_cache[key] = rows
    return [r for r in rows if env is None or r["env"] == env]


# --------------------------------------------------------------------------- workers
#: The one thread that starts session workers (see :meth:`_Workers._start`).
_SPAWNER = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="rlenv-spawner")


class _Workers:
    """One shared sandboxed session worker per env server, reference-counted."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_server: dict[tuple[str, float], list[Any]] = {}  # key -> [transport, users]

    @staticmethod
    def _start(server: Path, call_timeout_s: float) -> Any:
        """Start a worker on the spawner thread. The sandbox's launcher dies with the *thread*
        that forked it (``PR_SET_PDEATHSIG`` follows the parent thread, not the process), so a
        worker started from a trainer's short-lived thread would be killed, and every episode
        sharing it with it, when that thread ends; the spawner thread lives as long as the process."""
        from rollout.transport import FastTransport

        return _SPAWNER.submit(FastTransport, server, call_timeout_s=call_timeout_s).result()

    def acquire(self, server: Path, call_timeout_s: float) -> Any:
        key = (str(server.resolve()), float(call_timeout_s))
        with self.lock:
            entry = self.by_server.get(key)
            if entry is not None and entry[0]._proc.poll() is not None:  # died: replace it
                self._close(entry[0])
                entry = self.by_server[key] = [self._start(server, call_timeout_s), entry[1]]
            elif entry is None:
                entry = self.by_server[key] = [self._start(server, call_timeout_s), 0]
            entry[1] += 1
            return entry[0]

    def release(self, transport: Any) -> None:
        with self.lock:
            for key, entry in list(self.by_server.items()):
                if entry[0] is transport:
                    entry[1] -= 1
                    if entry[1] <= 0:
                        del self.by_server[key]
                        self._close(transport)
                    return
        self._close(transport)  # replaced after it died: nobody else holds it

    @staticmethod
    def _close(transport: Any) -> None:
        try:
            transport.close()
        except Exception:  # already dead
            pass


_WORKERS = _Workers()

_parts_cache: dict[tuple, dict[str, str]] = {}


def _env_parts(server: Path, policy: str) -> dict[str, str]:
    """:func:`agentskiller.env_version.load_env_parts`, cached per server while none of its
    table or tool files changes (size and modification time), so a new EpisodeEnv does not
    reload and rehash the database."""
    from agentskiller.env_version import policy_hash, simulator_version
    from agentskiller.runtime.environment import load_environment

    env = load_environment(server)
    files = sorted({*env.table_paths.values(), *env.module_paths.values()})
    stamp = tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files)
    key = (str(server.resolve()), env.manifest.model_dump_json(), stamp, policy_hash(policy), simulator_version())
    with _rows_lock:
        parts = _parts_cache.get(key)
    if parts is None:
        parts = load_env_parts(server, policy)
        with _rows_lock:
            _parts_cache[key] = parts
    return dict(parts)


_KEYS = itertools.count()


def _new_key() -> str:
    return f"ep-{os.getpid()}-{next(_KEYS)}"


# --------------------------------------------------------------------------- episodes
class EpisodeEnv:
    """One env (a domain or a pair of the outputs) as an episode at a time; make one per
    concurrent episode. See the module docstring."""

    def __init__(
        self,
        outputs_dir: str | Path,
        env_name: str,
        *,
        llm: Any = None,
        user: Callable[[dict, int], Any] | None = None,
        seed: int = 0,
        max_turns: int = 30,
        call_timeout_s: float = 10.0,
        sandbox: Any = None,
        mode: str = "all",
    ) -> None:
        from rollout.transport import server_dir

        self.outputs_dir = Path(outputs_dir).resolve()
        self.env_name = env_name
        self.llm = llm
        self.user_factory = user
        self.seed = int(seed)
        self.max_turns = int(max_turns)
        self.call_timeout_s = float(call_timeout_s)
        self.sandbox = sandbox
        self.mode = mode
        self.server = server_dir(self.outputs_dir, env_name)
        self.rows = {r["task_id"]: r for r in load_env_rows(self.outputs_dir, env_name)}
        if not self.rows:
            raise EpisodeError(f"{env_name}: no dataset rows under {self.outputs_dir / 'dataset'}")
        self._by_query = {r["id"]: r for r in self.rows.values()}
        self._parts: dict[str, str] | None = None
        self._transport: Any = None
        self._key: str | None = None
        self._row: dict | None = None
        self._episodes = 0
        self._episode = 0
        self._lock = threading.RLock()
        self._reset_episode_fields()

    def _reset_episode_fields(self) -> None:
        self.messages: list[dict] = []
        self.turns = 0
        self.n_calls = 0
        self.stop_reason: str | None = None
        self.error: str | None = None
        self.final_state_hash: str | None = None
        self._user: Any = None
        self._score: Score | None = None

    # -- lifecycle ---------------------------------------------------------------------
    def task_ids(self) -> list[str]:
        """This env's tasks (``task_id`` of its dataset rows), sorted."""
        return sorted(self.rows)

    def row(self, task_id: str | None = None) -> dict:
        """The dataset row of ``task_id`` (a task ID or a row's ``id``); the current one when None."""
        if task_id is None:
            if self._row is None:
                raise EpisodeError("no episode: call reset(task_id) first")
            return self._row
        row = self.rows.get(task_id) or self._by_query.get(task_id)
        if row is None:
            raise EpisodeError(f"{self.env_name}: no task {task_id!r}")
        return row

    def env_parts(self) -> dict[str, str]:
        """The task-independent parts of the env's version, from the files served now."""
        if self._parts is None:
            self._parts = _env_parts(self.server, row_policy(next(iter(self.rows.values()))))
        return self._parts

    def env_version(self, task_id: str | None = None) -> str:
        return row_env_version(self.row(task_id), self.env_parts())

    def reset(self, task_id: str) -> Observation:
        """A fresh episode of ``task_id`` on a private copy of the initial state."""
        from rollout.loop import episode_seed
        from rollout.offline_user import OfflineUser
        from rollout.transport import TransportError

        with self._lock:
            row = self.row(task_id)
            self._drop_session()
            self._row = row
            self._reset_episode_fields()
            self.messages = [dict(m) for m in row["messages"]]
            self.turns = sum(1 for m in self.messages if m["role"] == "user")
            self._episode = self._episodes
            self._episodes += 1
            seed = episode_seed(self.seed, row["id"], self._episode)
            if self.user_factory is not None:
                self._user = self.user_factory(row, seed)
            elif self.llm is not None:
                from rollout.llm_agents import LLMUser

                context = {"query_id": row["id"], "episode": self._episode}
                self._user = LLMUser(self.llm, row["scenario"], context=context)
            else:
                first, policy = row["messages"][1]["content"], row["messages"][0]["content"]
                self._user = OfflineUser(row["scenario"], first, policy, seed=seed)
            try:
                if self._transport is None:
                    self._transport = _WORKERS.acquire(self.server, self.call_timeout_s)
                self._key = _new_key()
                self.final_state_hash = self._transport.reset(session=self._key)
            except TransportError as exc:
                self._infra(str(exc))
            return Observation(
                task_id=row["task_id"],
                system=row["messages"][0]["content"],
                tools=json.loads(row["tools"]) if isinstance(row["tools"], str) else list(row["tools"]),
                user_message=row["messages"][1]["content"],
                env_version=self.env_version(),
            )

    def close(self) -> None:
        """Free this episode's state and, with the last env of its server, the worker."""
        with self._lock:
            self._drop_session()
            if self._transport is not None:
                _WORKERS.release(self._transport)
                self._transport = None

    def __enter__(self) -> EpisodeEnv:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass

    def _drop_session(self) -> None:
        if self._key is not None and self._transport is not None:
            try:
                self._transport.drop(self._key)
            except Exception:  # the worker died: its states are gone anyway
                pass
        self._key = None

    def _infra(self, why: str) -> None:
        self.stop_reason, self.error = "infra_error", why
        if self._transport is not None:
            _WORKERS.release(self._transport)
            self._transport = None
        self._key = None

    # -- the episode -------------------------------------------------------------------
    @property
    def done(self) -> bool:
        """The conversation is over (the user ended it, the turn limit, a broken env)."""
        return self.stop_reason is not None

    def _ended_text(self) -> str:
        return f"{ENDED} The conversation is over ({self.stop_reason}); nothing more can be done in it."

    def call_tool(self, name: str, arguments: dict | str | None = None) -> str:
        """Run one tool call on this episode's state; the tool message's content (the result
        as JSON text, or ``{"error": ...}``)."""
        from rollout.transport import TransportError

        with self._lock:
            self.row()
            if self.done:
                return json.dumps({"error": self._ended_text()})
            self._score = None
            raw = arguments if isinstance(arguments, str) else json.dumps(arguments or {}, ensure_ascii=False)
            call_id = f"call_{self.n_calls}"
            self.messages.append(
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{"id": call_id, "type": "function", "function": {"name": name, "arguments": raw}}],
                }
            )
            self.n_calls += 1
            try:
                args = json.loads(raw) if isinstance(arguments, str) else (arguments or {})
            except ValueError as exc:
                args, content = None, json.dumps({"error": f"the arguments are not valid JSON: {exc}"})
            else:
                content = (
                    None if isinstance(args, dict) else json.dumps({"error": "the arguments must be a JSON object"})
                )
            if content is None:
                try:
                    out = self._transport.call(name, args, session=self._key)
                except TransportError as exc:
                    self.messages.pop()
                    self.n_calls -= 1
                    self._infra(str(exc))
                    return json.dumps({"error": f"the environment failed: {exc}"})
                self.final_state_hash = out.state_hash_after or self.final_state_hash
                content = out.message_content()
            self.messages.append({"role": "tool", "tool_call_id": call_id, "content": content})
            return content

    def add_assistant_message(self, text: str) -> None:
        """Record an assistant message that is not sent to the user (a trainer's final
        completion, say): the evaluator reads it (a lookup's answer, a refusal's reason)."""
        with self._lock:
            self.row()
            if text and text.strip() and not self.done:
                self._score = None
                self.messages.append({"role": "assistant", "content": text})

    def send_message_to_user(self, text: str) -> str:
        """Say ``text`` to the user; their reply. When the reply ends the conversation it
        says so (the stop token, and :data:`ENDED`)."""
        from rollout.llm_agents import AssistantFailure
        from rollout.nlu import stop_reason

        with self._lock:
            self.row()
            if self.done:
                return self._ended_text()
            self._score = None
            self.messages.append({"role": "assistant", "content": str(text)})
            if self.turns >= self.max_turns:
                self.stop_reason = "max_turns"
                return self._ended_text()
            try:
                raw = self._user.reply(self.messages)
            except AssistantFailure as exc:  # the LLM user's model failed
                self._infra(f"the user simulator failed: {exc}")
                return self._ended_text()
            reason, clean = stop_reason(raw)
            if clean:
                self.messages.append({"role": "user", "content": clean})
            self.turns += 1
            if reason:
                self.stop_reason = reason
                return f"{raw}\n{self._ended_text()}"
            return clean

    # -- scoring -----------------------------------------------------------------------
    def episode(self):
        """The episode so far as the rollouts record it (:class:`~agentskiller.models.episodes.Episode`)."""
        from agentskiller.models.episodes import Episode, Usage
        from rollout.loop import episode_id

        with self._lock:
            row = self.row()
            usage = getattr(self._user, "usage", None) or Usage()
            return Episode(
                episode_id=episode_id(row["id"], self._episode),
                query_id=row["id"],
                task_id=row["task_id"],
                env=row["env"],
                domains=list(row.get("domains") or [row["env"]]),
                episode=self._episode,
                models={"user": getattr(self._user, "name", "user"), "assistant": "rlenv"},
                transport="fast",
                messages=[dict(m) for m in self.messages],
                stop_reason=self.stop_reason or "assistant_stop",
                turns=self.turns,
                tool_calls=self.n_calls,
                final_state_hash=self.final_state_hash,
                usage={"user": usage},
                error=self.error,
            )

    def score(self) -> Score:
        """The evaluator's verdict on the episode so far (see the module docstring)."""
        with self._lock:
            if self._score is None:
                self._score = score_episodes([self])[0]
            return self._score


def score_episodes(envs: Sequence[EpisodeEnv]) -> list[Score]:
    """Score many episodes with one evaluator call per outputs directory (one replay worker
    per env); one :class:`Score` per env, in order."""
    from evaluator import evaluate_episodes

    out: list[Score | None] = [None] * len(envs)
    groups: dict[tuple[Path, str, int], list[int]] = {}
    for i, e in enumerate(envs):
        groups.setdefault((e.outputs_dir, e.mode, id(e.sandbox)), []).append(i)
    for (outputs, mode, _), idx in groups.items():
        episodes = [envs[i].episode() for i in idx]
        rows = {envs[i].row()["id"]: envs[i].row() for i in idx}
        verdicts = evaluate_episodes(
            episodes, rows, outputs, outputs_dir=outputs, mode=mode, sandbox=envs[idx[0]].sandbox, workers=1
        )
        for i, ep, v in zip(idx, episodes, verdicts, strict=True):
            env = envs[i]
            dataset_version = env.row().get("env_version")
            version = env.env_version()
            diagnostics = {
                "scores": dict(v.scores),
                "detail": v.detail,
                "evidence": dict(v.evidence),
                "infra_error": v.infra_error,
                "task_kind": v.task_kind,
                "stop_reason": ep.stop_reason,
                "turns": ep.turns,
                "tool_calls": ep.tool_calls,
                "env_version": version,
                # the row's version when it has one: a mismatch means the env's files changed
                # since the dataset was built, and the reward is not comparable with the row's
                "dataset_env_version": dataset_version,
                "version_matches_dataset": None if dataset_version is None else dataset_version == version,
            }
            out[i] = Score(
                reward=1.0 if v.passed else 0.0, passed=v.passed, category=v.category, diagnostics=diagnostics
            )
    return [s for s in out if s is not None]
