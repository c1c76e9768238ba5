"""``python -m agentskiller.usage [logs/] [--by step|task|model]``: LLM calls, tokens, cache
hits, repair rounds and cost per step, summed from the ``LLM_USAGE`` lines of the job logs."""

from agentskiller.llm.usage import main

if __name__ == "__main__":
    raise SystemExit(main())
