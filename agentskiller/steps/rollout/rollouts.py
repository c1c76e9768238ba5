"""The rollout rule: every dataset row of one env played by a simulated user and an assistant.

``rollouts/{env}.jsonl`` holds one :class:`~agentskiller.models.episodes.Episode` per line
(``rollout.episodes_per_task`` per row), written by :func:`rollout.loop.run_rollouts`: resumable
by (query, episode) from ``rollouts/{env}.jsonl.partial``, published atomically, then checked
against the schema here. With the offline provider both sides are the offline simulators;
with a real provider (``rollout.user`` / ``rollout.assistant`` on ``auto``) they are the
configured models, called through the job's LLM client (cache, retries, usage log).
"""

from __future__ import annotations

from pathlib import Path

from agentskiller import artifacts, io
from agentskiller.jobs import StepContext

SCHEMA = "rollout_episode"


def run(ctx: StepContext) -> None:
    from rollout.loop import run_rollouts
    from rollout.settings import RolloutSettings

    env = ctx.wildcards["env"]
    from agentskiller.steps.tasks.dataset import env_rows

    # this env's rows, built from its own artifacts: a change elsewhere does not replay it
    rows = env_rows(
        ctx.inputs["queries"],
        ctx.inputs["tasks"],
        ctx.inputs["policy"],
        ctx.inputs["tool_list"],
        ctx.inputs.get("server_report"),
    )
    settings = RolloutSettings.from_config(ctx.config["rollout"], seed=ctx.seed)
    wants_llm = ctx.cfg.llm.provider != "offline" and "llm" in {
        settings.user if settings.user != "auto" else "llm",
        settings.assistant if settings.assistant != "auto" else "llm",
    }
    out = Path(ctx.outputs["rollouts"])
    summary = run_rollouts(rows, ctx.outputs_dir, out, settings, llm=ctx.llm if wants_llm else None)
    for line in artifacts.read_lines(out):  # every published line is a valid episode, or the job fails
        io.validate(line, SCHEMA)
    ctx.log.info("rollout %s: %s", env, summary)
