"""``python -m rollout``: play the dataset rows of one env (or all) and write episodes.

    python -m rollout --outputs-dir outputs --env DentalCareDesk --out rollouts/DentalCareDesk.jsonl \\
        [--episodes N] [--max-turns N] [--transport fast|mcp] [--mistake-rate R] [--seed S]

Without ``--config`` both sides are the offline simulators (no key, deterministic). With
``--config config/config.yaml`` the ``llm`` block of that config builds the client, and
``--user`` / ``--assistant`` say which sides it plays (default: both).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from .loop import load_rows, run_rollouts
from .settings import RolloutSettings


def _llm_from_config(path: str):
    from agentskiller.config import resolve
    from agentskiller.llm import LLMClient
    from agentskiller.yamlload import safe_load

    cfg = resolve(safe_load(Path(path).read_text(encoding="utf-8")) or {})
    client = LLMClient.from_config(cfg["llm"], seed=int(cfg.get("seed", 0)))
    if not hasattr(client, "chat"):
        raise SystemExit("this LLMClient has no chat(): the model-backed rollout needs it")
    return client, cfg.get("rollout") or {}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m rollout", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--outputs-dir", default="outputs", help="a finished run's outputs (dataset/train.jsonl, servers/, cross/)"
    )
    ap.add_argument("--env", action="append", help="env to play (repeatable; default: every env in the dataset)")
    ap.add_argument("--out", help="episodes JSONL (default rollouts/<env>.jsonl, or rollouts/all.jsonl)")
    ap.add_argument("--episodes", type=int, help="episodes per task (default 1)")
    ap.add_argument("--max-turns", type=int, help="user turns per episode at most (default 30)")
    ap.add_argument(
        "--transport", choices=["fast", "mcp"], help="fast: sandboxed session worker; mcp: the MCP server over stdio"
    )
    ap.add_argument("--mistake-rate", type=float, help="per-episode probability of one injected assistant mistake")
    ap.add_argument("--seed", type=int)
    ap.add_argument("--workers", type=int, help="episodes played at once")
    ap.add_argument("--limit", type=int, help="only the first N rows (smoke runs)")
    ap.add_argument("--config", help="config YAML whose llm block builds a model client")
    ap.add_argument("--user", choices=["offline", "llm"], help="who plays the user (with --config: llm)")
    ap.add_argument("--assistant", choices=["offline", "llm"], help="who plays the assistant (with --config: llm)")
    ap.add_argument("--log-level", default="WARNING")
    args = ap.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")

    llm, cfg = (None, {})
    if args.config:
        llm, cfg = _llm_from_config(args.config)
    settings = RolloutSettings.from_config(
        cfg,
        episodes_per_task=args.episodes,
        max_turns=args.max_turns,
        transport=args.transport,
        mistake_rate=args.mistake_rate,
        seed=args.seed,
        workers=args.workers,
        user=args.user,
        assistant=args.assistant,
    )
    rows = load_rows(args.outputs_dir)
    if args.env:
        known = {r["env"] for r in rows}
        unknown = [e for e in args.env if e not in known]
        if unknown:
            print(f"no dataset rows for env {', '.join(unknown)} (known: {', '.join(sorted(known))})", file=sys.stderr)
            return 2
        rows = [r for r in rows if r["env"] in set(args.env)]
    if args.limit:
        rows = rows[: args.limit]
    out = args.out or f"rollouts/{args.env[0] if args.env and len(args.env) == 1 else 'all'}.jsonl"
    summary = run_rollouts(rows, args.outputs_dir, out, settings, llm=llm)
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
