# s14-s17 on the {env} wildcard, then the dataset.


rule task_templates:
    input:
        blueprint=env_file("blueprints/{domain}.json"),
        tool_graph=env_file("tool_graphs/{domain}.json"),
        policy=env_file("policies/{domain}.md"),
        server_report=env_file("servers/{domain}/report.json"),
    output:
        templates=out("task_templates/{env}.json"),
    log:
        "logs/task_templates/{env}.log",
    benchmark:
        "logs/benchmarks/task_templates/{env}.tsv"
    localrule: LLM_ON_SUBMIT_HOST
    resources:
        llm=1,
    params:
        cfg=config_for("tasks.judge_threshold", "tasks.max_templates", llm=True),
        code=code_version("scripts/task_templates.py"),
    script:
        "../scripts/task_templates.py"


rule instances:
    input:
        templates=out("task_templates/{env}.json"),
        blueprint=env_file("blueprints/{domain}.json"),
        db=env_file("database/{domain}"),
        entity_tables=domain_entity_tables,
        server_report=env_file("servers/{domain}/report.json"),
        policy_report=member_files("policies/{domain}.json"),
    output:
        instances=out("instances/{env}.json"),
    log:
        "logs/instances/{env}.log",
    params:
        cfg=config_for("tasks.samples_per_template", "tasks.kinds", "tasks.self_correction_share"),
        code=code_version("scripts/instances.py"),
    script:
        "../scripts/instances.py"


rule tasks:
    input:
        instances=out("instances/{env}.json"),
        blueprint=env_file("blueprints/{domain}.json"),
        server_report=env_file("servers/{domain}/report.json"),
        tools=env_file("servers/{domain}/tools.py"),
        db=env_file("database/{domain}"),
        entity_tables=domain_entity_tables,
    output:
        tasks=out("tasks/{env}.json"),
    log:
        "logs/tasks/{env}.log",
    benchmark:
        "logs/benchmarks/tasks/{env}.tsv"
    params:
        cfg=config_for("sandbox"),
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
    params:
        cfg=config_for("dataset"),
        code=code_version("scripts/dataset.py"),
        simulator=SIMULATOR_VERSION,
    script:
        "../scripts/dataset.py"
