"""``python -m agentskiller status ...``: see :mod:`agentskiller.cli`."""

from agentskiller.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
