# The report: plots of the run (funnel, rejections, LLM usage, trajectory lengths, evaluation)
# and the dataset card as HTML, for `snakemake --report report.html`.


rule report_plots:
    input:
        index=out("blueprints/index.json"),
        combinations=out("cross/combinations.json"),
        server_reports=per_domain("servers/{domain}/report.json"),
        queries=per_env("queries/{env}.jsonl"),
        train=out("dataset/train.jsonl"),
        card=out("dataset/card.md"),
        stats=out("dataset/stats.json"),
        evaluation=out("evaluation/summary.json"),
        trajectories=out("dataset/trajectories.jsonl"),
    output:
        funnel=report(out("report/funnel.png"), caption="../report/funnel.rst", category="Funnel"),
        rejections=report(out("report/rejections.png"), caption="../report/rejections.rst", category="Funnel"),
        tokens=report(out("report/tokens.png"), caption="../report/tokens.rst", category="LLM usage"),
        trajectory_lengths=report(
            out("report/trajectory_lengths.png"), caption="../report/trajectory_lengths.rst", category="Dataset"
        ),
        evaluation=report(out("report/evaluation.png"), caption="../report/evaluation.rst", category="Evaluation"),
        card_html=report(out("report/card.html"), caption="../report/dataset_card.rst", category="Dataset"),
        summary=out("report/summary.json"),
    log:
        "logs/report_plots/report_plots.log",
    benchmark:
        "logs/benchmarks/report_plots/report_plots.tsv"
    params:
        # not a file input: the job logs, read for LLM_USAGE lines (a changed log alone does not rerun the report)
        logs="logs",
        cfg=config_for(),
        code=code_version("scripts/report_plots.py"),
    script:
        "../scripts/report_plots.py"
