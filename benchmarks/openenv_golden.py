"""Golden play through the OpenEnv server: every task of a built dataset, over the wire.

    python benchmarks/openenv_golden.py --outputs outputs/ [--envs A,B+C] [--per-env N] [--sessions 8]

Needs the ``openenv`` extra. Per env: serves it with :func:`agentskiller.rlenv.openenv.make_app`
(OpenEnv's FastAPI app under uvicorn on 127.0.0.1, a scripted user that says yes to every
proposal), then ``--sessions`` WebSocket clients at once play its tasks: reset, list the
tools, the row's golden steps (:func:`evaluator.play.golden_steps`: the assistant asks
before each write, the final message answers or explains) and, for every task whose golden
calls change the state, a second episode that ends at once (``done``). Prints per env and in
total: golden episodes with reward 1.0, empty episodes with reward 0 and their categories,
and the seconds. Exit status 1 when a golden episode scored below 1.0 or an empty one above 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import uvicorn  # noqa: E402
from openenv.core.env_server.mcp_types import CallToolAction  # noqa: E402

from agentskiller.models.blueprint import WRITE_KINDS  # noqa: E402
from agentskiller.rlenv import EpisodeEnv, load_env_rows  # noqa: E402
from agentskiller.rlenv.openenv import USER_TOOL, AgentSkillerEnvClient, make_app  # noqa: E402
from agentskiller.runtime.environment import load_environment  # noqa: E402
from evaluator.calls import ToolCatalog  # noqa: E402
from evaluator.play import GoldenUser, golden_steps  # noqa: E402
from rollout.transport import server_dir  # noqa: E402


def _is_write(outputs: Path, env: str, row: dict):
    names = [t["function"]["name"] for t in json.loads(row["tools"])]
    catalog = ToolCatalog.for_env(load_environment(server_dir(outputs, env)).manifest, [outputs / "blueprints"], names)
    return lambda name: (catalog.tools.get(name) or (None, None))[1] in WRITE_KINDS


async def play_golden(url: str, row: dict, is_write) -> tuple[float | None, str | None]:
    async with AgentSkillerEnvClient(base_url=url) as client:
        obs = (await client.reset(task_id=row["task_id"])).observation
        if obs.error:
            return None, obs.error
        await client.list_tools()
        last = None
        for st in golden_steps(row, is_write):
            if st[0] == "call":
                last = await client.step(CallToolAction(tool_name=st[1], arguments=st[2]))
            elif st[0] == "assistant":
                last = await client.step(CallToolAction(tool_name=USER_TOOL, arguments={"text": st[1]}))
        if last is None or not last.done:
            last = await client.finish()
        return last.reward, last.observation.category


async def play_empty(url: str, row: dict) -> tuple[float | None, str | None]:
    async with AgentSkillerEnvClient(base_url=url) as client:
        await client.reset(task_id=row["task_id"])
        fin = await client.finish()
        return fin.reward, fin.observation.category


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_env(outputs: Path, env: str, rows: list[dict], sessions: int) -> dict:
    app = make_app(
        outputs, env, max_sessions=sessions, episode_env_factory=lambda o, n: EpisodeEnv(o, n, user=GoldenUser)
    )
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    is_write = _is_write(outputs, env, rows[0])
    writes = [r for r in rows if r["final_state_hash"] != r["initial_state_hash"]]

    async def all_of_them():
        gate = asyncio.Semaphore(sessions)

        async def bounded(coro):
            async with gate:
                return await coro

        golden = [bounded(play_golden(url, r, is_write)) for r in rows]
        empty = [bounded(play_empty(url, r)) for r in writes]
        return await asyncio.gather(*golden), await asyncio.gather(*empty)

    try:
        golden, empty = asyncio.run(all_of_them())
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    return {
        "tasks": len(rows),
        "golden_1": sum(1 for r, _ in golden if r == 1.0),
        "golden_fail": [(row["task_id"], r, c) for row, (r, c) in zip(rows, golden) if r != 1.0],
        "writes": len(writes),
        "empty_0": sum(1 for r, _ in empty if r == 0.0),
        "empty_categories": Counter(c for _, c in empty),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--outputs", default="outputs")
    ap.add_argument("--envs", default="", help="comma-separated env names (default: every env of the dataset)")
    ap.add_argument("--per-env", type=int, default=0, help="at most N tasks per env (0: all)")
    ap.add_argument("--sessions", type=int, default=8, help="concurrent WebSocket sessions per env")
    args = ap.parse_args(argv)
    outputs = Path(args.outputs).resolve()
    by_env: dict[str, list[dict]] = {}
    for r in load_env_rows(outputs):
        by_env.setdefault(r["env"], []).append(r)
    names = [e for e in args.envs.split(",") if e] or sorted(by_env)
    total = Counter()
    categories: Counter = Counter()
    bad = []
    t0 = time.perf_counter()
    for env in names:
        rows = sorted(by_env[env], key=lambda r: r["task_id"])[: args.per_env or None]
        t = time.perf_counter()
        res = run_env(outputs, env, rows, args.sessions)
        for k in ("tasks", "golden_1", "writes", "empty_0"):
            total[k] += res[k]
        categories.update(res["empty_categories"])
        bad += [(env, *f) for f in res["golden_fail"]]
        print(
            f"{env:50s} golden 1.0: {res['golden_1']}/{res['tasks']}  empty 0.0: {res['empty_0']}/{res['writes']}"
            f"  {time.perf_counter() - t:.1f} s",
            flush=True,
        )
    print(
        f"TOTAL golden reward 1.0: {total['golden_1']}/{total['tasks']}; empty episode reward 0.0 on tasks that "
        f"need a write: {total['empty_0']}/{total['writes']} ({dict(categories)}); {time.perf_counter() - t0:.1f} s"
    )
    for b in bad:
        print("golden below 1.0:", b)
    return 0 if total["golden_1"] == total["tasks"] and total["empty_0"] == total["writes"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
