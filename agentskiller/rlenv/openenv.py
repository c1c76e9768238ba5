"""OpenEnv adapter: a generated env served as an OpenEnv ``MCPEnvironment``.

    pip install -e '.[openenv]'
    python -m agentskiller.rlenv.openenv --outputs outputs --env DentalCareDesk --port 8000

One server per env (a domain or a pair under ``outputs/``), OpenEnv's ``create_app``.
Every WebSocket session (``/ws``) gets its own :class:`AgentSkillerEnvironment`, which owns
one :class:`~agentskiller.rlenv.EpisodeEnv`: one episode at a time with a private state (a
keyed session in the env's one sandboxed worker), so many concurrent episodes run on one
endpoint (``--max-sessions``, default 16). A client:

* ``reset(task_id=...)`` (or ``seed=N``: the task ``task_ids()[N % len]``; neither: the
  first task) starts an episode on a fresh state and returns an :class:`EpisodeObservation`:
  the policy (``system``), the first user message, the tools in the OpenAI format, the
  ``env_version`` and the conversation so far as ``messages``; an unknown task gives an
  observation with ``error``;
* ``list_tools()`` / ``step(ListToolsAction())`` lists the env's tools plus two of the
  adapter's: ``send_message_to_user(text)`` (the simulated user answers) and
  ``done(message?)`` (the agent ends the episode; ``message`` is a last assistant message
  the user does not answer, e.g. a lookup's answer);
* ``call_tool(name, **arguments)`` / ``step(CallToolAction(...))`` calls one; the reply is
  the tool's result text (a refused call says why, as the env's tools do).

The episode ends when the agent calls ``done``, or when the simulated user ends the
conversation (``###STOP###``, ``###TRANSFER###``, ``###OUT-OF-SCOPE###``, the turn limit)
or the env breaks (``EpisodeEnv.done``). That step's observation is terminal:
``done=True``, ``reward`` = ``EpisodeEnv.score().reward`` and, as observation fields,
``passed``, ``category`` (the evaluator's failure category, null when passed) and
``diagnostics``; the same score (with ``ended_by``: assistant, user or env) is the tool's
result text (JSON), so a plain ``MCPToolClient`` sees it too. Earlier observations carry
``reward=None``: the reward is terminal only. A step after the end is refused until the
next ``reset``.

OpenEnv's stateless HTTP ``/reset`` and ``/step`` build a fresh environment per request,
so an episode needs ``/ws``; ``/mcp`` (JSON-RPC) lists the tools. The plain OpenEnv clients
drop observation fields they do not know (``MCPToolClient`` keeps only the tool name,
result and error); :class:`AgentSkillerEnvClient` is an ``MCPToolClient`` that parses this
env's observations, with ``finish(message?)`` for the terminal step.

``openenv-core`` is an optional dependency (the ``openenv`` extra): it resolves next to
this project's ``mcp>=2,<3`` (fastmcp 4); the newer ``openenv`` package (fastmcp<4, hence
mcp<2) does not. Import :mod:`agentskiller.rlenv` for the dependency-light episode core;
only this module needs the extra.

Size: over 400 lines because the server, the observation types it sends, the client that
parses them and the launcher belong together: all of them need the optional extra, and
they change together.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import logging
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar
from uuid import uuid4

try:
    from fastmcp import FastMCP
    from fastmcp.tools import Tool as FastMCPTool
    from fastmcp.tools import ToolResult
    from mcp.types import TextContent
    from openenv.core.env_server.http_server import create_app
    from openenv.core.env_server.mcp_environment import MCPEnvironment
    from openenv.core.env_server.mcp_types import (
        CallToolAction,
        CallToolObservation,
        ListToolsAction,
        ToolError,
        ToolErrorType,
    )
    from openenv.core.env_server.types import Action, Observation, State
    from openenv.core.mcp_client import MCPToolClient
    from pydantic import Field, PrivateAttr
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "agentskiller.rlenv.openenv needs the optional 'openenv' extra: pip install -e '.[openenv]' "
        f"(openenv-core; missing: {exc.name})"
    ) from exc

__all__ = [
    "AgentSkillerEnvironment",
    "AgentSkillerEnvClient",
    "EpisodeObservation",
    "EpisodeToolObservation",
    "make_app",
    "main",
    "DONE_TOOL",
    "USER_TOOL",
]

log = logging.getLogger("agentskiller.rlenv.openenv")

T = TypeVar("T")

#: the adapter's own tools, listed after the env's
USER_TOOL = "send_message_to_user"
DONE_TOOL = "done"
#: seconds one tool call (or user turn: a model may answer it) may take on the WebSocket path
DEFAULT_TOOL_TIMEOUT_S = 120.0
DEFAULT_MAX_SESSIONS = 16

_DONE_SPEC: dict = {
    "type": "function",
    "function": {
        "name": DONE_TOOL,
        "description": "End the conversation when the user's request is handled or cannot be. "
        "Nothing can be done after it. 'message' (optional) is a last message of yours that the "
        "user does not answer (a lookup's answer, why a request was refused).",
        "parameters": {
            "type": "object",
            "properties": {"message": {"type": "string", "description": "your last message (optional)"}},
            "additionalProperties": False,
        },
    },
}


def _adapter_tools() -> list[dict]:
    from agentskiller.rlenv import SEND_MESSAGE_TOOL

    return [SEND_MESSAGE_TOOL, _DONE_SPEC]


class EpisodeObservation(Observation):
    """What ``reset`` returns: the start of an episode."""

    task_id: str = Field(description="the task this episode plays")
    system: str = Field(description="the env's policy: the system message")
    user_message: str = Field(description="the simulated user's first message")
    tools: list[dict] = Field(description="the tools, OpenAI function format (the env's, then the adapter's)")
    env_version: str = Field(description="content hash of server code, database, policy, task, simulator")
    messages: list[dict] = Field(description="the conversation so far: system and first user message")
    error: str | None = Field(default=None, description="why the reset failed (then the other fields are empty)")


class EpisodeToolObservation(CallToolObservation):
    """A tool call's observation; on the terminal step it carries the score."""

    passed: bool | None = Field(default=None, description="terminal step only: the episode passed")
    category: str | None = Field(default=None, description="terminal step only: failure category (null: passed)")
    diagnostics: dict[str, Any] = Field(default_factory=dict, description="terminal step only: evaluator detail")


class _ForwardTool(FastMCPTool):
    """A FastMCP tool whose schema is given (the env's OpenAI schema) and whose body
    forwards the call to the session's episode."""

    _forward: Callable[[str, dict], Any] = PrivateAttr()

    async def run(self, arguments: dict[str, Any]) -> ToolResult:
        text = await self._forward(self.name, dict(arguments or {}))
        # structured {"result": text} with the wrap flag: FastMCP clients read it back as .data
        return ToolResult(
            content=[TextContent(type="text", text=text)],
            structured_content={"result": text},
            meta={"fastmcp": {"wrap_result": True}},
        )


#: the threads that run every EpisodeEnv call of every session of this process. They live as
#: long as the process: the env's sandboxed session worker is started by the thread of the
#: first reset and has PR_SET_PDEATHSIG, which the kernel fires when that *thread* exits, so
#: a thread per session would kill the worker (and every other session's state) when its
#: session closed. Calls of one session are awaited one at a time, so they stay in order.
_POOL_SIZE = 64
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _episode_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=_POOL_SIZE, thread_name_prefix="agentskiller-episode")
        return _pool


def _episode_env_cls():
    from agentskiller.rlenv import EpisodeEnv

    return EpisodeEnv


def _score_dict(score: Any) -> dict:
    return {
        "reward": float(score.reward),
        "passed": bool(score.passed),
        "category": score.category,
        "diagnostics": _jsonable(score.diagnostics),
    }


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


class AgentSkillerEnvironment(MCPEnvironment):
    """One session: an :class:`~agentskiller.rlenv.EpisodeEnv` behind OpenEnv's MCP actions.

    ``EpisodeEnv`` is synchronous (and thread-safe); every call to it runs on the process's
    episode threads (:func:`_episode_pool`), so the server's event loop never blocks on an
    episode.
    """

    SUPPORTS_CONCURRENT_SESSIONS = True

    def __init__(
        self,
        outputs_dir: str | Path,
        env_name: str,
        *,
        tool_timeout_s: float = DEFAULT_TOOL_TIMEOUT_S,
        episode_env_factory: Callable[[Path, str], Any] | None = None,
    ) -> None:
        self.outputs_dir = Path(outputs_dir)
        self.env_name = env_name
        self.tool_timeout_s = float(tool_timeout_s)
        factory = episode_env_factory or (lambda out, name: _episode_env_cls()(out, name))
        self._worker = _episode_pool()
        self._lock = threading.Lock()
        self._state = State(episode_id=None, step_count=0)
        self._task_id: str | None = None
        self._finished: dict | None = None  # the score dict once the episode ended
        # cheap: reads the env's dataset rows; its sandboxed worker starts on the first reset
        self._episode: Any = self._in_worker(factory, self.outputs_dir, env_name)
        self.tools = self._in_worker(self._served_tools)
        server = FastMCP(f"agentskiller-{env_name}")
        for spec in self.tools:
            server.add_tool(self._forward_tool(spec))
        super().__init__(server)  # checks the names against OpenEnv's reserved ones

    # ------------------------------------------------------------------ the episode
    def _in_worker(self, fn: Callable[..., T], *args: Any) -> T:
        return self._worker.submit(fn, *args).result()

    async def _in_worker_async(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.wrap_future(self._worker.submit(fn, *args))

    def _require_episode(self) -> Any:
        if self._task_id is None:
            raise RuntimeError("no episode: call reset(task_id=...) first")
        if self._finished is not None:
            raise RuntimeError("the episode is over: call reset() for a new one")
        return self._episode

    def _served_tools(self) -> list[dict]:
        """The env's tools (one list per env: every dataset row of it carries the same),
        then the adapter's two, OpenAI format."""
        episode = self._episode
        row = episode.row(episode.task_ids()[0])
        tools = json.loads(row["tools"]) if isinstance(row["tools"], str) else list(row["tools"])
        adapter = _adapter_tools()
        names = {t["function"]["name"] for t in adapter}
        return [t for t in tools if t["function"]["name"] not in names] + adapter

    def _forward_tool(self, spec: dict) -> _ForwardTool:
        fn = spec["function"]
        tool = _ForwardTool(
            name=fn["name"],
            description=fn.get("description") or "",
            parameters=fn.get("parameters") or {"type": "object", "properties": {}},
        )
        tool._forward = self._forward
        return tool

    async def _forward(self, name: str, arguments: dict) -> str:
        """Body of every served tool: runs the episode's call on the session's worker thread."""
        episode = self._require_episode()
        if name == DONE_TOOL:
            message = arguments.get("message")
            if message is not None and not isinstance(message, str):
                raise ValueError("done: 'message' must be a string")
            if message:
                await self._in_worker_async(episode.add_assistant_message, message)
            return json.dumps(await self._in_worker_async(self._finish, "assistant"), sort_keys=True)
        if name == USER_TOOL:
            text = arguments.get("text")
            if not isinstance(text, str):
                raise ValueError("send_message_to_user needs 'text' (a string)")
            reply = await self._in_worker_async(episode.send_message_to_user, text)
        else:
            reply = await self._in_worker_async(episode.call_tool, name, arguments)
        if episode.done:  # the user ended the conversation, the turn limit, a broken env
            await self._in_worker_async(self._finish, "user" if name == USER_TOOL else "env")
        return reply

    def _finish(self, by: str) -> dict:
        """Score the episode (once) and mark it over; runs on the worker thread."""
        if self._finished is None:
            scored = _score_dict(self._episode.score())
            scored["ended_by"] = by
            self._finished = scored
            log.info(
                "episode %s task %s ended by %s: reward %.3f category %s",
                self._state.episode_id,
                self._task_id,
                by,
                scored["reward"],
                scored["category"],
            )
        return self._finished

    # ------------------------------------------------------------------ OpenEnv API
    def reset(
        self,
        seed: int | None = None,
        episode_id: str | None = None,
        task_id: str | None = None,
        **kwargs: Any,
    ) -> EpisodeObservation:
        """Start an episode of ``task_id`` (or the seed's task) on a fresh state."""
        with self._lock:
            try:
                obs = self._in_worker(self._reset_episode, seed, task_id)
            except Exception as exc:  # unknown task, broken env: said, not raised
                log.warning("reset failed: %s", exc)
                self._task_id = None
                return EpisodeObservation(
                    task_id=task_id or "",
                    system="",
                    user_message="",
                    tools=[],
                    env_version="",
                    messages=[],
                    error=f"{type(exc).__name__}: {exc}",
                    done=False,
                    reward=None,
                )
            self._task_id = obs.task_id
            self._finished = None
            self._state = State(episode_id=episode_id or str(uuid4()), step_count=0, task_id=obs.task_id)
            return EpisodeObservation(
                task_id=obs.task_id,
                system=obs.system,
                user_message=obs.user_message,
                tools=self.tools,
                env_version=obs.env_version,
                messages=[{"role": "system", "content": obs.system}, {"role": "user", "content": obs.user_message}],
                done=False,
                reward=None,
            )

    def _reset_episode(self, seed: int | None, task_id: str | None) -> Any:
        if task_id is None:
            ids = self._episode.task_ids()
            task_id = ids[seed % len(ids)] if seed is not None else ids[0]
        obs = self._episode.reset(task_id)
        served = [t["function"]["name"] for t in self.tools]
        if [t["function"]["name"] for t in obs.tools] != served[: len(obs.tools)]:  # one list per env
            raise RuntimeError(f"task {obs.task_id}: its tools differ from the env's")
        return obs

    def step(self, action: Action, timeout_s: float | None = None, **kwargs: Any) -> Observation:
        if isinstance(action, ListToolsAction | CallToolAction):
            return asyncio.run(self.step_async(action, timeout_s=timeout_s, **kwargs))
        return self._step_impl(action, timeout_s=timeout_s, **kwargs)

    async def step_async(self, action: Action, timeout_s: float | None = None, **kwargs: Any) -> Observation:
        if isinstance(action, ListToolsAction):
            return await self._async_handle_list_tools()
        if not isinstance(action, CallToolAction):
            return self._step_impl(action, timeout_s=timeout_s, **kwargs)
        self._state.step_count += 1
        if self._finished is not None or self._task_id is None:
            why = "the episode is over: call reset() for a new one" if self._task_id else "call reset() first"
            return self._tool_obs(
                action.tool_name, None, ToolError(error_type=ToolErrorType.EXECUTION_ERROR, message=why)
            )
        base = await self._async_handle_call_tool(
            action, timeout_s=timeout_s if timeout_s is not None else self.tool_timeout_s
        )
        return self._tool_obs(action.tool_name, base.result, base.error)

    def _tool_obs(self, tool_name: str, result: Any, error: ToolError | None) -> EpisodeToolObservation:
        fin = self._finished
        if fin is None:
            return EpisodeToolObservation(tool_name=tool_name, result=result, error=error, done=False, reward=None)
        return EpisodeToolObservation(
            tool_name=tool_name,
            result=result,
            error=error,
            done=True,
            reward=fin["reward"],
            passed=fin["passed"],
            category=fin["category"],
            diagnostics=fin["diagnostics"],
        )

    def _step_impl(self, action: Action, timeout_s: float | None = None, **kwargs: Any) -> Observation:
        return Observation(
            done=self._finished is not None,
            reward=None,
            metadata={"error": f"unknown action {type(action).__name__}: use ListToolsAction or CallToolAction"},
        )

    @property
    def state(self) -> State:
        return self._state

    def close(self) -> None:
        episode, self._episode = self._episode, None
        if episode is not None:
            try:
                self._in_worker(episode.close)
            except Exception as exc:  # best effort, like OpenEnv's own cleanup
                log.warning("closing the episode env failed: %s", exc)
        super().close()


class AgentSkillerEnvClient(MCPToolClient):
    """``MCPToolClient`` that keeps this env's observation fields (``reset`` gives an
    :class:`EpisodeObservation`, tool steps an :class:`EpisodeToolObservation`)."""

    def _parse_result(self, payload: dict[str, Any]) -> Any:
        result = super()._parse_result(payload)
        obs = payload.get("observation", {})
        common = {"done": payload.get("done", False), "reward": payload.get("reward")}
        if "system" in obs and "user_message" in obs:
            result.observation = EpisodeObservation(**obs, **common)
        elif "tool_name" in obs:
            base = result.observation
            result.observation = EpisodeToolObservation(
                tool_name=obs["tool_name"],
                result=obs.get("result"),
                error=base.error,
                passed=obs.get("passed"),
                category=obs.get("category"),
                diagnostics=obs.get("diagnostics") or {},
                **common,
            )
        return result

    async def finish(self, message: str | None = None) -> Any:
        """End the episode (the ``done`` tool, with an optional last assistant message that
        the user does not answer); the StepResult carries the reward."""
        arguments = {"message": message} if message else {}
        return await self.step(CallToolAction(tool_name=DONE_TOOL, arguments=arguments))


class _QuietClientClose:
    """ASGI wrapper: OpenEnv's ``/ws`` handler closes the socket after the client already
    did, and Starlette raises ``WebSocketDisconnect`` for that (openenv-core 0.3.0 catches
    only ``RuntimeError``), which uvicorn would log as an error after every episode."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        from starlette.websockets import WebSocketDisconnect

        try:
            await self.app(scope, receive, send)
        except WebSocketDisconnect:
            if scope.get("type") != "websocket":
                raise


def make_app(
    outputs_dir: str | Path,
    env_name: str,
    *,
    max_sessions: int = DEFAULT_MAX_SESSIONS,
    tool_timeout_s: float = DEFAULT_TOOL_TIMEOUT_S,
    episode_env_factory: Callable[[Path, str], Any] | None = None,
):
    """The FastAPI app (OpenEnv's ``create_app``): ``/ws`` (reset/step/state, rewards; its
    ``mcp`` messages are JSON-RPC tools/list and tools/call on the session's episode, no
    rewards), ``/mcp`` (JSON-RPC tools/list; a call needs an episode, i.e. a ``/ws`` reset),
    the stateless ``/reset`` and ``/step``, ``/health``, ``/schema``."""
    factory = functools.partial(
        AgentSkillerEnvironment,
        outputs_dir,
        env_name,
        tool_timeout_s=tool_timeout_s,
        episode_env_factory=episode_env_factory,
    )
    factory().close()  # fail now, not at the first session: unknown env, no rows, a reserved tool name
    app = create_app(
        factory,
        CallToolAction,
        EpisodeToolObservation,
        env_name=f"agentskiller-{env_name}",
        max_concurrent_envs=max_sessions,
    )
    app.add_middleware(_QuietClientClose)
    return app


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m agentskiller.rlenv.openenv", description=__doc__.split("\n\n")[0])
    ap.add_argument("--outputs", default="outputs", help="the workflow's outputs directory (default: outputs)")
    ap.add_argument("--env", required=True, help="a domain or pair name under outputs/")
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    ap.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    ap.add_argument("--max-sessions", type=int, default=DEFAULT_MAX_SESSIONS, help="concurrent WebSocket sessions")
    ap.add_argument("--tool-timeout", type=float, default=DEFAULT_TOOL_TIMEOUT_S, help="seconds per tool call")
    ap.add_argument("--max-turns", type=int, default=30, help="user turns before an episode is cut off (default 30)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the offline simulated user (default 0)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    import uvicorn

    outputs = Path(args.outputs).resolve()
    episode_cls = _episode_env_cls()

    def episode_env(out: Path, name: str) -> Any:
        return episode_cls(out, name, seed=args.seed, max_turns=args.max_turns)

    app = make_app(
        outputs,
        args.env,
        max_sessions=args.max_sessions,
        tool_timeout_s=args.tool_timeout,
        episode_env_factory=episode_env,
    )
    log.info("serving env %s from %s on http://%s:%d (ws: /ws)", args.env, outputs, args.host, args.port)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
