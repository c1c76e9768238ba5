"""Serve an environment as an MCP server on stdio.

    python -m agentskiller.serve outputs/servers/<Domain>          # a server directory
    python -m agentskiller.serve path/to/environment.json           # or a manifest (pairs)

stdout is the MCP wire, so everything else (logs) goes to stderr.

The tool code is generated, so by default it runs sandboxed (the same confinement as
``agentskiller.runtime.sandbox.run_sandboxed``): this process stays a small supervisor
that copies the environment's files (tools modules, database tables, manifest) into a
private directory and starts the real server through the sandbox launcher: new PID, IPC,
mount and network namespaces (only its own processes visible, no network, /tmp, /root,
/run/lock... hidden, everything else read-only), a tmpfs working directory of
``--disk-mb``, a fresh unprivileged uid with rlimits (memory, CPU, processes, file size),
a syscall filter and a minimal environment without secrets. The child inherits
stdin/stdout, so the wire goes straight to it; when it ends (stdin closed, signal) every
process of the run is killed and the directory removed, also when this supervisor is
SIGKILLed (die-with-parent).

Not root: namespaces and a uid change are impossible, so the server runs in this process
with rlimits only (said on stderr). ``--no-sandbox`` does the same on purpose (debugging).
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import signal
import subprocess
import sys

from agentskiller.config import defaults

log = logging.getLogger("agentskiller.serve")

#: RLIMIT_NPROC of the sandboxed server: threads count too (the SDK runs sync tools on a
#: pool of up to 40 worker threads), so this is above the sandbox's usual 64.
DEFAULT_MAX_PROCESSES = 128
#: any file the server (or its tool code) writes in its private directory
MAX_FILE_BYTES = 64 * 2**20
#: size of the sandboxed server's tmpfs working directory (MB): its disk quota
DEFAULT_DISK_MB = int(defaults()["sandbox"]["disk_mb"])  # the schema's default


def _limit_self(memory_mb: int, cpu_s: int) -> None:
    if memory_mb > 0:
        mem = memory_mb * 1024 * 1024
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard == resource.RLIM_INFINITY or hard >= mem:
            resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    if cpu_s > 0:
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 5))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _serve(environment: str, call_timeout_s: float) -> int:
    """Load the environment (imports the tool code) and serve it on stdio, here."""
    from agentskiller.runtime.mcp_server import build_server

    try:
        server = build_server(environment, call_timeout_s=call_timeout_s or None)
    except Exception as exc:  # a clear one-line reason instead of a traceback on the wire
        print(f"agentskiller.serve: cannot load {environment}: {exc}", file=sys.stderr)
        return 2
    server.run()  # stdio
    return 0


def _serve_sandboxed(args: argparse.Namespace) -> int:
    """Supervisor: start the server confined (see the module docstring), wait, clean up."""
    from agentskiller.runtime.environment import load_environment
    from agentskiller.runtime.sandbox import confine
    from agentskiller.runtime.worker import bundle_environment

    try:
        # Only JSON is read here: the tool code is first imported by the confined child.
        files, manifest_rel = bundle_environment(load_environment(args.environment))
    except Exception as exc:
        print(f"agentskiller.serve: cannot load {args.environment}: {exc}", file=sys.stderr)
        return 2
    child = [
        sys.executable,
        "-m",
        "agentskiller.serve",
        manifest_rel,
        "--confined",
        "--log-level",
        args.log_level,
        "--call-timeout-s",
        str(args.call_timeout_s),
    ]
    conf = confine(
        child,
        files=files,
        memory_mb=args.memory_mb,
        cpu_s=args.cpu_s,
        max_processes=args.max_processes,
        max_file_bytes=MAX_FILE_BYTES,
        disk_mb=args.disk_mb,
        isolate_network=True,
        # same process group: a terminal's Ctrl-C and the MCP client's killpg reach it
        new_session=False,
        die_with_parent=True,
    )
    iso = conf.isolation
    if not (iso.get("mounts") and iso.get("network") and iso.get("uid") is not None and iso.get("seccomp")):
        log.warning("partial sandbox for %s: %s", args.environment, iso)
    log.info("serving %s sandboxed: %s", args.environment, iso)

    def stop(signum, frame):  # SIGTERM/SIGHUP: leave through the finally below
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, stop)
    proc = None
    try:
        # stdin/stdout/stderr are inherited: the MCP wire goes straight to the child.
        proc = subprocess.Popen(conf.argv, env=conf.env, preexec_fn=conf.preexec, close_fds=True)
        return proc.wait()
    except KeyboardInterrupt:
        return 130
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        conf.close()  # every process of the server's uid, then its directory


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m agentskiller.serve", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("environment", help="server directory (with report.json) or environment manifest")
    parser.add_argument("--memory-mb", type=int, default=2048, help="address-space limit (0: none)")
    parser.add_argument("--cpu-s", type=int, default=3600, help="CPU-time limit of the server in seconds (0: none)")
    parser.add_argument(
        "--max-processes", type=int, default=DEFAULT_MAX_PROCESSES, help="process/thread limit of the sandboxed server"
    )
    parser.add_argument(
        "--disk-mb",
        type=int,
        default=DEFAULT_DISK_MB,
        help="disk quota of the sandboxed server: its working directory is a tmpfs of this size",
    )
    parser.add_argument(
        "--call-timeout-s",
        type=float,
        default=60.0,
        help="wall-clock limit of one tool call; past it the call fails and the server "
        "exits, since its state can no longer be trusted (0: none)",
    )
    parser.add_argument(
        "--no-sandbox", action="store_true", help="debugging: run the tool code in this process with rlimits only"
    )
    parser.add_argument("--confined", action="store_true", help=argparse.SUPPRESS)  # the sandboxed child
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)

    logging.basicConfig(
        stream=sys.stderr, level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.confined:  # limits, namespaces and uid were set up by the supervisor
        return _serve(args.environment, args.call_timeout_s)
    if not args.no_sandbox and os.geteuid() == 0:
        return _serve_sandboxed(args)
    if args.no_sandbox:
        log.warning("--no-sandbox: the generated tool code runs unconfined (rlimits only)")
    else:
        log.warning(
            "not running as root: no namespaces or uid change are possible; "
            "the generated tool code runs with rlimits only"
        )
    _limit_self(args.memory_mb, args.cpu_s)
    return _serve(args.environment, args.call_timeout_s)


if __name__ == "__main__":
    sys.exit(main())
