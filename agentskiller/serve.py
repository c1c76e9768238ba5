"""Serve an environment as an MCP server on stdio.

    python -m agentskiller.serve outputs/servers/<Domain>          # a server directory
    python -m agentskiller.serve path/to/environment.json           # or a manifest (pairs)

stdout is the MCP wire, so everything else (logs) goes to stderr. The process limits its
own address space, core dumps and CPU time before it imports the generated tool code.
"""

from __future__ import annotations

import argparse
import logging
import resource
import sys


def _limit_self(memory_mb: int, cpu_s: int) -> None:
    if memory_mb > 0:
        mem = memory_mb * 1024 * 1024
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard == resource.RLIM_INFINITY or hard >= mem:
            resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    if cpu_s > 0:
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 5))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agentskiller.serve", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("environment", help="server directory (with report.json) or environment manifest")
    parser.add_argument("--memory-mb", type=int, default=2048, help="address-space limit (0: none)")
    parser.add_argument("--cpu-s", type=int, default=3600, help="CPU-time limit in seconds (0: none)")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)

    logging.basicConfig(stream=sys.stderr, level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    _limit_self(args.memory_mb, args.cpu_s)

    from agentskiller.runtime.mcp_server import build_server  # after the limits: imports tool code

    try:
        server = build_server(args.environment)
    except Exception as exc:  # a clear one-line reason instead of a traceback on the wire
        print(f"agentskiller.serve: cannot load {args.environment}: {exc}", file=sys.stderr)
        return 2
    server.run()  # stdio
    return 0


if __name__ == "__main__":
    sys.exit(main())
