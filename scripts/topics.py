from agentskiller.jobs import run_job
from agentskiller.steps.catalog import s01_topics

run_job(snakemake, s01_topics.run, step="s01")  # noqa: F821 (snakemake is injected)
