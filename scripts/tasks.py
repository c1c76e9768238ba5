"""Rule ``tasks`` (s14, s15, s16): an env's task templates, their instances and the
golden-call filter that makes them tasks."""

from agentskiller.jobs import run_job
from agentskiller.steps.tasks import tasks_job

run_job(snakemake, tasks_job.run, step="s14-s16")  # noqa: F821 (snakemake is injected)
