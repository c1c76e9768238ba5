# Input functions of rules/report.smk (kept in their own file, as snakemake --lint asks).


def report_optional(path):
    """Input function: ``path`` under outputs_dir when it exists, else nothing (files that no
    step writes yet: the evaluation summary, rollout trajectories)."""

    def _f(wildcards):
        return [out(path)] if os.path.exists(out(path)) else []

    return _f
