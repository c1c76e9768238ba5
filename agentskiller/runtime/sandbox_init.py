"""The sandbox's launcher: the process tree that confines one run, as root.

Size: over 400 lines because the launcher runs with the standard library only (python -I), so its namespaces, mounts, init and syscall filter cannot import helpers from elsewhere.

:mod:`agentskiller.runtime.sandbox` prepares a run (directories, inputs, a JSON spec) and
starts ``python -I -S -B sandbox_init.py <spec>``. This file is run as a script, so it uses
the standard library only (and the optional libseccomp binding): importing the package
would import pydantic and the runtime as root for nothing. Three processes::

    supervisor (host PID namespace, root)       waits, relays the exit status, cleans up
      init     (PID 1 of a new PID namespace)   mounts, reaps, collects outputs
        program (PID 2, a fresh unprivileged uid) rlimits, no_new_privs, seccomp, exec

* supervisor: ``PR_SET_PDEATHSIG`` to SIGUSR1: when the job that started it dies (even by
  SIGKILL) it kills the init (which takes the whole PID namespace with it: the kernel
  SIGKILLs every process of a namespace whose init exits) and removes the run's directory.
  It ends with the program's own status (same exit code, or the same signal), so the caller
  classifies the run as before.
* init: new mount, IPC and (optionally) network namespaces. In the mount namespace:
  scratch directories (``/tmp``, ``/var/tmp``, ``/dev/shm``, ``/run/lock``, ``/dev/mqueue``)
  and directories others cannot enter (``/root``) are covered by empty root-owned tmpfs;
  what the program needs under them is bound back; every other mount is made read-only;
  a fresh ``/proc`` shows only the namespace's processes; the working directory is a
  size-limited tmpfs (the disk quota) into which the inputs are copied. All of it, and
  every SysV/POSIX IPC object, disappears with the namespaces. When the program ends the
  init kills what is left (daemons included), copies the requested outputs out (regular
  files only, opened ``O_NOFOLLOW | O_NONBLOCK``: a FIFO cannot block it) and writes
  ``report.json`` for the caller.
* program: rlimits, the uid drop, ``no_new_privs``, the syscall filter, then ``exec``.

Syscall filter: libseccomp through ``pyseccomp`` (PyPI, MIT; a pure-Python ctypes binding,
API-compatible with libseccomp's own ``seccomp`` module, which is not on PyPI; Debian's
``python3-seccomp`` exists only for the system interpreter). libseccomp itself is part of
every Debian/Ubuntu base system (apt depends on it). The official ``seccomp`` module is used
when importable. The filter is a deny list (EPERM) of what no generated data script or tool
module needs and what widens the kernel surface: namespaces (unshare, setns, clone with a
namespace flag; clone3 answers ENOSYS so libc falls back to clone), mount and the new mount
API, ptrace and process_vm_*, bpf, perf_event_open, userfaultfd, io_uring, keyrings, kernel
modules, kexec, reboot, swap, clocks, quotas, open_by_handle_at and similar. An allow list
would be tighter but breaks on whatever syscall a new interpreter or library uses. Without a
binding or libseccomp the run goes on without a filter, and says so on stderr.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import json
import os
import resource
import shutil
import signal
import stat
import sys
from typing import Any

# Linux constants (linux/sched.h, sys/mount.h, linux/prctl.h)
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MS_NOATIME, MS_NODIRATIME, MS_RELATIME = 1024, 2048, 1 << 21
PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38

REPORT_NAME = "report.json"
#: the supervisor's exit code when the sandbox itself failed (the report says why)
SETUP_FAILED = 125

_libc_handle: Any = None
#: sonames tried before ctypes.util.find_library, which runs ``ldconfig -p`` in a subprocess
#: on every call (three times per run otherwise: libc here, libc and libseccomp in pyseccomp)
_SONAMES = {"c": "libc.so.6", "seccomp": "libseccomp.so.2"}
_find_library_slow = ctypes.util.find_library


def _find_library(name: str) -> str | None:
    soname = _SONAMES.get(name)
    if soname:
        try:
            ctypes.CDLL(soname)
            return soname
        except OSError:
            pass
    return _find_library_slow(name)


def libc() -> Any:
    global _libc_handle
    if _libc_handle is None:
        _libc_handle = ctypes.CDLL(_find_library("c"), use_errno=True)
    return _libc_handle


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def unshare(flags: int) -> None:
    if hasattr(os, "unshare"):  # Python 3.12+
        os.unshare(flags)
    else:
        _check(libc().unshare(ctypes.c_int(flags)), "unshare")


def mount(src: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = lambda s: None if s is None else s.encode()  # noqa: E731
    _check(libc().mount(enc(src), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)), f"mount {target}")


def prctl(option: int, arg: int) -> None:
    _check(libc().prctl(option, ctypes.c_ulong(arg), 0, 0, 0), f"prctl {option}")


# --------------------------------------------------------------------------- outputs
def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISDIR, "a directory"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def read_output(root: str | int, rel: str, limit: int) -> tuple[bytes | None, str | None]:
    """Read ``root/rel`` without following any symlink and without blocking: (content, None),
    (None, None) when it does not exist, or (None, why it was refused).

    Every component is opened ``O_NOFOLLOW`` below ``root`` (a directory path or fd), the file
    itself also ``O_NONBLOCK | O_NOCTTY``, and only a regular file is read (at most
    ``limit + 1`` bytes, so the caller can tell it was too big)."""
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        return None, "not a path inside the sandbox"
    fds: list[int] = []
    try:
        if isinstance(root, int):
            fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY, dir_fd=root)
        else:
            fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
        fds.append(fd)
        for part in parts[:-1]:
            fd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            fds.append(fd)
        fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY, dir_fd=fd)
        fds.append(fd)
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            return None, _kind(mode)
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks), None
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return None, None
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            return None, "a symbolic link (or a path through one)"
        return None, f"unreadable ({exc.strerror})"
    finally:
        for fd in fds:
            os.close(fd)


# --------------------------------------------------------------------------- seccomp
_DENIED = (
    "acct add_key bpf clock_adjtime clock_settime create_module delete_module finit_module fsconfig fsmount fsopen "
    "fspick get_kernel_syms init_module ioperm iopl io_uring_enter io_uring_register io_uring_setup kcmp "
    "kexec_file_load kexec_load keyctl lookup_dcookie mount mount_setattr move_mount name_to_handle_at nfsservctl "
    "open_by_handle_at open_tree perf_event_open pidfd_getfd pivot_root process_vm_readv process_vm_writev ptrace "
    "query_module quotactl quotactl_fd reboot request_key setdomainname sethostname setns settimeofday swapoff "
    "swapon _sysctl syslog umount umount2 unshare uselib userfaultfd ustat vhangup vm86 vm86old"
).split()
_NS_FLAGS = (CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET)


def seccomp_module() -> Any:
    """libseccomp's Python binding, or None (with the reason in the exception text)."""
    try:
        import seccomp  # type: ignore[import-not-found]  # libseccomp's own binding, if installed

        return seccomp
    except ImportError:
        pass
    try:
        ctypes.util.find_library = _find_library  # pyseccomp resolves its libraries at import
        try:
            import pyseccomp  # type: ignore[import-untyped]
        finally:
            ctypes.util.find_library = _find_library_slow
        return pyseccomp
    except (ImportError, RuntimeError, OSError):  # RuntimeError: "Unable to find libseccomp"
        return None


def load_seccomp(sc: Any) -> None:
    """Install the deny-list filter in this process (inherited by exec and fork)."""
    f = sc.SyscallFilter(sc.ALLOW)
    deny = sc.ERRNO(errno.EPERM)
    for name in _DENIED:
        try:
            f.add_rule(deny, name)
        except (OSError, ValueError, RuntimeError):  # not a syscall on this architecture
            continue
    for flag in _NS_FLAGS:
        f.add_rule(deny, "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    try:
        f.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    except (OSError, ValueError, RuntimeError):
        pass
    f.load()


# --------------------------------------------------------------------------- the processes
def _mountpoints() -> list[tuple[str, set[str]]]:
    """(mount point, per-mount options) of this mount namespace, outermost first."""
    out = []
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            fields = line.split()
            point = fields[4].encode().decode("unicode_escape")  # \040 for a space, ...
            out.append((point, set(fields[5].split(","))))
    return out


def _remount_readonly(keep_writable: set[str]) -> None:
    """Every mount read-only (its nosuid/nodev/noexec/atime flags kept), except ``keep_writable``."""
    flagmap = {
        "nosuid": MS_NOSUID,
        "nodev": MS_NODEV,
        "noexec": MS_NOEXEC,
        "noatime": MS_NOATIME,
        "nodiratime": MS_NODIRATIME,
        "relatime": MS_RELATIME,
    }
    for point, opts in _mountpoints():
        # the masks themselves stay writable for root only; /proc is this namespace's own
        if point in keep_writable or point.startswith("/proc/") or "ro" in opts:
            continue
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY
        for opt in opts:
            flags |= flagmap.get(opt, 0)
        try:
            mount(None, point, None, flags)
        except OSError as exc:
            # a mount point now hidden under a mask (ENOENT/EINVAL) is unreachable anyway
            if exc.errno not in (errno.ENOENT, errno.EINVAL, errno.ENOTDIR):
                raise


def _set_ipc_limits(memory_mb: int) -> None:
    """The new IPC namespace's SysV shared memory may not exceed the run's memory limit."""
    if memory_mb <= 0:
        return
    for name, value in (("shmmax", memory_mb * 2**20), ("shmall", memory_mb * 2**20 // 4096)):
        with open(f"/proc/sys/kernel/{name}", "w") as fh:
            fh.write(str(value))


def _chown_tree(path: str, uid: int, gid: int) -> None:
    os.chown(path, uid, gid)
    for dirpath, dirnames, filenames in os.walk(path):
        for n in dirnames + filenames:
            os.chown(os.path.join(dirpath, n), uid, gid, follow_symlinks=False)


def _setup_mounts(spec: dict, in_fd: int) -> None:
    unshare(CLONE_NEWNS | CLONE_NEWIPC | (CLONE_NEWNET if spec["isolate_network"] else 0))
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    rebind_fds = {e: os.open(e, os.O_PATH | os.O_CLOEXEC) for e in spec["rebinds"]}
    for m in spec["masks"]:
        mount("tmpfs", m, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m")
    for e, fd in rebind_fds.items():
        if os.path.isdir(f"/proc/self/fd/{fd}"):
            os.makedirs(e, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(e), exist_ok=True)
            open(e, "a").close()
        mount(f"/proc/self/fd/{fd}", e, None, MS_BIND | MS_REC)
        os.close(fd)
    # Only this namespace's processes: a fresh procfs (this process is its PID 1).
    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    work = spec["work"]
    _remount_readonly(keep_writable={"/proc", *spec["masks"]})
    os.makedirs(work, exist_ok=True)
    disk = int(spec["disk_mb"])
    inodes = max(10_000, disk * 64)
    mount(
        "tmpfs",
        work,
        "tmpfs",
        MS_NOSUID | MS_NODEV,
        f"size={disk}m,nr_inodes={inodes},mode=0700,uid={spec['uid']},gid={spec['gid']}",
    )
    try:
        shutil.copytree(f"/proc/self/fd/{in_fd}", work, dirs_exist_ok=True, symlinks=True)
    except (OSError, shutil.Error) as exc:
        if "No space left" in str(exc) or getattr(exc, "errno", None) == errno.ENOSPC:
            raise OSError(errno.ENOSPC, f"the inputs do not fit the disk quota ({disk} MB)") from None
        raise
    _chown_tree(work, spec["uid"], spec["gid"])
    _set_ipc_limits(int(spec["memory_mb"]))


def _exec_program(spec: dict, err_w: int, seccomp: Any) -> None:
    """In the program's process: limits, uid, filter, exec. Never returns."""
    try:
        for sig in range(1, signal.NSIG):  # the launcher ignored some; exec keeps SIG_IGN
            if sig not in (signal.SIGKILL, signal.SIGSTOP):
                try:
                    signal.signal(sig, signal.SIG_DFL)
                except (OSError, ValueError):
                    pass
        lim = spec["limits"]
        if lim["memory_mb"] > 0:
            mem = lim["memory_mb"] * 2**20
            resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        if lim["cpu_s"] > 0:
            resource.setrlimit(resource.RLIMIT_CPU, (lim["cpu_s"], lim["cpu_s"] + 2))
        resource.setrlimit(resource.RLIMIT_FSIZE, (lim["fsize"], lim["fsize"]))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))
        resource.setrlimit(resource.RLIMIT_NPROC, (lim["nproc"], lim["nproc"]))
        os.setgroups([])
        os.setresgid(spec["gid"], spec["gid"], spec["gid"])
        os.setresuid(spec["uid"], spec["uid"], spec["uid"])
        prctl(PR_SET_NO_NEW_PRIVS, 1)
        if seccomp is not None:
            load_seccomp(seccomp)
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # after the uid change, which clears it
        if os.getppid() != 1:
            os._exit(1)
        os.chdir(spec["run_dir"])
        os.execvpe(spec["argv"][0], spec["argv"], os.environ)
    except BaseException as exc:  # noqa: BLE001 - reported to the init, then gone
        try:
            os.write(err_w, f"cannot start {spec['argv'][0]}: {type(exc).__name__}: {exc}".encode())
        finally:
            os._exit(127)


def _parent_gone(alive_r: int) -> bool:
    """The supervisor holds the write end of this pipe: a hang-up means it is gone (its PID
    is not visible from inside the namespace, where getppid() is always 0)."""
    import select

    poller = select.poll()
    poller.register(alive_r, select.POLLIN | select.POLLHUP)
    return bool(poller.poll(0))


def _init(spec: dict, in_fd: int, out_fd: int, alive_r: int, seccomp: Any) -> None:
    """PID 1 of the new namespace. Never returns."""
    report: dict[str, Any] = {"status": None, "error": None, "refused": {}, "collected": []}

    def finish() -> None:
        try:
            tmp = f".{REPORT_NAME}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600, dir_fd=out_fd)
            with os.fdopen(fd, "w") as fh:
                json.dump(report, fh)
            os.rename(tmp, REPORT_NAME, src_dir_fd=out_fd, dst_dir_fd=out_fd)
        finally:
            os._exit(0)

    try:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if _parent_gone(alive_r):
            os._exit(1)
        os.close(alive_r)
        _setup_mounts(spec, in_fd)
        os.close(in_fd)
    except BaseException as exc:  # noqa: BLE001
        report["error"] = f"sandbox setup failed: {type(exc).__name__}: {exc}"
        finish()
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    program = os.fork()
    if program == 0:
        os.close(err_r)
        _exec_program(spec, err_w, seccomp)
    os.close(err_w)

    # A signal for the run (SIGTERM/SIGHUP to the process group, or forwarded by the
    # supervisor) goes on to the program; as PID 1 this process would otherwise drop it.
    def forward(signum: int, frame: Any) -> None:
        try:
            os.kill(program, signum)
        except OSError:
            pass

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, forward)
    for sig in (signal.SIGINT, signal.SIGQUIT):  # a terminal sends these to the program itself
        signal.signal(sig, signal.SIG_IGN)
    failure = b""
    while chunk := os.read(err_r, 4096):
        failure += chunk
    os.close(err_r)
    if failure:
        report["error"] = failure.decode(errors="replace")
    while True:  # reap everything (orphans are re-parented here) until the program ends
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        if pid == program:
            report["status"] = status
            break
    # Nothing of the run outlives the program: daemons, setsid escapees, forked copies.
    try:
        os.kill(-1, signal.SIGKILL)
    except OSError:
        pass
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            break
    if report["error"] is None:
        limit = int(spec["collect_limit"])
        for i, name in enumerate(spec["collect"]):
            content, why = read_output(spec["work"], name, limit)
            if why is not None:
                report["refused"][name] = why
            elif content is not None:
                fd = os.open(str(i), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600, dir_fd=out_fd)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(content)
                report["collected"].append(name)
    finish()


class _Orphaned(Exception):
    pass


def _orphaned(signum: int, frame: Any) -> None:
    raise _Orphaned()


def supervise(spec_path: str) -> int:
    """The supervisor (this script's main process)."""
    with open(spec_path) as fh:
        spec = json.load(fh)
    base = spec["base"]
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # Die-with-parent, but with a clean-up: SIGUSR1 when the job that started us is gone.
    signal.signal(signal.SIGUSR1, _orphaned)
    prctl(PR_SET_PDEATHSIG, signal.SIGUSR1)
    init = None
    try:
        if os.getppid() != spec["parent_pid"]:
            raise _Orphaned()
        seccomp = None
        if spec["seccomp"]:
            sys.path[:0] = spec.get("sys_path", [])  # started with -S: where the binding lives
            seccomp = seccomp_module()
            if seccomp is None:
                os.write(2, b"sandbox: warning: no syscall filter (pyseccomp or libseccomp unavailable)\n")
        alive_r, alive_w = os.pipe()
        in_fd = os.open(spec["inputs"], os.O_RDONLY | os.O_DIRECTORY)
        out_fd = os.open(spec["outputs"], os.O_RDONLY | os.O_DIRECTORY)
        unshare(CLONE_NEWPID)  # for the children: the next fork is PID 1 of the namespace
        init = os.fork()
        if init == 0:
            os.close(alive_w)
            _init(spec, in_fd, out_fd, alive_r, seccomp)
        os.close(alive_r)
        os.close(in_fd)
        os.close(out_fd)
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, lambda signum, frame: os.kill(init, signum))
        for sig in (signal.SIGINT, signal.SIGQUIT):
            signal.signal(sig, signal.SIG_IGN)
        os.waitpid(init, 0)
    except _Orphaned:
        if init:
            try:
                os.kill(init, signal.SIGKILL)
                os.waitpid(init, 0)
            except OSError:
                pass
        shutil.rmtree(base, ignore_errors=True)
        return 137
    try:
        with open(os.path.join(spec["outputs"], REPORT_NAME)) as fh:
            status = json.load(fh)["status"]
    except (OSError, ValueError, KeyError):
        status = None
    if status is None:
        return SETUP_FAILED
    if os.WIFSIGNALED(status):  # end the same way the program did
        sig = os.WTERMSIG(status)
        if sig not in (signal.SIGKILL, signal.SIGSTOP):  # those two have no handler to reset
            signal.pthread_sigmask(signal.SIG_UNBLOCK, [sig])
            signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
        return 128 + sig
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(supervise(sys.argv[1]))
