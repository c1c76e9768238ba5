# Rollouts of the dataset rows on the {env} wildcard, their evaluation, the trajectory
# dataset and the dataset card (which reports the pass rates).


rule rollout:
    input:
        queries=out("queries/{env}.jsonl"),
        tasks=out("tasks/{env}.json"),
        policy=env_file("policies/{domain}.md"),
        tool_list=env_file("tool_lists/{domain}.json"),
        server_report=env_file("servers/{domain}/report.json"),
    output:
        rollouts=out("rollouts/{env}.jsonl"),
    log:
        "logs/rollout/{env}.log",
    benchmark:
        "logs/benchmarks/rollout/{env}.tsv"
    localrule: LLM_ON_SUBMIT_HOST
    threads: LLM_THREADS
    resources:
        llm=1,
    params:
        cfg=config_for("rollout", "sandbox", llm=True),
        code=code_version("scripts/rollout.py"),
    script:
        "../scripts/rollout.py"


rule evaluate:
    input:
        train=out("dataset/train.jsonl"),
        rollouts=per_env("rollouts/{env}.jsonl"),
    output:
        results=out("evaluation/results.jsonl"),
        summary=report(
            out("evaluation/summary.json"), caption="../report/evaluation_summary.rst", category="Evaluation"
        ),
    log:
        "logs/evaluate/evaluate.log",
    benchmark:
        "logs/benchmarks/evaluate/evaluate.tsv"
    params:
        cfg=config_for("sandbox"),
        code=code_version("scripts/evaluate.py"),
    script:
        "../scripts/evaluate.py"


rule trajectories:
    input:
        train=out("dataset/train.jsonl"),
        rollouts=per_env("rollouts/{env}.jsonl"),
        results=out("evaluation/results.jsonl"),
    output:
        trajectories=out("dataset/trajectories.jsonl"),
    log:
        "logs/trajectories/trajectories.log",
    benchmark:
        "logs/benchmarks/trajectories/trajectories.tsv"
    params:
        cfg=config_for(),
        code=code_version("scripts/trajectories.py"),
    script:
        "../scripts/trajectories.py"


rule dataset_card:
    input:
        tasks_stats=out("dataset/tasks_stats.json"),
        rollouts=per_env("rollouts/{env}.jsonl"),
        results=out("evaluation/results.jsonl"),
    output:
        card=report(out("dataset/card.md"), caption="../report/dataset_card.rst", category="Dataset"),
        stats=report(out("dataset/stats.json"), caption="../report/dataset_stats.rst", category="Dataset"),
    log:
        "logs/dataset_card/dataset_card.log",
    benchmark:
        "logs/benchmarks/dataset_card/dataset_card.tsv"
    params:
        cfg=config_for(),
        code=code_version("scripts/dataset_card.py"),
    script:
        "../scripts/dataset_card.py"
