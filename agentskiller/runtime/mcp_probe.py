"""A minimal MCP client over stdio: start a server, ``initialize``, ``tools/list``, stop.

What s09 and the pair server need to prove that the documented command serves the tool
list: the same newline-delimited JSON-RPC 2.0 messages the MCP SDK's stdio client sends, on
a plain pipe. The SDK client costs an import of about a second (``mcp``, ``anyio``, pydantic
models of the whole protocol) in every job that checks a server; this costs none. Rollouts
and the tests that exercise the protocol in depth still use the SDK client.

The server is started in its own session, and its whole process group is killed when the
probe ends, however it ends.
"""

from __future__ import annotations

import json
import os
import queue
import select
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field

#: the protocol version offered; a server that speaks another one answers with its own
PROTOCOL_VERSION = "2025-06-18"
CLIENT_INFO = {"name": "agentskiller-probe", "version": "1"}


class ProbeError(RuntimeError):
    """The server did not start, answer, or answered an error."""


@dataclass
class ServerCommand:
    """How to start a stdio server (the fields of the SDK's ``StdioServerParameters``)."""

    command: str
    args: list[str] = field(default_factory=list)
    env: dict[str, str] | None = None
    cwd: str | None = None


class _Wire:
    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self.lines: queue.Queue[bytes | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def send(self, message: dict) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(message, separators=(",", ":")) + "\n").encode())
        self.proc.stdin.flush()

    def answer(self, request_id: int, deadline: float) -> dict:
        """The response to ``request_id``; notifications and requests of the server are skipped."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ProbeError(f"no answer to request {request_id} in time")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                raise ProbeError(f"no answer to request {request_id} in time") from None
            if line is None:
                raise ProbeError(f"the server closed its output (exit status {self.proc.poll()})")
            try:
                msg = json.loads(line)
            except ValueError as exc:
                raise ProbeError(f"the server wrote a line that is not JSON-RPC: {line[:200]!r}") from exc
            if not isinstance(msg, dict) or msg.get("id") != request_id or "method" in msg:
                continue
            if "error" in msg:
                raise ProbeError(f"request {request_id} failed: {msg['error']}")
            return msg.get("result") or {}


def _await_exit(proc: subprocess.Popen, timeout_s: float) -> None:
    """Wait up to ``timeout_s`` for ``proc`` to end, woken by a pidfd the moment it does
    (``Popen.wait(timeout)`` polls with sleeps and notices up to 50 ms late)."""
    from agentskiller.runtime.sandbox import open_pidfd

    fd = open_pidfd(proc.pid)
    if fd is not None:
        try:
            select.select([fd], [], [], timeout_s)
        finally:
            os.close(fd)
    try:
        proc.wait(timeout=0 if fd is not None else timeout_s)
    except subprocess.TimeoutExpired:
        pass


def _stop(proc: subprocess.Popen) -> None:
    try:
        if proc.stdin is not None:
            proc.stdin.close()  # a stdio server ends when its input does
    except OSError:
        pass
    _await_exit(proc, 5.0)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def list_tools(server: ServerCommand, timeout_s: float = 60.0) -> list[dict]:
    """``[{"name", "description", "inputSchema"}]`` as the server advertises them (every page)."""
    deadline = time.monotonic() + timeout_s
    with tempfile.TemporaryFile() as errlog:
        try:
            proc = subprocess.Popen(
                [server.command, *server.args],
                env=server.env,
                cwd=server.cwd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errlog,
                start_new_session=True,
            )
        except OSError as exc:
            raise ProbeError(f"cannot start {server.command}: {exc}") from exc
        try:
            wire = _Wire(proc)
            wire.send(
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "initialize",
                    "params": {"protocolVersion": PROTOCOL_VERSION, "capabilities": {}, "clientInfo": CLIENT_INFO},
                }
            )
            wire.answer(1, deadline)
            wire.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
            tools: list[dict] = []
            cursor = None
            request_id = 2
            while True:
                wire.send(
                    {
                        "jsonrpc": "2.0",
                        "id": request_id,
                        "method": "tools/list",
                        **({"params": {"cursor": cursor}} if cursor else {}),
                    }
                )
                result = wire.answer(request_id, deadline)
                for t in result.get("tools") or []:
                    tools.append(
                        {
                            "name": t.get("name"),
                            "description": t.get("description") or "",
                            "inputSchema": t.get("inputSchema") or {},
                        }
                    )
                cursor = result.get("nextCursor")
                if not cursor:
                    return tools
                request_id += 1
        except (ProbeError, OSError) as exc:
            _stop(proc)
            errlog.seek(0)
            tail = errlog.read()[-1500:].decode("utf-8", "replace").strip()
            raise ProbeError(f"{exc}" + (f"; server stderr: {tail}" if tail else "")) from None
        finally:
            if proc.poll() is None or proc.returncode is None:
                _stop(proc)
