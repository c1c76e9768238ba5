"""What injected LLM faults cost: s01-s05 against the fault-injecting fake OpenAI server.

    python benchmarks/llm_faults.py [--rates 0 0.1 0.3 0.5] [--seed 32]

For each fault rate, runs s01-s05 of the default config (``llm.provider: openai``, the
fake server answering like the offline provider) in a fresh directory and prints the wall
time, the chat requests sent, the faults drawn by kind, the repair rounds the client spent,
and whether the artifacts are byte-identical to the fault-free run. Settings are those of
tests/test_workflow_openai.py (1 s client timeout, 2 s "slow" fault, 10-50 ms backoff,
6 repair rounds). Figures are for one run on this machine.
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from fake_openai import ALL_FAULTS, Faults  # noqa: E402
from test_workflow_openai import SLOW_S, _run_openai  # noqa: E402
from workflow_helpers import artifact_files, usage_rows  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rates", type=float, nargs="+", default=[0.0, 0.1, 0.3, 0.5])
    ap.add_argument("--seed", type=int, default=32, help="fault RNG seed")
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="agentskiller-faults-"))
    reference = None
    print(f"{'rate':>5} {'ok':>3} {'seconds':>8} {'requests':>8} {'repairs':>7} {'same':>5}  faults")
    for rate in args.rates:
        work = base / f"rate_{rate:g}"
        t0 = time.perf_counter()
        run = _run_openai(work, Faults(rate=rate, kinds=ALL_FAULTS, seed=args.seed, slow_s=SLOW_S))
        dt = time.perf_counter() - t0
        chats = run.chat_requests()
        kinds = collections.Counter(r.fault for r in chats if r.fault)
        repairs = sum(1 for r in usage_rows(work) if r["round"] > 0 and not r["cache_hit"])
        same = "-"
        if run.ok:
            files = artifact_files(work)
            if reference is None:
                reference = files
            same = "yes" if files == reference else "NO"
        print(
            f"{rate:>5g} {'yes' if run.ok else 'NO':>3} {dt:>8.1f} {len(chats):>8} {repairs:>7} {same:>5}  "
            f"{dict(sorted(kinds.items()))}"
        )
        if not run.ok:
            print("   last lines:", run.output.strip().splitlines()[-3:])
    print(f"(runs kept under {base})")


if __name__ == "__main__":
    main()
