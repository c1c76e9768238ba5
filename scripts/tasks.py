from agentskiller.jobs import run_job
from agentskiller.steps.tasks import s16_tasks

run_job(snakemake, s16_tasks.run, step="s16")  # noqa: F821 (snakemake is injected)
