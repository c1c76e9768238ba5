"""The fast path's session process: one environment, many episodes, JSON lines on stdio.

    python -m rollout.session_worker env/manifest.json [--call-timeout-s S]

It runs **inside the sandbox** (:class:`rollout.transport.FastTransport` starts it through
:func:`agentskiller.runtime.sandbox.confine`, like ``agentskiller.serve`` starts the MCP
server): the generated tool code is imported here and nowhere else.

Protocol, one JSON object per line each way. On start it answers
``{"op": "ready", "tools": [names], "initial_state_hash": h}`` (or ``{"op": "error",
"error": why}`` and exits 2). Then, per request:

* ``{"op": "reset"}`` -> ``{"ok": true, "state_hash": h}``: a fresh copy of the initial
  state (every episode starts with one);
* ``{"op": "call", "tool": name, "arguments": {...}}`` -> ``{"ok": true, "record":
  CallRecord}`` (:meth:`agentskiller.runtime.environment.CallRecord.to_json`: ``tool, ok,
  result, error, error_type, state_hash_after, changed_tables``). A failing tool is a
  failed record, never a protocol error; a call past ``--call-timeout-s`` is a ``timeout``
  record and the state is rolled back;
* ``{"op": "hash"}`` -> ``{"ok": true, "state_hash": h}``;
* ``{"op": "state"}`` -> ``{"ok": true, "state": {table: [records]}}``;
* ``{"op": "drop", "session": key}`` -> ``{"ok": true, "dropped": bool}``: forget a keyed
  session (its state is freed);
* ``{"op": "quit"}`` (or end of input) -> exit 0.

**Keyed sessions.** Every request may carry ``"session": key`` (a string). Each key has its
own state, created by ``reset`` with that key and freed by ``drop``; a request without a key
uses the default session (the rollout's one-episode-at-a-time use). So one process serves
many concurrent episodes (``agentskiller.rlenv``: one key per episode) with the tool code
imported once, instead of one sandbox start per episode; every state is a private copy of
the initial state, and a tool only ever sees the state of the key it was called with. A
``call`` / ``hash`` / ``state`` with an unknown key gets ``{"ok": false, "error": ...}``.

A malformed request gets ``{"ok": false, "error": why}``. Whatever the tool code prints goes
to stderr: the protocol has a private copy of the original stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any


def _reply(out, obj: dict[str, Any]) -> None:
    out.write(json.dumps(obj, ensure_ascii=False, allow_nan=False) + "\n")
    out.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rollout.session_worker")
    parser.add_argument("manifest")
    parser.add_argument("--call-timeout-s", type=float, default=10.0)
    args = parser.parse_args(argv)

    # The protocol gets a private copy of stdout; fd 1 (and print) become stderr, so tool
    # code that prints cannot corrupt the wire.
    proto = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    from agentskiller.runtime.environment import environment_from_manifest
    from agentskiller.runtime.worker import _Alarm

    try:
        path = Path(args.manifest)
        manifest = json.loads(path.read_text(encoding="utf-8"))
        env = environment_from_manifest(manifest, path.parent, source=path)
        toolset = env.toolset()
        initial = env.initial_state()
    except Exception as exc:  # the tool code does not import, a table is broken...
        _reply(proto, {"op": "error", "error": f"{type(exc).__name__}: {exc}"[:2000]})
        return 2
    sessions = {None: env.new_session(initial.copy(), toolset)}
    _reply(proto, {"op": "ready", "tools": toolset.names(), "initial_state_hash": initial.hash()})

    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            req = json.loads(line)
            op = req["op"]
        except (ValueError, KeyError, TypeError):
            _reply(proto, {"ok": False, "error": "expected a JSON object with an 'op'"})
            continue
        if op == "quit":
            break
        key = req.get("session")
        if key is not None and not isinstance(key, str):
            _reply(proto, {"ok": False, "error": "'session' must be a string"})
            continue
        if op == "reset":
            session = sessions[key] = env.new_session(initial.copy(), toolset)
            _reply(proto, {"ok": True, "state_hash": session.state.hash()})
            continue
        if op == "drop":
            _reply(proto, {"ok": True, "dropped": key is not None and sessions.pop(key, None) is not None})
            continue
        session = sessions.get(key)
        if session is None:
            _reply(proto, {"ok": False, "error": f"no session {key!r} (reset it first)"})
            continue
        if op == "call":
            tool, arguments = req.get("tool"), req.get("arguments")
            if not isinstance(tool, str) or not isinstance(arguments, (dict, type(None))):
                _reply(proto, {"ok": False, "error": "a call needs 'tool' (a name) and 'arguments' (an object)"})
                continue
            with _Alarm(args.call_timeout_s):
                rec = session.call(tool, arguments or {})
            _reply(proto, {"ok": True, "record": rec.to_json()})
        elif op == "hash":
            _reply(proto, {"ok": True, "state_hash": session.state.hash()})
        elif op == "state":
            _reply(proto, {"ok": True, "state": session.state.canonical()})
        else:
            _reply(proto, {"ok": False, "error": f"unknown op {op!r}"})
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
