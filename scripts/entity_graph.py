from agentskiller.jobs import run_job
from agentskiller.steps.catalog import s03_entity_graph

run_job(snakemake, s03_entity_graph.run, step="s03")  # noqa: F821 (snakemake is injected)
