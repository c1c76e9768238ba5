"""The evaluate rule: every env's rollouts judged by ``evaluator/`` against the dataset rows.

``evaluation/results.jsonl`` holds one :class:`~agentskiller.models.episodes.Verdict` per
episode (ordered by env, query and episode); ``evaluation/summary.json`` the figures
(:func:`evaluator.summary.build_summary`), also printed to the job log as a table. Replays run
in the sandboxed worker with the ``sandbox`` limits: the servers' code is untrusted.
"""

from __future__ import annotations

from agentskiller import artifacts
from agentskiller.artifacts import as_paths
from agentskiller.jobs import StepContext

RESULT_SCHEMA = "verdict"
SUMMARY_SCHEMA = "evaluation_summary"


def run(ctx: StepContext) -> None:
    from agentskiller.runtime.sandbox import SandboxSettings
    from evaluator.core import evaluate_episodes
    from evaluator.summary import build_summary, format_table

    rows = artifacts.read_lines(ctx.inputs["train"])
    episodes = [e for p in sorted(as_paths(ctx.inputs["rollouts"])) for e in artifacts.read_lines(p)]
    verdicts = evaluate_episodes(
        episodes,
        rows,
        ctx.outputs_dir,
        sandbox=SandboxSettings.from_config(ctx.config["sandbox"]),
    )
    verdicts.sort(key=lambda v: (v.env, v.query_id, v.episode))
    summary = build_summary(verdicts)
    ctx.write_jsonl("results", [v.model_dump(mode="json") for v in verdicts], RESULT_SCHEMA)
    ctx.write_json("summary", summary, SUMMARY_SCHEMA)
    ctx.log.info("evaluation: %d episodes, %d passed\n%s", len(verdicts), summary["passed"], format_table(summary))
