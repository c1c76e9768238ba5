"""Adversarial tests of the sandbox: each hostile program is stopped with a clear reason."""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

import pytest

from agentskiller.runtime.sandbox import REPO_ROOT, SandboxSettings, _pids_of_uid, run_sandboxed

PY = sys.executable
ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="privilege drop, mount and network namespaces need root")

LIMITS = dict(timeout_s=8, memory_mb=512, cpu_s=8, max_processes=32, max_output_bytes=1 << 20)


def run_py(code: str, **overrides):
    return run_sandboxed([PY, "-c", code], **(LIMITS | overrides))


def test_a_normal_program_runs_in_its_own_directory_with_a_minimal_environment(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-should-never-leak")
    monkeypatch.setenv("AGENTSKILLER_SECRET_TOKEN", "nope")
    code = (
        "import json, os, sys\n"
        "print(json.dumps({'cwd': os.getcwd(), 'env': dict(os.environ), 'inp': open('in/data.txt').read()}))\n"
        "open('result.txt', 'w').write('done')\n"
        "os.symlink('/etc/passwd', 'leak.txt')\n"
    )
    r = run_py(code, files={"in/data.txt": "hello"}, collect=["result.txt", "leak.txt", "missing.txt"])
    # the program finished, but one of its outputs is a symlink (out of the sandbox): refused
    assert r.reason == "bad_output" and r.returncode == 0, r.stderr
    assert r.refused == {"leak.txt": "a symbolic link (or a path through one)"}
    assert "leak.txt is a symbolic link" in r.describe()
    import json

    out = json.loads(r.stdout)
    env = out["env"]
    assert out["inp"] == "hello"
    assert env["HOME"] == env["TMPDIR"] == out["cwd"]
    assert env["PYTHONHASHSEED"] == "0" and env["PYTHONPATH"] == str(REPO_ROOT)
    assert not any("KEY" in k or "SECRET" in k or k.startswith("OPENAI") for k in env)
    assert r.files == {"result.txt": b"done"}  # the symlink out of the sandbox is not followed
    assert not Path(out["cwd"]).exists()  # the run's directory is removed afterwards


def test_secret_environment_variables_are_refused():
    with pytest.raises(ValueError, match="secret"):
        run_sandboxed([PY, "-c", "pass"], env_extra={"OPENAI_API_KEY": "x"})
    r = run_sandboxed([PY, "-c", "import os; print(os.environ['MODE'])"], env_extra={"MODE": "fast"})
    assert r.stdout.strip() == "fast"


def test_infinite_loop_is_stopped_by_the_wall_clock_timeout():
    t = time.monotonic()
    r = run_py("while True: pass", timeout_s=1.5, cpu_s=30)
    assert r.timed_out and r.reason == "timeout"
    assert time.monotonic() - t < 6


def test_cpu_limit_stops_a_busy_program():
    r = run_py("while True: pass", timeout_s=20, cpu_s=1)
    assert r.reason == "cpu" and not r.timed_out
    assert r.duration_s < 10


def test_unbounded_memory_allocation_is_stopped_by_the_memory_limit():
    r = run_py("x = []\nwhile True: x.append(bytearray(64 * 2**20))", memory_mb=256)
    assert r.reason == "memory", (r.reason, r.stderr)
    assert "MemoryError" in r.stderr


@needs_root
def test_fork_bomb_is_stopped_and_leaves_no_process_behind():
    code = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    t = time.monotonic()
    r = run_py(code, timeout_s=3, max_processes=16)
    assert time.monotonic() - t < 10
    assert r.reason in ("fork_limit", "timeout"), r.reason
    uid = r.isolation["uid"]
    assert uid not in (None, 0)
    assert _pids_of_uid(uid) == []  # nothing of the run survives


@needs_root
def test_fork_bomb_hitting_the_process_limit_reports_fork_limit():
    r = run_py("import os\nwhile True: os.fork()", timeout_s=5, max_processes=16)
    assert r.reason == "fork_limit", (r.reason, r.stderr[-300:])
    assert _pids_of_uid(r.isolation["uid"]) == []


@needs_root
def test_writing_outside_the_sandbox_directory_is_denied():
    targets = [
        REPO_ROOT / "tests" / ".sandbox_escape_probe",
        Path("/tmp/.sandbox_escape_probe"),
        REPO_ROOT / "agentskiller" / ".sandbox_escape_probe",
        Path("/etc/.sandbox_escape_probe"),
    ]
    code = (
        "import sys\nfailed = []\n"
        f"for p in {[str(t) for t in targets]!r}:\n"
        "    try:\n        open(p, 'w').write('x')\n"
        "    except OSError as e:\n        failed.append(e.errno)\n"
        "open('inside.txt', 'w').write('fine')\n"
        "print(failed)\n"
    )
    r = run_py(code, collect=["inside.txt"])
    assert r.reason == "ok", r.stderr
    # /tmp is a private root-owned tmpfs (EACCES); every other mount is read-only (EROFS)
    assert r.stdout.strip() == "[30, 13, 30, 30]"
    assert r.files == {"inside.txt": b"fine"}
    for t in targets:
        assert not t.exists()


@needs_root
def test_secrets_under_root_home_are_invisible():
    r = run_py("import os; print(sorted(os.listdir('/root')))")
    assert r.reason == "ok", r.stderr
    visible = eval(r.stdout)  # a list of names
    real = set(os.listdir("/root"))
    # Only what the interpreter needs is bound back (here: the pyenv tree), nothing else.
    assert set(visible) <= real and len(visible) < len(real)


@needs_root
def test_network_is_isolated():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()  # works from outside
        code = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
        r = run_py(code)
        assert r.reason == "exit" and r.returncode == 1
        assert "Network is unreachable" in r.stderr
        r2 = run_py("import socket; socket.create_connection(('1.1.1.1', 53), timeout=2)")
        assert r2.reason == "exit" and "Network is unreachable" in r2.stderr
        assert r.isolation["network"] is True
    finally:
        server.close()


def test_printing_gigabytes_is_stopped_at_the_output_limit():
    t = time.monotonic()
    r = run_py("import sys\nwhile True: sys.stdout.write('x' * 65536)", max_output_bytes=1 << 20)
    assert r.reason == "output_limit" and r.output_truncated
    assert len(r.stdout) <= 1 << 20
    assert time.monotonic() - t < 10


def test_output_limit_also_applies_to_a_non_python_program():
    r = run_sandboxed(["yes"], **(LIMITS | {"max_output_bytes": 256 * 1024}))
    assert r.reason == "output_limit" and len(r.stdout) <= 256 * 1024


def test_crash_and_nonzero_exit_have_their_own_reasons():
    crash = run_py("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)")
    assert crash.reason == "crash" and crash.signal == 11
    bad = run_py("raise SystemExit(3)")
    assert bad.reason == "exit" and bad.returncode == 3
    assert "exited with status 3" in bad.describe()


def test_settings_from_config():
    s = SandboxSettings.from_config(
        {"timeout_s": 5, "memory_mb": 300, "cpu_s": 4, "max_processes": 8, "max_output_mb": 2, "isolate_network": False}
    )
    assert s == SandboxSettings(5.0, 300, 4, 8, 2 * 2**20, False)
    assert SandboxSettings.from_config(None) == SandboxSettings()


# ----------------------------------------------------- confinement of a long-running process
@needs_root
def test_confine_wraps_a_long_running_process_with_inherited_stdio_and_close_kills_all_of_it(tmp_path):
    """What ``python -m agentskiller.serve`` does: the child keeps the caller's pipes
    (the MCP wire) and process group, runs as the private uid; ``close()`` kills every
    process of that uid (also a forked one in its own session) and removes the directory."""
    import subprocess

    from agentskiller.runtime.sandbox import confine

    code = (
        "import os, sys, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid(); time.sleep(120)\n"
        "for line in sys.stdin:\n"
        "    print(f'{os.getuid()} {os.getpgrp()} {os.path.exists(sys.argv[1])} {open(\"in.txt\").read()} '"
        " + line.strip(), flush=True)\n"
    )
    conf = confine(
        [PY, "-c", code, str(tmp_path)],
        files={"in.txt": "x"},
        new_session=False,
        die_with_parent=True,
        **{k: v for k, v in LIMITS.items() if k not in ("timeout_s", "max_output_bytes")},
    )
    proc = subprocess.Popen(
        conf.argv,
        env=conf.env,
        preexec_fn=conf.preexec,
        close_fds=True,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        proc.stdin.write("ping\n")
        proc.stdin.flush()
        uid, pgid, sees_tmp, inp, word = proc.stdout.readline().split()
        # the caller's process group lies outside the run's PID namespace: 0 there
        assert (int(uid), int(pgid), sees_tmp, inp, word) == (conf.uid, 0, "False", "x", "ping")
        assert os.getpgid(proc.pid) == os.getpgrp()
        deadline = time.monotonic() + 5
        while len(_pids_of_uid(conf.uid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(_pids_of_uid(conf.uid)) == 2  # the server and its escaped child
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)
        conf.close()
    assert _pids_of_uid(conf.uid) == []
    assert not conf.base.exists()


@needs_root
def test_confined_child_dies_with_its_parent(tmp_path):
    import subprocess

    starter = (
        "import subprocess, sys\n"
        "from agentskiller.runtime.sandbox import confine\n"
        "c = confine([sys.executable, '-c', 'import time; time.sleep(120)'], die_with_parent=True,\n"
        f"            sandbox_root={str(tmp_path)!r})\n"
        "p = subprocess.Popen(c.argv, env=c.env, preexec_fn=c.preexec, close_fds=True)\n"
        "print(c.uid, flush=True)\n"
        "import os; os._exit(0)  # no clean-up: the kernel must stop the child\n"
    )
    out = subprocess.run(
        [PY, "-c", starter],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"},
    )
    uid = int(out.stdout.split()[0])
    deadline = time.monotonic() + 5
    while _pids_of_uid(uid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _pids_of_uid(uid) == []


# ------------------------------------------------- escapes past rlimits (issue 12, "Sandbox")
# Each hostile program is contained: stopped with a clear reason, or harmless; the figure
# printed is the time until the run was over (visible with -s).
sys.path.insert(0, str(Path(__file__).resolve().parent))
from adversarial_payloads import LOCK_DIRS, ipc_key, marker_processes, new_marker, payload  # noqa: E402


def run_payload(kind: str, marker: str, **overrides):
    t = time.monotonic()
    r = run_sandboxed(
        [PY, "-c", payload(kind, marker, spy_on=overrides.pop("spy_on", "")), "out.json"], **(LIMITS | overrides)
    )
    seconds = time.monotonic() - t
    print(f"\n[sandbox {kind}] contained in {seconds:.2f} s: {r.describe()}")
    return r, seconds


@needs_root
def test_a_fifo_as_output_file_is_refused_without_blocking():
    r, seconds = run_payload("fifo", new_marker(), collect=["out.json"])
    assert r.reason == "bad_output" and r.returncode == 0, (r.reason, r.stderr)
    assert r.refused == {"out.json": "a FIFO"} and r.files == {}
    assert "out.json is a FIFO" in r.describe()
    assert seconds < 5


def test_a_fifo_output_is_refused_without_namespaces_too(tmp_path):
    """The parent-side reader (no launcher: not root) opens outputs O_NONBLOCK as well."""
    from agentskiller.runtime.sandbox import _collect

    os.mkfifo(tmp_path / "out.json")
    (tmp_path / "ok.json").write_text("{}")
    (tmp_path / "link.json").symlink_to("/etc/passwd")
    t = time.monotonic()
    files, refused = _collect(tmp_path, ["out.json", "ok.json", "link.json", "none.json"], 100)
    assert time.monotonic() - t < 1
    assert files == {"ok.json": b"{}"}
    assert refused == {"out.json": "a FIFO", "link.json": "a symbolic link (or a path through one)"}


def _sysv_keys() -> set[int]:
    lines = Path("/proc/sysvipc/shm").read_text().splitlines()[1:]
    return {int(line.split()[0]) for line in lines}


@needs_root
def test_sysv_shared_memory_and_posix_queues_vanish_with_the_run():
    marker = new_marker()
    r, seconds = run_payload("ipc", marker)
    assert r.reason == "ok", r.stderr
    got = __import__("json").loads(r.stdout)
    assert got["big"] == -1 and got["big_errno"] == 22  # 2.4 GB > shmmax = the memory limit: EINVAL
    assert got["small"] >= 0 and got["mq"] >= 0  # allowed, but inside the run's IPC namespace
    assert ipc_key(marker) not in _sysv_keys()  # nothing survives on the host
    if Path("/dev/mqueue").is_dir():
        assert not (Path("/dev/mqueue") / marker).exists()
    assert r.isolation["ipc"] is True
    assert seconds < 5


@needs_root
def test_lock_and_shm_directories_are_not_writable_and_nothing_persists():
    marker = new_marker()
    r, seconds = run_payload("lock_dirs", marker)
    assert r.reason == "ok", r.stderr
    errnos = __import__("json").loads(r.stdout)
    assert set(errnos) == set(LOCK_DIRS)
    for d, err in errnos.items():
        if Path(d).exists():
            assert err in (13, 30), (d, err)  # EACCES (private root-owned tmpfs) or EROFS
        assert not (Path(d) / f".{marker}").exists()
    assert seconds < 5


@needs_root
def test_filling_the_disk_stops_at_the_quota():
    r, seconds = run_payload("disk_fill", new_marker(), disk_mb=32, max_output_bytes=64 << 20, timeout_s=30)
    assert r.reason == "exit", (r.reason, r.stderr[-500:])
    assert "No space left on device" in r.stderr
    assert r.isolation["disk_mb"] == 32
    assert seconds < 15


@needs_root
def test_host_processes_are_invisible():
    import subprocess

    spy = new_marker()
    outside = subprocess.Popen([PY, "-c", "import time; time.sleep(60)", spy])
    try:
        assert marker_processes(spy)  # the host sees it
        r, seconds = run_payload("ps", new_marker(), spy_on=spy)
        assert r.reason == "ok", r.stderr
        got = __import__("json").loads(r.stdout)
        assert got["seen"] == []
        assert got["pids"] == [1, 2]  # the run's init and the program itself
        assert r.isolation["pid"] is True
        assert seconds < 5
    finally:
        outside.kill()
        outside.wait()


@needs_root
def test_the_program_runs_under_the_syscall_filter_with_no_new_privileges():
    """The launcher starts without site-packages (-S) and imports the filter's binding from
    the paths it is given: the kernel must report the filter installed in the program."""
    from agentskiller.runtime.sandbox import seccomp_available

    if not seccomp_available():
        pytest.skip("no seccomp binding or libseccomp on this machine")
    code = "print(''.join(l for l in open('/proc/self/status') if l.startswith(('Seccomp:', 'NoNewPrivs:'))))"
    r = run_sandboxed([PY, "-c", code], timeout_s=20)
    assert r.reason == "ok", r.stderr
    fields = dict(line.split(":\t") for line in r.stdout.split("\n") if ":\t" in line)
    assert fields == {"NoNewPrivs": "1", "Seccomp": "2"}  # 2: a filter is installed
    assert "no syscall filter" not in r.stderr and r.isolation["seccomp"] is True


@needs_root
def test_a_daemon_left_behind_is_killed_when_the_program_ends():
    marker = new_marker()
    head, _ = payload("daemon", marker).rsplit("_t.sleep(3600)\n", 1)
    code = head + "pass\n"  # the program itself ends at once; its daemon would sleep an hour
    r = run_sandboxed([PY, "-c", code], **LIMITS)
    assert r.reason == "ok", r.stderr
    assert marker_processes(marker) == []


@needs_root
def test_a_daemon_dies_and_the_directory_goes_when_the_job_is_sigkilled(tmp_path):
    """The job (here a Python process calling run_sandboxed) is SIGKILLed while the hostile
    program and its setsid daemon run: both die, and the run's directory is removed."""
    import signal
    import subprocess

    marker = new_marker()
    job = (
        "import sys\n"
        "from agentskiller.runtime.sandbox import run_sandboxed\n"
        f"run_sandboxed([sys.executable, '-c', {payload('daemon', marker)!r}], timeout_s=120,\n"
        f"              sandbox_root={str(tmp_path)!r})\n"
    )
    proc = subprocess.Popen([PY, "-c", job], env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"})
    try:
        deadline = time.monotonic() + 20
        while len(marker_processes(marker)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(marker_processes(marker)) >= 2  # the program and its daemon run
        assert list(tmp_path.glob("agentskiller-sbx-*"))
        t = time.monotonic()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 10
        while (marker_processes(marker) or list(tmp_path.glob("agentskiller-sbx-*"))) and time.monotonic() < deadline:
            time.sleep(0.02)
        seconds = time.monotonic() - t
        print(f"\n[sandbox daemon] job SIGKILLed: processes and directory gone in {seconds:.2f} s")
        assert marker_processes(marker) == []
        assert list(tmp_path.glob("agentskiller-sbx-*")) == []
    finally:
        proc.kill()
