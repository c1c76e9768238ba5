"""The OpenEnv adapter (agentskiller/rlenv/openenv.py), through OpenEnv's own client.

A real server (OpenEnv's FastAPI app under uvicorn, on 127.0.0.1) serves the ClinicDesk
fixture env (tests/rollout_fixture.py: action, create, lookup, refusal and auth-failure
rows); the client (:class:`AgentSkillerEnvClient`, an ``MCPToolClient``) resets an episode,
lists the tools and plays the row's golden calls (fine in a test: a trainer's model would
not see them) with a scripted user that says yes to every proposal: reward 1.0 on every
row. A wrong write gets a lower reward with its failure category; 16 concurrent sessions
keep separate states; the launcher (``python -m agentskiller.rlenv.openenv``) serves the
default offline user. Skipped when the ``openenv`` extra (openenv-core) is not installed.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("openenv.core.env_server.mcp_environment", reason="needs the 'openenv' extra (openenv-core)")
pytest.importorskip("uvicorn")

import uvicorn  # noqa: E402
from openenv.core.env_server.mcp_types import CallToolAction  # noqa: E402
from rollout_fixture import make_outputs  # noqa: E402

from agentskiller.rlenv import EpisodeEnv  # noqa: E402
from agentskiller.rlenv.openenv import (  # noqa: E402
    DONE_TOOL,
    USER_TOOL,
    AgentSkillerEnvClient,
    EpisodeObservation,
    EpisodeToolObservation,
    make_app,
)
from evaluator.play import GoldenUser, golden_steps  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ENV = "ClinicDesk"
#: the fixture's write tools (its server has no blueprint; these are its create/update/delete tools)
WRITES = {"cancel_appointment", "book_appointment", "reschedule_appointment"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Server:
    """The adapter's app under uvicorn in a thread of this process."""

    def __init__(self, app) -> None:
        self.port = _free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> _Server:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "the OpenEnv server did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def fixture_env(tmp_path_factory):
    out, rows = make_outputs(tmp_path_factory.mktemp("openenv"))
    for row in rows:  # the rows the core serves carry the task IDs and kinds below
        assert row["env"] == ENV
    return out, {r["task_id"]: r for r in rows}


@pytest.fixture(scope="module")
def server(fixture_env):
    out, _ = fixture_env
    app = make_app(out, ENV, max_sessions=16, episode_env_factory=lambda o, n: EpisodeEnv(o, n, user=GoldenUser))
    with _Server(app) as srv:
        yield srv


def _run(coro):
    return asyncio.run(coro)


async def _play(url: str, row: dict, *, wrong: bool = False) -> tuple:
    """Reset ``row``'s task, list the tools, play its golden steps; ``wrong``: the last
    write with one argument changed. Returns (reset obs, tool names, last StepResult)."""
    async with AgentSkillerEnvClient(base_url=url) as client:
        reset = await client.reset(task_id=row["task_id"])
        tools = [t.name for t in await client.list_tools()]
        steps = golden_steps(row, lambda name: name in WRITES)
        if wrong:
            k = max(i for i, st in enumerate(steps) if st[0] == "call" and st[1] in WRITES)
            args = dict(steps[k][2])
            key = "date" if "date" in args else sorted(args)[0]
            args[key] = "2025-07-03" if key == "date" else f"{args[key]}9"
            steps[k] = ("call", steps[k][1], args)
        last = None
        for st in steps:
            if st[0] == "call":
                last = await client.step(CallToolAction(tool_name=st[1], arguments=st[2]))
                assert last.observation.error is None, last.observation.error
            elif st[0] == "assistant":  # the scripted user's reply is the next ("user", ...) step
                last = await client.step(CallToolAction(tool_name=USER_TOOL, arguments={"text": st[1]}))
        return reset.observation, tools, last


def test_golden_play_gets_reward_one_on_every_task(server, fixture_env):
    out, rows = fixture_env
    kinds = set()
    for tid, row in rows.items():
        obs, tools, last = _run(_play(server.url, row))
        assert isinstance(obs, EpisodeObservation) and obs.error is None
        assert obs.task_id == tid and obs.system == row["messages"][0]["content"]
        assert obs.user_message == row["messages"][1]["content"]
        assert obs.messages == row["messages"][:2]
        assert obs.env_version.startswith("ev1-")
        env_tools = [t["function"]["name"] for t in json.loads(row["tools"])]
        assert tools == env_tools + [USER_TOOL, DONE_TOOL]  # listed over MCP
        assert [t["function"]["name"] for t in obs.tools] == tools  # and given with the reset
        # the user's ###STOP### ended the episode: the terminal observation carries the score
        assert last.done and last.reward == 1.0, (row["task_kind"], last.observation)
        assert isinstance(last.observation, EpisodeToolObservation)
        assert last.observation.passed is True and last.observation.category is None
        assert last.observation.diagnostics["scores"]["end_state"]
        kinds.add(row["task_kind"])
    assert kinds == {"action", "lookup", "refusal", "auth_failure"}


def test_wrong_write_gets_lower_reward_with_its_category(server, fixture_env):
    _, rows = fixture_env
    row = next(r for r in rows.values() if "book_appointment" in r["trajectory"])
    _, _, last = _run(_play(server.url, row, wrong=True))
    assert last.done and last.reward is not None and last.reward < 1.0
    assert last.observation.passed is False
    assert last.observation.category == "wrong_write_args", last.observation.diagnostics
    assert last.observation.diagnostics["evidence"]["wrong_write_args"]


def test_done_ends_the_episode_and_later_steps_are_refused(server, fixture_env):
    """An agent that ends at once: the ``done`` tool scores the empty episode (a write was
    needed: 0, ``missing_write``); the score is also the tool's result text, so a plain
    MCPToolClient reads it; every later step is refused until the next reset."""
    _, rows = fixture_env
    row = next(r for r in rows.values() if r["task_kind"] == "action")

    async def go():
        async with AgentSkillerEnvClient(base_url=server.url) as client:
            before = await client.step(
                CallToolAction(tool_name="authorize_patient", arguments={"patient_id": "PAT-001"})
            )
            assert before.observation.error is not None  # no episode yet
            await client.reset(task_id=row["task_id"])
            first = await client.step(
                CallToolAction(tool_name="authorize_patient", arguments={"patient_id": "PAT-001"})
            )
            assert not first.done and first.reward is None
            assert json.loads(first.observation.result["data"])["authorized"] is True
            fin = await client.finish()
            after = await client.step(CallToolAction(tool_name="search_appointments", arguments={}))
            again = await client.reset(task_id=row["task_id"])
            return fin, after, again

    fin, after, again = _run(go())
    assert fin.done and fin.reward == 0.0
    assert fin.observation.category == "missing_write" and fin.observation.passed is False
    assert json.loads(fin.observation.result["data"])["category"] == "missing_write"
    assert after.done and after.observation.error is not None and "over" in after.observation.error.message
    assert again.observation.error is None and not again.done


def test_done_with_a_last_message_answers_a_lookup(server, fixture_env):
    """A lookup answered in ``done``'s message (no user turn after it) passes."""
    _, rows = fixture_env
    row = next(r for r in rows.values() if r["task_kind"] == "lookup")

    async def go():
        async with AgentSkillerEnvClient(base_url=server.url) as client:
            await client.reset(task_id=row["task_id"])
            await client.call_tool("authorize_patient", patient_id="PAT-001")
            await client.call_tool("get_appointment", appointment_id="APT-0002")
            return await client.finish("The fee of appointment APT-0002 was 300.")

    fin = _run(go())
    assert fin.done and fin.reward == 1.0 and fin.observation.passed, fin.observation.diagnostics
    assert json.loads(fin.observation.result["data"])["ended_by"] == "assistant"


def test_reset_by_seed_and_unknown_task(server, fixture_env):
    """``seed=N`` picks ``task_ids()[N % len]``; an unknown task is an error observation."""
    _, rows = fixture_env
    ids = sorted(rows)

    async def go():
        async with AgentSkillerEnvClient(base_url=server.url) as client:
            by_seed = [(await client.reset(seed=n)).observation.task_id for n in (1, len(ids) + 1)]
            return by_seed, (await client.reset(task_id="no-such-task")).observation

    by_seed, obs = _run(go())
    assert by_seed == [ids[1], ids[1]]
    assert isinstance(obs, EpisodeObservation) and "no-such-task" in (obs.error or "")


def test_sixteen_concurrent_sessions_keep_separate_states(server, fixture_env):
    """16 WebSocket sessions on one server at once, each its own episode: every golden one
    passes, the one with a wrong write fails alone."""
    _, rows = fixture_env
    order = sorted(rows)
    wrong_row = next(r for r in rows.values() if "book_appointment" in r["trajectory"])

    async def go():
        jobs = []
        for i in range(16):
            row = wrong_row if i == 5 else rows[order[i % len(order)]]
            jobs.append(_play(server.url, row, wrong=(i == 5)))
        return await asyncio.gather(*jobs)

    results = _run(go())
    rewards = [last.reward for _, _, last in results]
    assert rewards[5] < 1.0 and results[5][2].observation.category == "wrong_write_args"
    assert rewards[:5] + rewards[6:] == [1.0] * 15


def test_launcher_serves_the_env_with_the_offline_user(fixture_env):
    """``python -m agentskiller.rlenv.openenv``: a separate process with the default
    (offline) simulated user; reset, list, one read, a user turn, then ``done``."""
    out, rows = fixture_env
    row = next(r for r in rows.values() if r["task_kind"] == "action")
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "agentskiller.rlenv.openenv", "--outputs", str(out), "--env", ENV, "--port", str(port)]
    cmd += ["--max-turns", "2"]  # the opening message and one more user turn
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240  # imports gradio and fastapi: slow on a loaded machine
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read()
                assert time.monotonic() < deadline, "the launcher did not listen"
                time.sleep(0.2)

        import httpx

        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/health", timeout=30).status_code == 200
        # OpenEnv's JSON-RPC endpoint lists the same tools (no episode, no reward there)
        rpc = httpx.post(
            f"{base}/mcp", json={"jsonrpc": "2.0", "method": "tools/list", "params": {}, "id": 1}, timeout=60
        )
        listed = [t["name"] for t in rpc.json()["result"]["tools"]]
        assert listed[-2:] == [USER_TOOL, DONE_TOOL] and "authorize_patient" in listed
        # the README's example: the sync client
        with AgentSkillerEnvClient(base_url=f"http://127.0.0.1:{port}").sync() as client:
            obs = client.reset(task_id=row["task_id"]).observation
            names = [t.name for t in client.list_tools()]
            auth = client.call_tool("authorize_patient", patient_id="PAT-001")
            reply = client.call_tool(USER_TOOL, text="Thanks. What else can I do for you?")
            cut = client.call_tool(USER_TOOL, text="Anything else?")  # past --max-turns: the episode ends
            fin = client.finish()  # refused after the end, with the episode's score
        assert obs.error is None and obs.task_id == row["task_id"] and USER_TOOL in names
        assert json.loads(auth)["authorized"] is True
        assert isinstance(reply, str) and reply.strip() and "max_turns" not in reply  # the offline user answered
        assert "max_turns" in cut
        assert fin.done and fin.reward == 0.0 and fin.observation.category is not None
        assert fin.observation.error is not None and "over" in fin.observation.error.message
    finally:
        proc.terminate()
        proc.wait(timeout=30)
