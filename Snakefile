# AgentSkiller on Snakemake: synthesize executable tool-use environments and verified tasks.
# See README.md for usage, config/README.md for every config key, docs/rules.md for the DAG.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/catalog.smk"
include: "rules/domains.smk"
include: "rules/cross.smk"
include: "rules/tasks.smk"
include: "rules/rollout.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    input:
        domain_outputs,
        pair_outputs,
        rules.report_plots.output,


# One screen at the end of a run: the funnel, every env's stage and counts, why units were
# lost, LLM totals (`agentskiller status`). print_run_summary never raises: a summary must not
# turn a finished run into a failed one.
onsuccess:
    from agentskiller.reporting.status import print_run_summary

    print_run_summary(OUT, "logs", "run finished")


onerror:
    from agentskiller.reporting.status import print_run_summary

    print_run_summary(OUT, "logs", "run failed: what it had made")
