from agentskiller.jobs import run_job
from agentskiller.steps.tasks import s14_templates

run_job(snakemake, s14_templates.run, step="s14")  # noqa: F821 (snakemake is injected)
