"""Offline rollout speed: episodes per second, fast path vs MCP stdio, in one run.

    python benchmarks/rollout.py --outputs outputs/ [--mcp-rows 24] [--workers 1] [--json]

Both sides are the offline simulators (no model, no key), so the figures are the cost of the
loop and of the tool transport: ``fast`` plays every dataset row over one persistent
sandboxed session worker per env; ``mcp`` plays ``--mcp-rows`` rows (spread over the envs)
over the env's real MCP server (``python -m agentskiller.serve``), one sandboxed server
process per episode, and the same rows over ``fast`` again for a like-for-like ratio. The
share of episodes that solve their task (``rollout.check.solved``) is printed for both; the
two transports must agree episode by episode.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rollout import RolloutSettings, load_rows, read_episodes, run_rollouts, solved  # noqa: E402
from rollout.check import replay_final_hashes  # noqa: E402


def _spread(rows: list[dict], n: int) -> list[dict]:
    by_env: dict[str, list[dict]] = {}
    for r in rows:
        by_env.setdefault(r["env"], []).append(r)
    out: list[dict] = []
    i = 0
    while len(out) < min(n, len(rows)):
        for env in sorted(by_env):
            if i < len(by_env[env]) and len(out) < n:
                out.append(by_env[env][i])
        i += 1
    return out


def _play(rows: list[dict], outputs: Path, transport: str, workers: int, tmp: Path) -> dict:
    out = tmp / f"{transport}-{len(rows)}.jsonl"
    t0 = time.perf_counter()
    summary = run_rollouts(rows, outputs, out, RolloutSettings(transport=transport, workers=workers))
    seconds = time.perf_counter() - t0
    by_id = {r["id"]: r for r in rows}
    eps = read_episodes(out)
    ok = sum(solved(by_id[e.query_id], e)[0] for e in eps)
    return {
        "transport": transport,
        "episodes": len(eps),
        "seconds": round(seconds, 2),
        "episodes_per_s": round(len(eps) / seconds, 2) if seconds else None,
        "tool_calls": summary["tool_calls"],
        "solved": ok,
        "stop_reasons": summary["stop_reasons"],
        "_episodes": eps,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--outputs", type=Path, default=Path("outputs"))
    ap.add_argument("--mcp-rows", type=int, default=24, help="rows played over MCP (one server start each)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    rows = load_rows(a.outputs)
    sample = _spread(rows, a.mcp_rows)
    with tempfile.TemporaryDirectory(prefix="rollout-bench-") as tmp:
        fast_all = _play(rows, a.outputs, "fast", a.workers, Path(tmp))
        fast_s = _play(sample, a.outputs, "fast", a.workers, Path(tmp))
        mcp_s = _play(sample, a.outputs, "mcp", a.workers, Path(tmp))
    agree = Counter(
        x.messages == y.messages and x.final_state_hash == y.final_state_hash
        for x, y in zip(fast_s.pop("_episodes"), mcp_s.pop("_episodes"), strict=True)
    )
    all_eps = fast_all.pop("_episodes")
    replayed = replay_final_hashes(all_eps, a.outputs)
    replay_ok = sum(replayed.get(e.episode_id) == e.final_state_hash for e in all_eps)
    figures = {
        "replay_agrees_with_live_hash": f"{replay_ok}/{len(all_eps)}",
        "fast_all_rows": fast_all,
        "fast_sample": fast_s,
        "mcp_sample": mcp_s,
        "mcp_agrees_with_fast": f"{agree[True]}/{sum(agree.values())}",
        "fast_over_mcp_speedup": round(fast_s["episodes_per_s"] / mcp_s["episodes_per_s"], 1)
        if mcp_s["episodes_per_s"]
        else None,
    }
    if a.json:
        print(json.dumps(figures, indent=2))
        return
    for name in ("fast_all_rows", "fast_sample", "mcp_sample"):
        f = figures[name]
        print(
            f"{name:14} {f['episodes']:4d} episodes  {f['seconds']:7.2f} s  {f['episodes_per_s']:7.2f} ep/s  "
            f"{f['tool_calls']:5d} tool calls  solved {f['solved']}/{f['episodes']}  {f['stop_reasons']}"
        )
    print(f"final hashes equal to a sandboxed replay of the calls: {figures['replay_agrees_with_live_hash']}")
    print(f"mcp episodes equal to fast: {figures['mcp_agrees_with_fast']}")
    print(f"fast / mcp speed-up on the same rows: {figures['fast_over_mcp_speedup']}x")


if __name__ == "__main__":
    main()
