"""Tool transports: how an episode's tool calls reach the environment.

Both run the generated tool code sandboxed, outside the rollout process, and both start
every episode from a fresh copy of the initial state:

* :class:`FastTransport` (``fast``): one persistent sandboxed process per environment
  (:mod:`rollout.session_worker`, started through
  :func:`agentskiller.runtime.sandbox.confine` exactly as ``agentskiller.serve`` starts
  the MCP server), spoken to in JSON lines; ``reset`` gives a fresh state without a new
  process. Requests may name a session key (``reset(session=k)``, ``call(..., session=k)``,
  ``drop(k)``): one process then holds many independent episode states, which is how
  :mod:`agentskiller.rlenv` runs concurrent episodes; the transport is thread-safe (one
  request and its answer at a time).
* :class:`McpTransport` (``mcp``): the environment's real MCP server over stdio, the
  sandboxed ``python -m agentskiller.serve <server dir>``, spoken to with the official
  ``mcp`` client SDK (``list_tools``, ``call_tool``). One server process is one episode
  (the state lives in it), so ``reset`` starts a new server. The state hash after each
  call comes from the result's ``_meta`` (``agentskiller.runtime.mcp_server.META_KEY``).

:meth:`Transport.call` answers a :class:`CallOutcome` (the fields of
:class:`agentskiller.runtime.environment.CallRecord`) in both cases, so an episode played
over either transport gives the same tool messages and the same final state hash (a
test plays one episode both ways). One difference is left: arguments that do not fit the
tool's schema are rejected by the MCP SDK with its own wording before the tool runs.

A transport that cannot start, dies or stops answering raises :class:`TransportError`;
the episode then ends with ``stop_reason = "infra_error"``.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

__all__ = [
    "CallOutcome",
    "Transport",
    "TransportError",
    "FastTransport",
    "McpTransport",
    "make_transport",
    "server_dir",
]


class TransportError(RuntimeError):
    """The environment's process could not be started, died or stopped answering."""


@dataclass
class CallOutcome:
    tool: str
    ok: bool
    result: Any = None
    error: str | None = None
    error_type: str | None = None
    state_hash_after: str = ""
    changed_tables: list[str] = field(default_factory=list)

    @classmethod
    def from_record(cls, rec: dict) -> CallOutcome:
        return cls(
            tool=rec["tool"],
            ok=bool(rec["ok"]),
            result=rec.get("result"),
            error=rec.get("error"),
            error_type=rec.get("error_type"),
            state_hash_after=rec.get("state_hash_after") or "",
            changed_tables=list(rec.get("changed_tables") or []),
        )

    def message_content(self) -> str:
        """The ``tool`` message's content: the result as JSON text, or ``{"error": ...}``."""
        if self.ok:
            return json.dumps(self.result, ensure_ascii=False)
        return json.dumps({"error": self.error or "tool error"}, ensure_ascii=False)


class Transport(Protocol):
    name: str

    def reset(self) -> str:
        """Start a fresh episode; returns the initial state hash."""

    def call(self, tool: str, arguments: dict) -> CallOutcome: ...

    def state_hash(self) -> str: ...

    def close(self) -> None: ...


def server_dir(outputs: Path, env: str) -> Path:
    """An env's server: ``servers/{domain}`` or a pair's ``cross/{pair}/server``."""
    from agentskiller.reporting.task_audit import server_dir as _server_dir

    return _server_dir(Path(outputs), env)


# --------------------------------------------------------------------------- fast
class FastTransport:
    """A persistent sandboxed :mod:`rollout.session_worker` for one environment."""

    name = "fast"

    def __init__(
        self,
        server: str | Path,
        *,
        call_timeout_s: float = 10.0,
        start_timeout_s: float = 120.0,
        memory_mb: int | None = None,
        cpu_s: int = 3600,
    ) -> None:
        from agentskiller.runtime.environment import load_environment
        from agentskiller.runtime.sandbox import SandboxSettings, confine
        from agentskiller.runtime.worker import bundle_environment

        self.server = Path(server)
        self.call_timeout_s = float(call_timeout_s)
        self._answer_timeout_s = self.call_timeout_s + 30.0
        self._buf = b""
        self._lock = threading.Lock()
        self._stderr = tempfile.TemporaryFile()
        settings = SandboxSettings()
        # Only JSON is read here: the tool code is first imported by the confined child.
        try:
            files, manifest_rel = bundle_environment(load_environment(self.server))
        except Exception as exc:
            raise TransportError(f"cannot load {self.server}: {exc}") from exc
        self._conf = confine(
            [
                sys.executable,
                "-m",
                "rollout.session_worker",
                manifest_rel,
                "--call-timeout-s",
                str(self.call_timeout_s),
            ],
            files=files,
            memory_mb=settings.memory_mb if memory_mb is None else memory_mb,
            cpu_s=cpu_s,
            max_processes=settings.max_processes,
            max_file_bytes=64 * 2**20,
            disk_mb=settings.disk_mb,
            isolate_network=True,
            new_session=True,
            die_with_parent=True,
        )
        self.isolation = dict(self._conf.isolation)
        try:
            self._proc = subprocess.Popen(
                self._conf.argv,
                env=self._conf.env,
                preexec_fn=self._conf.preexec,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                close_fds=True,
            )
        except Exception as exc:
            self._conf.close()
            raise TransportError(f"cannot start the session worker: {exc}") from exc
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._proc.stdout, selectors.EVENT_READ)
        hello = self._read(start_timeout_s)
        if hello.get("op") != "ready":
            self.close()
            raise TransportError(f"session worker for {self.server} failed: {hello.get('error', hello)}")
        self.tools: list[str] = list(hello["tools"])
        self.initial_state_hash: str = hello["initial_state_hash"]
        self._hash = self.initial_state_hash

    # -- wire -------------------------------------------------------------------------
    def _stderr_tail(self, limit: int = 2000) -> str:
        try:
            self._stderr.seek(0)
            data = self._stderr.read()
        except (OSError, ValueError):
            return ""
        return data[-limit:].decode("utf-8", "replace").strip()

    def _read(self, timeout_s: float) -> dict:
        deadline = time.monotonic() + timeout_s
        fd = self._proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not self._sel.select(left):
                raise TransportError(f"session worker for {self.server} did not answer in {timeout_s:g} s")
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                code = self._proc.poll()
                raise TransportError(
                    f"session worker for {self.server} exited (status {code}): {self._stderr_tail() or 'no output'}"
                )
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        try:
            return json.loads(line)
        except ValueError as exc:
            raise TransportError(f"session worker wrote a bad line: {line[:200]!r}") from exc

    def _ask(self, request: dict) -> dict:
        with self._lock:
            return self._ask_locked(request)

    def _ask_locked(self, request: dict) -> dict:
        if self._proc.poll() is not None:
            raise TransportError(f"session worker for {self.server} is not running: {self._stderr_tail()}")
        try:
            self._proc.stdin.write((json.dumps(request, ensure_ascii=False) + "\n").encode("utf-8"))
            self._proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise TransportError(f"session worker for {self.server} is gone: {exc}") from exc
        answer = self._read(self._answer_timeout_s)
        if not answer.get("ok"):
            raise TransportError(f"session worker refused {request.get('op')}: {answer.get('error')}")
        return answer

    # -- API --------------------------------------------------------------------------
    # ``session=None`` is the default session (one episode at a time, the rollout's use);
    # a key names one of many concurrent episode states in the same process.
    def reset(self, session: str | None = None) -> str:
        h = self._ask({"op": "reset", "session": session})["state_hash"]
        if session is None:
            self._hash = h
        return h

    def call(self, tool: str, arguments: dict, session: str | None = None) -> CallOutcome:
        answer = self._ask({"op": "call", "tool": tool, "arguments": arguments, "session": session})
        out = CallOutcome.from_record(answer["record"])
        if session is None:
            self._hash = out.state_hash_after or self._hash
        return out

    def state_hash(self, session: str | None = None) -> str:
        if session is None:
            return self._hash
        return self._ask({"op": "hash", "session": session})["state_hash"]

    def state(self, session: str | None = None) -> dict:
        return self._ask({"op": "state", "session": session})["state"]

    def drop(self, session: str) -> None:
        """Free a keyed session's state (a no-op for an unknown key)."""
        self._ask({"op": "drop", "session": session})

    def close(self) -> None:
        proc = getattr(self, "_proc", None)
        if proc is not None and proc.poll() is None:
            try:
                proc.stdin.write(b'{"op": "quit"}\n')
                proc.stdin.flush()
                proc.stdin.close()
                proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait()
        if proc is not None:
            for stream in (proc.stdin, proc.stdout):
                try:
                    stream.close()
                except OSError:
                    pass
            self._sel.close()
        self._conf.close(proc.pid if proc is not None else None)
        self._stderr.close()

    def __enter__(self) -> FastTransport:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# --------------------------------------------------------------------------- mcp
class McpTransport:
    """The env's MCP server (``python -m agentskiller.serve``) over stdio, one per episode."""

    name = "mcp"

    def __init__(self, server: str | Path, *, call_timeout_s: float = 10.0, start_timeout_s: float = 120.0) -> None:
        import anyio.from_thread

        from agentskiller.runtime.sandbox import REPO_ROOT

        self.server = Path(server).resolve()
        self.call_timeout_s = float(call_timeout_s)
        self.start_timeout_s = float(start_timeout_s)
        self._repo = REPO_ROOT
        self._stack = ExitStack()
        self._portal = self._stack.enter_context(anyio.from_thread.start_blocking_portal())
        self._episode: ExitStack | None = None
        self._client = None
        self._errlog = tempfile.TemporaryFile(mode="w+", encoding="utf-8")
        self.tools: list[str] = []
        # The server reports the hash after each call; the one before the first call is
        # computed here from the table files (JSON only: no tool code runs in this process).
        from agentskiller.runtime.environment import load_environment

        try:
            self.initial_state_hash = load_environment(self.server).initial_state().hash()
        except Exception as exc:
            raise TransportError(f"cannot load {self.server}: {exc}") from exc
        self._hash = self.initial_state_hash

    def _open(self) -> None:
        from mcp import Client, StdioServerParameters
        from mcp.client.stdio import stdio_client

        params = StdioServerParameters(
            command=sys.executable,
            args=["-m", "agentskiller.serve", str(self.server), "--call-timeout-s", f"{self.call_timeout_s:g}"],
            env={"PYTHONPATH": str(self._repo), "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            cwd=str(self._repo),
        )
        client = Client(stdio_client(params, errlog=self._errlog), read_timeout_seconds=self.call_timeout_s + 30)
        stack = ExitStack()
        try:
            self._client = stack.enter_context(self._portal.wrap_async_context_manager(client))
            tools = self._portal.call(self._with_timeout, self._client.list_tools, self.start_timeout_s)
        except Exception as exc:
            stack.close()
            raise TransportError(f"MCP server {self.server} did not start: {exc}; {self._errlog_tail()}") from exc
        self._episode = stack
        self.tools = [t.name for t in tools.tools]

    @staticmethod
    async def _with_timeout(fn, seconds: float, *args):
        import anyio

        with anyio.fail_after(seconds):
            return await fn(*args)

    def _errlog_tail(self, limit: int = 2000) -> str:
        try:
            self._errlog.seek(0)
            return self._errlog.read()[-limit:].strip()
        except (OSError, ValueError):
            return ""

    def _close_episode(self) -> None:
        if self._episode is not None:
            try:
                self._episode.close()
            except Exception:  # a dead server: nothing more to close
                pass
        self._episode, self._client = None, None

    def reset(self) -> str:
        self._close_episode()
        self._open()
        self._hash = self.initial_state_hash
        return self._hash

    def call(self, tool: str, arguments: dict) -> CallOutcome:
        from agentskiller.runtime.mcp_server import META_KEY

        if self._client is None:
            self._open()
        try:
            res = self._portal.call(
                self._with_timeout, self._client.call_tool, self.call_timeout_s + 30, tool, arguments
            )
        except Exception as exc:
            raise TransportError(f"MCP call {tool} failed: {exc}; {self._errlog_tail()}") from exc
        text = "".join(getattr(c, "text", "") for c in res.content)
        meta = (res.meta or {}).get(META_KEY) or {}
        if res.is_error:
            out = CallOutcome(
                tool=tool,
                ok=False,
                error=text or "tool error",
                error_type=meta.get("error_type") or "bad_arguments",
                state_hash_after=meta.get("state_hash_after") or self._hash,
            )
        else:
            try:
                result = json.loads(text)
            except ValueError:
                result = text
            out = CallOutcome(
                tool=tool,
                ok=True,
                result=result,
                state_hash_after=meta.get("state_hash_after") or self._hash,
                changed_tables=list(meta.get("changed_tables") or []),
            )
        self._hash = out.state_hash_after
        return out

    def state_hash(self) -> str:
        return self._hash

    def close(self) -> None:
        self._close_episode()
        self._stack.close()
        self._errlog.close()

    def __enter__(self) -> McpTransport:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def make_transport(kind: str, server: str | Path, *, call_timeout_s: float = 10.0) -> Transport:
    if kind == "fast":
        return FastTransport(server, call_timeout_s=call_timeout_s)
    if kind == "mcp":
        return McpTransport(server, call_timeout_s=call_timeout_s)
    raise ValueError(f"unknown transport {kind!r} (fast or mcp)")
