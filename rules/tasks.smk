# s14-s17 on the {env} wildcard (s14-s16 in one job), then the dataset.


# s14, s15 and s16 in one job (agentskiller/steps/tasks/tasks_job.py): each is a fraction of a
# second of work, and only the next of the three reads what the one before writes, so a change
# to any of them reruns s16 anyway. Each still writes its own artifact and meta.
rule tasks:
    input:
        blueprint=env_file("blueprints/{domain}.json"),
        tool_graph=env_file("tool_graphs/{domain}.json"),
        policy=env_file("policies/{domain}.md"),
        server_report=env_file("servers/{domain}/report.json"),
        db=env_file("database/{domain}"),
        entity_tables=domain_entity_tables,
        policy_report=member_files("policies/{domain}.json"),
        tools=env_file("servers/{domain}/tools.py"),
    output:
        templates=out("task_templates/{env}.json"),
        instances=out("instances/{env}.json"),
        tasks=out("tasks/{env}.json"),
    log:
        "logs/tasks/{env}.log",
    benchmark:
        "logs/benchmarks/tasks/{env}.tsv"
    localrule: LLM_ON_SUBMIT_HOST
    # an LLM rule (s14's judge): with a real endpoint it mostly waits on HTTP (s16's sandboxed
    # golden calls are well under a second of CPU)
    threads: LLM_THREADS
    resources:
        llm=1,
    params:
        cfg=config_for(
            "tasks.judge_threshold",
            "tasks.max_templates",
            "tasks.samples_per_template",
            "tasks.kinds",
            "tasks.self_correction_share",
            "sandbox",
            llm=True,
        ),
        code=code_version("scripts/tasks.py"),
    script:
        "../scripts/tasks.py"


rule queries:
    input:
        tasks=out("tasks/{env}.json"),
        blueprint=env_file("blueprints/{domain}.json"),
        policy=env_file("policies/{domain}.md"),
        tool_list=env_file("tool_lists/{domain}.json"),
    output:
        queries=out("queries/{env}.jsonl"),
    log:
        "logs/queries/{env}.log",
    benchmark:
        "logs/benchmarks/queries/{env}.tsv"
    localrule: LLM_ON_SUBMIT_HOST
    threads: LLM_THREADS
    resources:
        llm=1,
    params:
        cfg=config_for("tasks.query_repair_rounds", llm=True),
        code=code_version("scripts/queries.py"),
    script:
        "../scripts/queries.py"


rule dataset:
    input:
        queries=per_env("queries/{env}.jsonl"),
        tasks=per_env("tasks/{env}.json"),
        policies=per_env_file("policies/{domain}.md"),
        tool_lists=per_env_file("tool_lists/{domain}.json"),
        servers=per_env_file("servers/{domain}/report.json"),
        index=out("blueprints/index.json"),
    output:
        train=out("dataset/train.jsonl"),
        stats=out("dataset/tasks_stats.json"),
    log:
        "logs/dataset/dataset.log",
    benchmark:
        "logs/benchmarks/dataset/dataset.tsv"
    params:
        cfg=config_for("dataset"),
        code=code_version("scripts/dataset.py"),
        simulator=SIMULATOR_VERSION,
    script:
        "../scripts/dataset.py"
