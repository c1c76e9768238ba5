"""Run untrusted generated code (data scripts, tool code, tests) in a limited subprocess.

Size: over 400 lines because the settings, the non-root fallback, output reading and the result type are one contract that the steps and the MCP server share.

What a run gets (DESIGN.md §6 "Sandbox"):

* its own directory (``HOME`` and ``TMPDIR`` point there); inputs are copied in
  (``files=``), outputs are read back (``collect=``), then the directory is removed;
* a minimal environment: PATH, LANG, HOME, TMPDIR, PYTHONPATH (the repo),
  PYTHONHASHSEED=0. Never API keys: ``env_extra`` refuses secret-looking names;
* rlimits: address space (memory), CPU seconds, processes, file size (caps stdout/stderr
  and any file it writes), no core dumps;
* a wall-clock timeout; a new session, and at the end every process that belongs to the
  run is killed (no strays, even after a fork bomb or a ``setsid`` escape).

As root (CI, this machine) the run is started through a small launcher
(:mod:`agentskiller.runtime.sandbox_init`, whose docstring has the details) and also gets:

* new PID, IPC, mount and network namespaces. The program is PID 2 under an init that
  reaps orphans and, when the program ends, kills whatever is left (daemons too); a fresh
  ``/proc`` lists only the run's own processes. SysV shared memory, message queues and
  POSIX queues live in the run's IPC namespace and vanish with it;
* in the mount namespace, scratch directories (``/tmp``, ``/var/tmp``, ``/dev/shm``,
  ``/run/lock`` = ``/var/lock``, ``/dev/mqueue``) and directories others cannot enter
  (``/root``) are covered by empty root-owned tmpfs, the Python installation, the repo and
  ``readable_paths`` are bound back, and every other mount is read-only. So secrets under
  ``/root`` are invisible and no write outside the run's directory persists (EACCES under a
  mask, EROFS elsewhere);
* the run's directory is a tmpfs of ``disk_mb`` (the disk quota; ENOSPC past it), inputs
  copied in; it disappears with the mount namespace, so nothing is left on disk even when
  the job is SIGKILLed. Outputs are copied out by the init: regular files only, opened
  ``O_NOFOLLOW | O_NONBLOCK`` (a FIFO, device or symlink is refused, reason
  ``bad_output``);
* die-with-parent: the launcher has ``PR_SET_PDEATHSIG``; when the job dies it kills the
  namespace and removes the run's directory;
* a fresh unprivileged uid/gid (unique per run) with ``no_new_privs``, so RLIMIT_NPROC
  applies to this run alone and the clean-up can kill "everything owned by that uid";
* a seccomp deny-list filter (libseccomp via ``pyseccomp``); when the binding or the library
  is missing, a warning is logged and written to the run's stderr, and the run goes on.

Root without working namespaces: the uid drop and rlimits only (the same pre-exec set-up
as before the launcher existed).

The same confinement wraps long-running processes: :func:`confine` prepares it (private
directory with copied inputs, environment, the set-up run between fork and exec) without
starting anything, and :class:`Confinement` cleans up. ``python -m agentskiller.serve``
uses it for the MCP server (stdio inherited, same process group, killed with its parent).

Not root: best effort. rlimits apply (RLIMIT_NPROC counts all of the user's processes,
so the cap is raised by what already runs); the network is isolated with
``unshare --user --net`` when that works, otherwise the result says
``isolation["network"] = False``; writes outside the directory are not prevented.
"""

from __future__ import annotations

import json
import logging
import os
import re
import resource
import secrets
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from agentskiller.config import defaults

from .sandbox_init import (
    CLONE_NEWNET,
    CLONE_NEWNS,
    MS_PRIVATE,
    MS_REC,
    PR_SET_NO_NEW_PRIVS,
    PR_SET_PDEATHSIG,
    REPORT_NAME,
    read_output,
    seccomp_module,
)
from .sandbox_init import libc as _libc
from .sandbox_init import mount as _mount
from .sandbox_init import unshare as _unshare

__all__ = ["SandboxSettings", "SandboxResult", "run_sandboxed", "REASONS", "SandboxError", "Confinement", "confine"]

REPO_ROOT = Path(__file__).resolve().parents[2]

#: ``SandboxResult.reason`` values.
REASONS = (
    "ok",
    "timeout",
    "memory",
    "cpu",
    "fork_limit",
    "output_limit",
    "bad_output",
    "crash",
    "exit",
    "sandbox_error",
)
LAUNCHER = Path(__file__).resolve().with_name("sandbox_init.py")
#: size of the run's tmpfs working directory (MB) unless told otherwise
#: the schema's defaults of the ``sandbox:`` block: the only place they are written down
_D = defaults()["sandbox"]
DEFAULT_DISK_MB = int(_D["disk_mb"])
#: scratch directories every user may write to: covered by a private, root-owned tmpfs
SCRATCH_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run/shm", "/run/lock", "/var/lock", "/dev/mqueue", "/var/crash")
log = logging.getLogger(__name__)

_SECRET_RE = re.compile(r"(API_?KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|^OPENAI_|^AWS_|^HF_)", re.I)
_MEMORY_MARKERS = ("MemoryError", "Cannot allocate memory", "std::bad_alloc", "out of memory")
_FORK_MARKERS = (
    "Resource temporarily unavailable",
    "BlockingIOError",
    "can't start new thread",
    "fork: retry",
    "Cannot fork",
)
_OUTPUT_MARKERS = ("File too large",)

_UID_RANGE = (1_900_000_000, 1_999_000_000)
_NOBODY = 65534


class SandboxError(RuntimeError):
    """The sandbox itself could not be set up (not a failure of the code it runs)."""


@dataclass(frozen=True)
class SandboxSettings:
    timeout_s: float = float(_D["timeout_s"])
    memory_mb: int = int(_D["memory_mb"])
    cpu_s: int = int(_D["cpu_s"])
    max_processes: int = int(_D["max_processes"])
    max_output_bytes: int = int(float(_D["max_output_mb"]) * 2**20)
    isolate_network: bool = bool(_D["isolate_network"])
    #: the run's working directory is a tmpfs of this size (MB): its disk quota (as root)
    disk_mb: int = DEFAULT_DISK_MB

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None) -> SandboxSettings:
        """From ``config["sandbox"]`` (``max_output_mb`` there, bytes here)."""
        cfg = dict(cfg or {})
        d = cls()
        return cls(
            timeout_s=float(cfg.get("timeout_s", d.timeout_s)),
            memory_mb=int(cfg.get("memory_mb", d.memory_mb)),
            cpu_s=int(cfg.get("cpu_s", d.cpu_s)),
            max_processes=int(cfg.get("max_processes", d.max_processes)),
            max_output_bytes=int(float(cfg.get("max_output_mb", d.max_output_bytes / 2**20)) * 2**20),
            isolate_network=bool(cfg.get("isolate_network", d.isolate_network)),
            disk_mb=int(cfg.get("disk_mb", d.disk_mb)),
        )

    def kwargs(self) -> dict[str, Any]:
        return {
            "timeout_s": self.timeout_s,
            "memory_mb": self.memory_mb,
            "cpu_s": self.cpu_s,
            "max_processes": self.max_processes,
            "max_output_bytes": self.max_output_bytes,
            "isolate_network": self.isolate_network,
            "disk_mb": self.disk_mb,
        }


@dataclass
class SandboxResult:
    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool
    reason: str
    duration_s: float
    signal: int | None = None
    output_truncated: bool = False
    cpu_s: float = 0.0
    #: what isolation was in force: {"network", "uid", "mounts", "pid", "ipc", "seccomp", "disk_mb"}
    isolation: dict[str, Any] = field(default_factory=dict)
    #: collected output files (relative path -> bytes)
    files: dict[str, bytes] = field(default_factory=dict)
    #: outputs that were not read back (relative path -> why: "a FIFO", "a symbolic link", ...)
    refused: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.reason == "ok"

    def describe(self) -> str:
        """One line for logs and for feedback to the code model."""
        detail = {
            "ok": "finished",
            "timeout": "stopped: wall-clock timeout",
            "memory": "stopped: memory limit exceeded",
            "cpu": "stopped: CPU time limit exceeded",
            "fork_limit": "stopped: process limit reached (too many processes/threads)",
            "output_limit": "stopped: output size limit exceeded",
            "bad_output": "stopped: output refused, only regular files are read back ("
            + "; ".join(f"{name} is {why}" for name, why in sorted(self.refused.items()))
            + ")",
            "crash": f"crashed with signal {self.signal}",
            "exit": f"exited with status {self.returncode}",
            "sandbox_error": "the sandbox could not start the program",
        }.get(self.reason, self.reason)
        tail = self.stderr.strip().splitlines()[-1:] if self.reason != "ok" else []
        return detail + (f" ({tail[0][:300]})" if tail else "")


# --------------------------------------------------------------------------- helpers
@lru_cache(maxsize=1)
def seccomp_available() -> bool:
    """Can the launcher install a syscall filter? Probed (and warned about) once."""
    if seccomp_module() is None:
        log.warning(
            "sandbox: no syscall filter: neither libseccomp's 'seccomp' module nor 'pyseccomp' "
            "(with libseccomp.so.2) is importable; runs are confined by namespaces and rlimits only"
        )
        return False
    return True


@lru_cache(maxsize=1)
def _binding_paths() -> list[str]:
    """The ``sys.path`` entries that hold the syscall filter's binding: the launcher runs with
    ``-S`` (no site-packages, no .pth files: the editable install's finder alone cost ~17 ms
    of every run's start), so it is told where the one package it imports lives."""
    import importlib.util

    paths: list[str] = []
    for name in ("seccomp", "pyseccomp"):
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        if spec is None or not spec.origin:
            continue
        origin = Path(spec.origin)
        entry = origin.parent.parent if origin.name == "__init__.py" else origin.parent
        if str(entry) not in paths:
            paths.append(str(entry))
    return paths


def _uid_mapped(uid: int) -> bool:
    try:
        lines = Path("/proc/self/uid_map").read_text().split("\n")
    except OSError:
        return False
    for line in lines:
        parts = line.split()
        if len(parts) == 3 and int(parts[0]) <= uid < int(parts[0]) + int(parts[2]):
            return True
    return False


def _pids_of_uid(uid: int) -> list[int]:
    """Live processes whose real uid is ``uid`` (a /proc scan; no psutil). Zombies are
    left out: they are dead, hold no resources and are reaped by their new parent."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as fh:
                zombie = False
                for line in fh:
                    if line.startswith("State:"):
                        zombie = line.split()[1] in ("Z", "X")
                    elif line.startswith("Uid:"):
                        if int(line.split()[1]) == uid and not zombie:
                            pids.append(int(entry))
                        break
        except (OSError, ValueError, IndexError):
            continue
    return pids


def _pick_uid() -> tuple[int, int]:
    """A fresh uid/gid for one run, so its process limit and clean-up are its own."""
    lo, hi = _UID_RANGE
    if _uid_mapped(lo) and _uid_mapped(hi):
        for _ in range(20):
            uid = lo + secrets.randbelow(hi - lo)
            if not _pids_of_uid(uid):
                return uid, uid
    return _NOBODY, _NOBODY


def _kill_uid(uid: int, rounds: int = 50) -> None:
    """Kill every process of ``uid``. A helper child takes the uid and sends SIGKILL to -1
    (= everything it may signal = that uid), which beats a fork bomb's respawning;
    repeated until the /proc scan comes back empty."""
    for _ in range(rounds):
        pids = _pids_of_uid(uid)
        if not pids:
            return
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            try:
                os.setgroups([])
                os.setresgid(uid, uid, uid)
                os.setresuid(uid, uid, uid)
                os.kill(-1, signal.SIGKILL)
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.02)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass


def _others_can_enter(path: Path) -> Path | None:
    """The topmost ancestor of ``path`` that others cannot traverse, or None."""
    parts = path.parts
    for i in range(2, len(parts) + 1):
        p = Path(*parts[:i])
        try:
            st = os.stat(p)
        except OSError:
            return None
        if stat.S_ISDIR(st.st_mode) and not st.st_mode & stat.S_IXOTH:
            return p
    return None


def _is_under(path: Path, parent: Path) -> bool:
    return path == parent or parent in path.parents


@lru_cache(maxsize=1)
def _namespaces_work() -> bool:
    """Can this (root) process create mount + network namespaces? Probed once."""
    if os.geteuid() != 0:
        return False

    def probe() -> None:
        _unshare(CLONE_NEWNS | CLONE_NEWNET)
        _mount(None, "/", None, MS_REC | MS_PRIVATE)

    try:
        subprocess.run(
            ["/bin/true"],
            preexec_fn=probe,
            check=True,
            timeout=10,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return True
    except (subprocess.SubprocessError, OSError):
        return False


@lru_cache(maxsize=1)
def _user_netns_works() -> bool:
    exe = shutil.which("unshare")
    if not exe:
        return False
    try:
        r = subprocess.run(
            [exe, "--user", "--map-root-user", "--net", "--", "/bin/true"],
            timeout=10,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return r.returncode == 0
    except (subprocess.SubprocessError, OSError):
        return False


def _base_env(work: Path, env_extra: Mapping[str, str] | None) -> dict[str, str]:
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "HOME": str(work),
        "TMPDIR": str(work),
        "PYTHONPATH": str(REPO_ROOT),
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
        # glibc reserves 64 MiB of address space per thread arena; under RLIMIT_AS a few
        # threads would look like a memory blow-up.
        "MALLOC_ARENA_MAX": "2",
    }
    for key, value in (env_extra or {}).items():
        if _SECRET_RE.search(key):
            raise ValueError(f"refusing to pass {key!r} into the sandbox (looks like a secret)")
        env[str(key)] = str(value)
    return env


def _read_capped(path: Path, limit: int) -> tuple[bytes, int]:
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            return fh.read(limit), size
    except OSError:
        return b"", 0


def _shorten(text: str, limit: int = 64_000) -> str:
    if len(text) <= limit:
        return text
    head = limit // 8
    return text[:head] + f"\n...[{len(text) - limit} characters cut]...\n" + text[-(limit - head) :]


def _collect(work: Path, names: Sequence[str], limit: int) -> tuple[dict[str, bytes], dict[str, str]]:
    """Read result files back (no symlink followed, no FIFO opened for blocking reads):
    (files, refused)."""
    out: dict[str, bytes] = {}
    refused: dict[str, str] = {}
    for name in names:
        content, why = read_output(str(work), name, limit)
        if why is not None:
            refused[name] = why
        elif content is not None:
            out[name] = content
    return out, refused


def _chown_tree(path: Path, uid: int, gid: int) -> None:
    os.chown(path, uid, gid)
    for dirpath, dirnames, filenames in os.walk(path):
        for n in dirnames + filenames:
            os.chown(os.path.join(dirpath, n), uid, gid, follow_symlinks=False)


# --------------------------------------------------------------------------- confinement
@dataclass
class Confinement:
    """Everything a confined process needs, prepared in the parent: the command, its
    minimal environment, its private directory and the set-up function that runs in the
    child between ``fork`` and ``exec``.

    With namespaces (root) ``argv`` starts the launcher (``sandbox_init.py``), which builds
    the namespaces, mounts, uid drop and filter itself, and ``preexec`` only starts a new
    session when asked; otherwise ``preexec`` applies rlimits (and the uid drop as root).

    Used by :func:`run_sandboxed` (one bounded run, output captured) and by
    ``python -m agentskiller.serve`` (a long-running MCP server whose stdin/stdout stay the
    wire). The owner starts the process with ``Popen(c.argv, env=c.env,
    preexec_fn=c.preexec, close_fds=True)`` and calls :meth:`close` at the end.
    """

    argv: list[str]
    env: dict[str, str]
    base: Path
    #: the run's working directory, as the program sees it (with the launcher a tmpfs that
    #: exists only in the run's mount namespace; on the host it is an empty mount point)
    work: Path
    run_dir: Path
    uid: int | None
    gid: int | None
    isolation: dict[str, Any]
    preexec: Callable[[], None]
    #: with the launcher: where the init leaves report.json and the collected outputs
    outputs: Path | None = None
    collect: tuple[str, ...] = ()

    @property
    def launched(self) -> bool:
        return self.outputs is not None

    def report(self) -> dict[str, Any]:
        """The launcher's report (``status``, ``error``, ``refused``, ``collected``), or {}."""
        if self.outputs is None:
            return {}
        try:
            return json.loads((self.outputs / REPORT_NAME).read_text())
        except (OSError, ValueError):
            return {}

    def collected(self, limit: int) -> tuple[dict[str, bytes], dict[str, str]]:
        """The outputs named in ``collect`` (files, refused); see :func:`read_output`."""
        if self.outputs is None:
            return _collect(self.work, self.collect, limit)
        rep = self.report()
        files = {}
        for i, name in enumerate(self.collect):
            if name in rep.get("collected", []):
                content, _ = read_output(str(self.outputs), str(i), limit)
                if content is not None:
                    files[name] = content
        return files, dict(rep.get("refused") or {})

    def sweep(self, pgid: int | None = None) -> None:
        """Kill every process of the run: the process group ``pgid`` (when given) and,
        with a private uid, everything that uid owns (beats ``setsid`` and fork bombs)."""
        if pgid is not None:
            _kill_group(pgid)
        # A shared uid (nobody) could belong to other runs: only a private one is swept.
        if self.uid is not None and self.uid != _NOBODY:
            _kill_uid(self.uid)

    def close(self, pgid: int | None = None) -> None:
        """:meth:`sweep`, then remove the private directory."""
        try:
            self.sweep(pgid)
        finally:
            shutil.rmtree(self.base, ignore_errors=True)


def _nothing() -> None:
    pass


def confine(
    argv: Sequence[str],
    *,
    cwd: str | Path | None = None,
    memory_mb: int = 1024,
    cpu_s: int = 60,
    max_processes: int = 64,
    max_file_bytes: int = 20 * 1024 * 1024,
    isolate_network: bool = True,
    env_extra: Mapping[str, str] | None = None,
    readable_paths: Sequence[str | Path] = (),
    files: Mapping[str, bytes | str | Path] | None = None,
    sandbox_root: str | Path | None = None,
    new_session: bool = True,
    die_with_parent: bool = True,
    disk_mb: int = DEFAULT_DISK_MB,
    collect: Sequence[str] = (),
    syscall_filter: bool = True,
) -> Confinement:
    """Prepare the confinement of ``argv`` (see the module docstring); starts nothing.

    ``files`` are copied into the private directory (inputs are copies: the program never
    sees the originals, which may not even be readable for its uid). ``memory_mb`` or
    ``cpu_s`` <= 0: no such limit. ``new_session``: the child starts its own session
    (``False`` keeps the caller's process group, so a terminal's Ctrl-C reaches it).
    ``die_with_parent``: the child gets killed when the process that started it dies (with
    the launcher always: its clean-up needs it). ``disk_mb``: size of the tmpfs working
    directory. ``collect``: outputs the launcher's init copies out when the program ends.
    Raises ValueError for an input path that escapes the directory.
    """
    if not argv:
        raise ValueError("empty argv")
    is_root = os.geteuid() == 0
    base = Path(tempfile.mkdtemp(prefix="agentskiller-sbx-", dir=sandbox_root))
    try:
        os.chmod(base, 0o711)  # the program may enter (to reach work/) but not list or write
        work = base / "work"
        work.mkdir()
        use_ns = is_root and _namespaces_work()
        # With the launcher the inputs are staged in in/ (root only) and copied by the init
        # into the tmpfs that becomes work/; otherwise they go straight into work/.
        stage = base / "in" if use_ns else work
        stage.mkdir(exist_ok=True, mode=0o700)
        isolation: dict[str, Any] = {
            "network": False,
            "uid": None,
            "mounts": False,
            "pid": False,
            "ipc": False,
            "seccomp": False,
            "disk_mb": None,
        }
        for rel, content in (files or {}).items():
            dest = (stage / rel).resolve()
            if not _is_under(dest, stage.resolve()):
                raise ValueError(f"input file escapes the sandbox: {rel}")
            dest.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, Path):
                shutil.copyfile(content, dest)
            else:
                dest.write_bytes(content.encode() if isinstance(content, str) else content)
        run_dir = work if cwd is None else (work / cwd if not Path(cwd).is_absolute() else Path(cwd))
        if use_ns and _is_under(run_dir, work):
            (stage / run_dir.relative_to(work)).mkdir(parents=True, exist_ok=True)
        env = _base_env(work, env_extra)
        argv = [str(a) for a in argv]

        uid = gid = None
        if is_root:
            uid, gid = _pick_uid()
            exposures = _exposures(argv, run_dir, work, readable_paths)
            if not use_ns and any(_others_can_enter(p) for p in exposures):
                # Without a mount namespace the interpreter would be unreachable for an
                # unprivileged uid: run as root (rlimits only) and say so.
                uid = gid = None
            if uid is not None and not use_ns:
                _chown_tree(work, uid, gid)
                os.chmod(work, 0o700)
            isolation.update(uid=uid, mounts=use_ns, network=use_ns and isolate_network)
        elif isolate_network and _user_netns_works():
            argv = [shutil.which("unshare") or "unshare", "--user", "--map-root-user", "--net", "--", *argv]
            isolation["network"] = True

        nproc = max_processes if uid is not None else max_processes + len(_pids_of_uid(os.getuid()))
        fsize = max(int(max_file_bytes), 1)
        if use_ns:
            assert uid is not None and gid is not None
            outputs = base / "out"
            outputs.mkdir(mode=0o700)
            seccomp = syscall_filter and seccomp_available()
            isolation.update(pid=True, ipc=True, seccomp=seccomp, disk_mb=int(disk_mb))
            exposures = [e for e in _exposures(argv, run_dir, work, readable_paths) if not _is_under(e, work)]
            masks = _masks([*exposures, work])
            rebinds = [e for e in exposures if any(_is_under(e, m) for m in masks)]
            rebinds = [e for e in rebinds if not any(o != e and _is_under(e, o) for o in rebinds)]
            spec = {
                "argv": argv,
                "base": str(base),
                "work": str(work),
                "run_dir": str(run_dir),
                "inputs": str(stage),
                "outputs": str(outputs),
                "uid": uid,
                "gid": gid,
                "limits": {"memory_mb": int(memory_mb), "cpu_s": int(cpu_s), "nproc": int(nproc), "fsize": fsize},
                "memory_mb": int(memory_mb),
                "disk_mb": max(int(disk_mb), 1),
                "masks": [str(m) for m in masks],
                "rebinds": [str(e) for e in rebinds],
                "isolate_network": bool(isolate_network),
                "seccomp": seccomp,
                "sys_path": _binding_paths() if seccomp else [],
                "parent_pid": os.getpid(),
                "collect": list(collect),
                "collect_limit": fsize,
            }
            spec_path = base / "spec.json"
            fd = os.open(spec_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                json.dump(spec, fh)
            # -I: the launcher runs as root and must not heed PYTHON* variables; -S: no site
            # (it needs the standard library and the binding in sys_path only); -B: no .pyc
            return Confinement(
                argv=[sys.executable, "-I", "-S", "-B", str(LAUNCHER), str(spec_path)],
                env=env,
                base=base,
                work=work,
                run_dir=run_dir,
                uid=uid,
                gid=gid,
                isolation=isolation,
                preexec=os.setsid if new_session else _nothing,
                outputs=outputs,
                collect=tuple(collect),
            )
        preexec = _make_preexec(
            run_dir=run_dir,
            work=work,
            memory_mb=memory_mb,
            cpu_s=cpu_s,
            nproc=nproc,
            fsize=fsize,
            uid=uid,
            gid=gid,
            new_session=new_session,
            parent_pid=os.getpid() if die_with_parent else None,
        )
    except BaseException:
        shutil.rmtree(base, ignore_errors=True)
        raise
    return Confinement(
        argv=argv,
        env=env,
        base=base,
        work=work,
        run_dir=run_dir,
        uid=uid,
        gid=gid,
        isolation=isolation,
        preexec=preexec,
        collect=tuple(collect),
    )


# --------------------------------------------------------------------------- main entry
def run_sandboxed(
    argv: Sequence[str],
    *,
    cwd: str | Path | None = None,
    timeout_s: float = 60.0,
    memory_mb: int = 1024,
    cpu_s: int = 60,
    max_processes: int = 64,
    max_output_bytes: int = 20 * 1024 * 1024,
    isolate_network: bool = True,
    env_extra: Mapping[str, str] | None = None,
    readable_paths: Sequence[str | Path] = (),
    files: Mapping[str, bytes | str | Path] | None = None,
    collect: Sequence[str] = (),
    stdin_data: bytes | None = None,
    max_file_bytes: int | None = None,
    sandbox_root: str | Path | None = None,
    disk_mb: int = DEFAULT_DISK_MB,
) -> SandboxResult:
    """Run ``argv`` under the limits above; never raises for failures of the program.

    ``files``: relative path -> content (bytes/str) or a file to copy, placed in the run's
    directory before start. ``collect``: relative paths read back into ``result.files``
    (regular files only; others end up in ``result.refused``).
    ``cwd``: relative to the run's directory (default: the directory itself).
    ``max_file_bytes``: cap for any file the program writes (default ``max_output_bytes``).
    ``disk_mb``: the run's disk quota (its working directory is a tmpfs of that size).
    """
    if not argv:
        raise ValueError("empty argv")
    start = time.monotonic()
    fsize = max(int(max_file_bytes or max_output_bytes), 1)
    conf = confine(
        argv,
        cwd=cwd,
        memory_mb=memory_mb,
        cpu_s=cpu_s,
        max_processes=max_processes,
        max_file_bytes=fsize,
        isolate_network=isolate_network,
        env_extra=env_extra,
        readable_paths=readable_paths,
        files=files,
        sandbox_root=sandbox_root,
        die_with_parent=True,
        disk_mb=disk_mb,
        collect=collect,
    )
    base, isolation = conf.base, conf.isolation
    out_path, err_path = base / "stdout", base / "stderr"
    try:
        stdin = subprocess.DEVNULL
        if stdin_data is not None:
            (base / "stdin").write_bytes(stdin_data)
            stdin = open(base / "stdin", "rb")  # noqa: SIM115 - closed below
        with open(out_path, "wb") as out_fh, open(err_path, "wb") as err_fh:
            if isolation.get("mounts") and not isolation.get("seccomp"):
                err_fh.write(b"sandbox: warning: no syscall filter (pyseccomp or libseccomp unavailable)\n")
                err_fh.flush()
            try:
                proc = subprocess.Popen(
                    conf.argv,
                    stdin=stdin,
                    stdout=out_fh,
                    stderr=err_fh,
                    env=conf.env,
                    preexec_fn=None if conf.launched else conf.preexec,
                    start_new_session=conf.launched,
                    close_fds=True,
                    restore_signals=True,
                )
            except (subprocess.SubprocessError, OSError) as exc:
                err_fh.flush()
                return SandboxResult(
                    None,
                    "",
                    _shorten(err_path.read_text(errors="replace") + f"\n{exc}"),
                    False,
                    "sandbox_error",
                    time.monotonic() - start,
                    isolation=isolation,
                )
            finally:
                if stdin is not subprocess.DEVNULL:
                    stdin.close()
            timed_out, status, rusage = _wait(proc, timeout_s)
            # The main process is gone (or was killed): now nothing of the run may survive.
            conf.sweep(proc.pid)
        duration = time.monotonic() - start

        out_bytes, out_size = _read_capped(out_path, max_output_bytes)
        err_bytes, err_size = _read_capped(err_path, max_output_bytes)
        stdout = out_bytes.decode("utf-8", errors="replace")
        stderr = _shorten(err_bytes.decode("utf-8", errors="replace"))
        rc = os.waitstatus_to_exitcode(status) if status is not None else None
        sig = -rc if rc is not None and rc < 0 else None
        cpu_used = (rusage.ru_utime + rusage.ru_stime) if rusage is not None else 0.0
        truncated = out_size > max_output_bytes or err_size > max_output_bytes or max(out_size, err_size) >= fsize
        files_out, refused = conf.collected(fsize) if not timed_out else ({}, {})
        setup_error = conf.report().get("error") if conf.launched and not timed_out else None
        if setup_error:
            stderr = _shorten(stderr + ("\n" if stderr and not stderr.endswith("\n") else "") + setup_error)
            reason = "sandbox_error"
        else:
            reason = _classify(rc, sig, timed_out, stderr, truncated, cpu_used, cpu_s)
            if reason == "ok" and refused:
                reason = "bad_output"
        return SandboxResult(
            returncode=rc,
            stdout=stdout,
            stderr=stderr,
            timed_out=timed_out,
            reason=reason,
            duration_s=round(duration, 3),
            signal=sig,
            output_truncated=truncated,
            cpu_s=round(cpu_used, 3),
            isolation=isolation,
            files=files_out,
            refused=refused,
        )
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _exposures(argv: Sequence[str], run_dir: Path, work: Path, readable: Sequence[str | Path]) -> list[Path]:
    """Paths the program must see: its directory, Python, the repo, explicit inputs."""
    paths = {work, run_dir, REPO_ROOT}
    for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.realpath(sys.executable)):
        paths.add(Path(os.path.realpath(p)))
    exe = shutil.which(argv[0]) if argv else None
    if exe:
        paths.add(Path(os.path.realpath(exe)).parent)
    paths.update(Path(os.path.realpath(p)) for p in readable)
    return sorted(p for p in paths if p.exists())


def _masks(exposures: Sequence[Path]) -> list[Path]:
    """Directories to cover with an empty tmpfs: world-writable scratch dirs, and the
    topmost ancestors of needed paths that others cannot enter (``/root``)."""
    masks = set()
    for d in SCRATCH_DIRS:
        p = Path(os.path.realpath(d))  # /var/lock is usually a link to /run/lock
        if p.is_dir() and os.stat(p).st_mode & stat.S_IWOTH:
            masks.add(p)
    for e in exposures:
        blocked = _others_can_enter(e)
        if blocked is not None:
            masks.add(blocked)
    # Drop masks nested inside other masks (the outer tmpfs hides them anyway).
    return sorted(m for m in masks if not any(o != m and _is_under(m, o) for o in masks))


def _make_preexec(
    *,
    run_dir: Path,
    work: Path,
    memory_mb: int,
    cpu_s: int,
    nproc: int,
    fsize: int,
    uid: int | None,
    gid: int | None,
    new_session: bool = True,
    parent_pid: int | None = None,
):
    """The set-up between fork and exec when there is no launcher (not root, or no
    namespaces): rlimits, and as root the uid drop."""
    _libc()  # load before fork: the child should only make system calls

    def preexec() -> None:  # runs in the child between fork and exec
        try:
            if new_session:
                os.setsid()
            if memory_mb > 0:
                mem = memory_mb * 1024 * 1024
                resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
            if cpu_s > 0:
                resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 2))
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))
            resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
            _libc().prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
            if uid is not None:
                os.setgroups([])
                os.setresgid(gid, gid, gid)
                os.setresuid(uid, uid, uid)
            if parent_pid is not None:
                # After the uid change (a credential change clears the setting); if the
                # parent is already gone, nobody would clean up: stop right here.
                _libc().prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
                if os.getppid() != parent_pid:
                    os._exit(1)
            os.chdir(run_dir)
        except BaseException as exc:
            # stderr is already the run's stderr file: leave the reason there.
            os.write(2, f"sandbox setup failed: {type(exc).__name__}: {exc}\n".encode())
            raise

    return preexec


def open_pidfd(pid: int) -> int | None:
    """A descriptor that becomes readable when ``pid`` ends (Linux 5.3+), or None."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _wait(proc: subprocess.Popen, timeout_s: float):
    """Wait with a wall-clock limit; returns (timed_out, wait status, rusage).

    Woken by a pidfd the moment the process ends: polling with sleeps (the fallback where
    there is no pidfd) noticed the end up to 50 ms late, on every one of the hundreds of
    sandboxed runs of a workflow."""
    deadline = time.monotonic() + timeout_s
    delay = 0.002
    timed_out = False
    pidfd = open_pidfd(proc.pid)
    try:
        while True:
            pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                proc.returncode = os.waitstatus_to_exitcode(status)
                return timed_out, status, rusage
            now = time.monotonic()
            if now >= deadline and not timed_out:
                timed_out = True
                _kill_group(proc.pid)
                deadline = float("inf")
            if pidfd is not None:
                select.select([pidfd], [], [], None if timed_out else max(0.0, deadline - now))
            else:
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
    finally:
        if pidfd is not None:
            os.close(pidfd)


def _classify(
    rc: int | None, sig: int | None, timed_out: bool, stderr: str, truncated: bool, cpu_used: float, cpu_limit: float
) -> str:
    has = lambda markers: any(m in stderr for m in markers)  # noqa: E731
    if truncated or sig == signal.SIGXFSZ or (rc and has(_OUTPUT_MARKERS)):
        return "output_limit"
    if timed_out:
        if has(_FORK_MARKERS):
            return "fork_limit"
        if has(_MEMORY_MARKERS):
            return "memory"
        return "timeout"
    if rc == 0:
        return "ok"
    if sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu_used >= cpu_limit - 0.5):
        return "cpu"
    if has(_MEMORY_MARKERS):
        return "memory"
    if has(_FORK_MARKERS):
        return "fork_limit"
    if sig is not None:
        return "crash"
    return "exit"
