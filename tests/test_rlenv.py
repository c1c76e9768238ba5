"""The episode core (agentskiller.rlenv.episode) and env_version (agentskiller.env_version).

On the default run's outputs (the ``outputs_dir`` fixture: AGENTSKILLER_OUTPUTS or the shared
default run): golden play scores 1.0 on every task, an empty episode scores 0 on every task
that needs a write, the offline agents played through the core pass every task, 16
concurrent episodes on one env keep separate states, and env_version changes when one of
its inputs changes and only then.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections import Counter
from pathlib import Path

import pytest

from agentskiller.env_version import env_parts, env_version, row_env_version, task_hash
from agentskiller.models.blueprint import WRITE_KINDS
from agentskiller.rlenv import EpisodeEnv, EpisodeError, Observation, score_episodes
from agentskiller.rlenv.episode import _WORKERS, ENDED, load_env_rows
from agentskiller.runtime.environment import load_environment
from agentskiller.runtime.worker import bundle_environment
from evaluator.calls import ToolCatalog
from evaluator.play import GoldenUser, golden_steps, resolved_golden_calls


def _envs(outputs: Path) -> list[str]:
    return sorted({r["env"] for r in load_env_rows(outputs)})


def _is_write(outputs: Path, env: EpisodeEnv):
    names = [t["function"]["name"] for t in json.loads(next(iter(env.rows.values()))["tools"])]
    catalog = ToolCatalog.for_env(load_environment(env.server).manifest, [outputs / "blueprints"], names)
    return lambda name: (catalog.tools.get(name) or (None, None))[1] in WRITE_KINDS


def play(env: EpisodeEnv, steps: list[tuple]) -> None:
    """Play ``golden_steps``-style steps through the core: a call is ``call_tool``; an
    assistant message is ``send_message_to_user`` (the scripted user step after it is the
    simulated user's reply, so it is skipped)."""
    i = 0
    while i < len(steps):
        st = steps[i]
        if st[0] == "call":
            env.call_tool(st[1], st[2])
        elif st[0] == "assistant":
            env.send_message_to_user(st[1])
            if i + 1 < len(steps) and steps[i + 1][0] == "user":
                i += 1
        i += 1


@pytest.fixture(scope="module")
def outputs(outputs_dir) -> Path:
    if not (outputs_dir / "dataset" / "train.jsonl").is_file():
        pytest.skip(f"no dataset under {outputs_dir}")
    return outputs_dir


def test_reset_observation_and_errors(outputs):
    name = _envs(outputs)[0]
    with EpisodeEnv(outputs, name) as env:
        tids = env.task_ids()
        assert tids == sorted(r["task_id"] for r in load_env_rows(outputs, name))
        with pytest.raises(EpisodeError):
            env.call_tool("anything", {})
        obs = env.reset(tids[0])
        row = env.row()
        assert isinstance(obs, Observation)
        assert obs.task_id == tids[0]
        assert obs.system == row["messages"][0]["content"]
        assert obs.user_message == row["messages"][1]["content"]
        assert obs.tools == json.loads(row["tools"]) and obs.tools[0]["type"] == "function"
        assert obs.env_version.startswith("ev1-") and obs.env_version == env.env_version()
        # a dataset built by this code carries the same version the live files give
        assert row["env_version"] == obs.env_version
        # malformed calls are tool errors, not exceptions
        assert "error" in json.loads(env.call_tool("no_such_tool", {}))
        assert "not valid JSON" in env.call_tool(obs.tools[0]["function"]["name"], "{oops")
        with pytest.raises(EpisodeError):
            env.reset("no-such-task")
    with pytest.raises(EpisodeError):
        EpisodeEnv(outputs, "NoSuchEnv")


def test_golden_play_scores_one_on_every_task(outputs):
    """Every task of the run, played by its golden calls through the core (the assistant
    asks before each write, a scripted user says yes): reward 1.0 on all of them."""
    played: list[EpisodeEnv] = []
    try:
        for name in _envs(outputs):
            first = EpisodeEnv(outputs, name, user=GoldenUser)
            is_write = _is_write(outputs, first)
            for k, tid in enumerate(first.task_ids()):
                env = first if k == 0 else EpisodeEnv(outputs, name, user=GoldenUser)
                env.reset(tid)
                play(env, golden_steps(env.row(), is_write))
                assert env.done and env.stop_reason == "user_stop"
                assert env.final_state_hash == env.row()["final_state_hash"], tid
                played.append(env)
            # score() (one evaluator call) agrees with the batch below
            assert first.score().reward == 1.0, first.score().diagnostics["detail"]
        scores = score_episodes(played)
        failed = [
            (e.env_name, e.row()["task_id"], s.category, s.diagnostics["detail"])
            for e, s in zip(played, scores)
            if s.reward != 1.0
        ]
        assert not failed, failed
        assert len(scores) == len(load_env_rows(outputs))
        assert all(s.passed and s.category is None and s.diagnostics["scores"]["end_state"] for s in scores)
    finally:
        for e in played:
            e.close()


def test_empty_episode_scores_zero_on_every_task_that_needs_a_write(outputs):
    envs = []
    try:
        for name in _envs(outputs):
            for tid in EpisodeEnv(outputs, name).task_ids():
                env = EpisodeEnv(outputs, name)
                env.reset(tid)
                envs.append(env)
        scores = score_episodes(envs)
        writes = [(e, s) for e, s in zip(envs, scores) if e.row()["final_state_hash"] != e.row()["initial_state_hash"]]
        assert writes, "the default run has action tasks"
        assert all(s.reward == 0.0 and not s.passed for _, s in writes)
        assert Counter(s.category for _, s in writes) == {"missing_write": len(writes)}
        assert all(s.diagnostics["stop_reason"] == "assistant_stop" for _, s in writes)
    finally:
        for e in envs:
            e.close()


def test_offline_agents_pass_through_the_core(outputs):
    """The offline assistant (it sees only the messages and the tools) and the offline user
    play the first tasks of every env through the core, as the rollouts do: every episode
    passes (the rollouts pass all of them; four per env keep the test short)."""
    from rollout.offline_assistant import OfflineAssistant

    envs = []
    try:
        for name in _envs(outputs):
            for tid in EpisodeEnv(outputs, name).task_ids()[:4]:
                env = EpisodeEnv(outputs, name)
                obs = env.reset(tid)
                assistant = OfflineAssistant()
                while not env.done:
                    # as rollout.loop plays it: tool calls until a message without any,
                    # which goes to the user
                    msg = assistant.respond(env.messages, obs.tools)
                    calls = msg.get("tool_calls") or []
                    if calls:
                        env.add_assistant_message(msg.get("content") or "")
                        for c in calls:
                            env.call_tool(c["function"]["name"], c["function"]["arguments"])
                    else:
                        env.send_message_to_user(msg.get("content") or "")
                envs.append(env)
        scores = score_episodes(envs)
        failed = [(e.row()["task_id"], s.category) for e, s in zip(envs, scores) if not s.passed]
        assert not failed, failed
    finally:
        for e in envs:
            e.close()


def test_sixteen_concurrent_episodes_keep_separate_states(outputs):
    """16 episodes of one env in 16 threads, step by step in lockstep, on one shared session
    worker: each ends in its own task's final state; the one with a wrong write gets 0 and
    its failure category, and the others are not affected."""
    rows = [r for r in load_env_rows(outputs) if r["task_kind"] == "action"]
    name = Counter(r["env"] for r in rows).most_common(1)[0][0]
    tasks = [r["task_id"] for r in rows if r["env"] == name]
    envs = [EpisodeEnv(outputs, name, user=GoldenUser) for _ in range(16)]
    is_write = _is_write(outputs, envs[0])
    wrong = 5
    scripts = []
    for i, env in enumerate(envs):
        env.reset(tasks[i % len(tasks)])
        steps = golden_steps(env.row(), is_write)
        if i == wrong:  # the last write with one argument changed
            k = max(j for j, st in enumerate(steps) if st[0] == "call" and is_write(st[1]))
            args = dict(steps[k][2])
            texts = sorted(a for a, v in args.items() if isinstance(v, str))
            key = next((a for a in texts if not a.endswith("_id")), texts[0])
            args[key] = f"{args[key]}-wrong"
            steps[k] = ("call", steps[k][1], args)
        scripts.append(steps)
    transports = {id(e._transport) for e in envs}
    assert len(transports) == 1, "one session worker serves every episode of the env"
    assert len({e._key for e in envs}) == 16
    barrier = threading.Barrier(16)
    errors: list[BaseException] = []
    longest = max(len(s) for s in scripts)

    def run(i: int) -> None:
        try:
            steps = scripts[i] + [("noop",)] * (longest - len(scripts[i]))
            for st in steps:
                barrier.wait(timeout=120)
                if st[0] != "noop":
                    play(envs[i], [st])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    try:
        for i, env in enumerate(envs):
            live = env._transport.state_hash(env._key)
            assert live == env.final_state_hash
            if i != wrong:
                assert live == env.row()["final_state_hash"], i
        scores = score_episodes(envs)
        assert [s.reward for i, s in enumerate(scores) if i != wrong] == [1.0] * 15
        bad = scores[wrong]
        assert bad.reward == 0.0 and not bad.passed
        assert bad.category in ("wrong_write_args", "missing_write"), bad.diagnostics["detail"]
        print(f"wrong write: {bad.category}: {bad.diagnostics['detail']}")
        # a session that is dropped is gone; the others still answer
        envs[0].close()
        assert envs[1]._transport.state_hash(envs[1]._key) == envs[1].final_state_hash
    finally:
        for e in envs:
            e.close()
    assert not _WORKERS.by_server, "the worker stops with its last env"


def test_user_turns_and_end_of_conversation(outputs):
    """The offline user answers; its stop ends the episode; later calls are not run."""
    name = _envs(outputs)[0]
    with EpisodeEnv(outputs, name, max_turns=3) as env:
        obs = env.reset(env.task_ids()[0])
        reply = env.send_message_to_user("Hello! How can I help you today?")
        assert reply and env.messages[-1] == {"role": "user", "content": reply}
        while not env.done:
            reply = env.send_message_to_user("Could you tell me more?")
        assert ENDED in reply and env.stop_reason in ("max_turns", "user_stop")
        n = len(env.messages)
        assert ENDED in env.call_tool(obs.tools[0]["function"]["name"], {})
        assert ENDED in env.send_message_to_user("still there?")
        assert len(env.messages) == n
        # a new reset is a fresh episode
        env.reset(env.task_ids()[0])
        assert not env.done and len(env.messages) == 2


# --------------------------------------------------------------------------- env_version
def _copy_env(server: Path, dest: Path) -> Path:
    """A private copy of an env's files (manifest, tables, tool code)."""
    files, manifest_rel = bundle_environment(load_environment(server))
    for rel, src in files.items():
        p = dest / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(src, bytes):
            p.write_bytes(src)
        else:
            shutil.copyfile(src, p)
    return dest / manifest_rel


def test_env_version_changes_when_an_input_changes_and_only_then(outputs, tmp_path, monkeypatch):
    name = sorted(r["env"] for r in load_env_rows(outputs) if "+" not in r["env"])[0]
    row = next(r for r in load_env_rows(outputs, name) if r["task_kind"] == "action")
    policy = row["messages"][0]["content"]
    manifest = _copy_env(EpisodeEnv(outputs, name).server, tmp_path / "a")

    def version(manifest_path: Path = manifest, policy: str = policy, row: dict = row) -> str:
        return row_env_version(row, env_parts(load_environment(manifest_path), policy))

    base = version()
    assert base == version(), "deterministic"
    assert base.startswith("ev1-") and len(base) == 4 + 16
    # the same files elsewhere, tables re-serialized (other key order, indentation): same
    moved = _copy_env(manifest, tmp_path / "b")
    m = json.loads(moved.read_text())
    for rel in m["tables"].values():
        t = moved.parent / rel
        data = json.loads(t.read_text())
        t.write_text(json.dumps(data, indent=4, sort_keys=False)[::1])
    assert version(moved) == base
    # the row's own env_version field does not feed itself
    assert version(row={**row, "env_version": "ev1-0000000000000000"}) == base

    # server code
    mod = manifest.parent / next(iter(json.loads(manifest.read_text())["tools_modules"].values()))
    original = mod.read_bytes()
    mod.write_bytes(original + b"\n# changed\n")
    assert version() != base
    mod.write_bytes(original)
    assert version() == base
    # the manifest's clock changes what the tools do
    mdoc = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**mdoc, "simulation_time": "2031-01-01T00:00:00Z"}))
    assert version() != base
    manifest.write_text(json.dumps(mdoc))
    assert version() == base
    # database: one value of one record
    table = manifest.parent / sorted(mdoc["tables"].values())[0]
    tdata = json.loads(table.read_text())
    records = tdata if isinstance(tdata, list) else tdata.get("records") or tdata.get("rows")
    assert isinstance(records, list) and records, f"unexpected table layout in {table}"
    rec = records[0]
    field_name = next(k for k, v in sorted(rec.items()) if isinstance(v, str) and not k.endswith("_id"))
    saved = table.read_text()
    rec[field_name] = rec[field_name] + " (changed)"
    table.write_text(json.dumps(tdata))
    assert version() != base
    table.write_text(saved)
    assert version() == base
    # policy: the env's own version reads the given text, a row's its system message
    env_base = env_version(env_parts(load_environment(manifest), policy))
    assert env_version(env_parts(load_environment(manifest), policy + " ")) != env_base
    other_policy = {**row, "messages": [{"role": "system", "content": policy + "!"}, row["messages"][1]]}
    assert version(row=other_policy) != base
    # task: a golden argument, the first message
    calls = json.loads(json.dumps(row["golden_calls"]))
    calls[0]["function"]["arguments"] = json.dumps({"x": 1})
    assert version(row={**row, "golden_calls": calls}) != base
    assert version(row={**row, "messages": [row["messages"][0], {"role": "user", "content": "hi"}]}) != base
    assert task_hash(row) == task_hash(json.loads(json.dumps(row)))
    # the simulator's prompt version
    prompts = tmp_path / "prompts"
    shutil.copytree(Path(__import__("agentskiller.prompts", fromlist=["x"]).__file__).parent, prompts)
    text = (prompts / "rollout.yaml").read_text()
    assert text.startswith("version: ")
    monkeypatch.setenv("AGENTSKILLER_PROMPTS_DIR", str(prompts))
    assert version() == base
    (prompts / "rollout.yaml").write_text(text.replace("version: ", "version: 9", 1))
    assert version() != base
    monkeypatch.delenv("AGENTSKILLER_PROMPTS_DIR")
    assert version() == base
    with pytest.raises(ValueError):
        env_version({"code": "x", "color": "y"})


def test_dataset_rows_and_stats_carry_env_version(outputs):
    stats = json.loads((outputs / "dataset" / "tasks_stats.json").read_text())
    for name in _envs(outputs):
        env = EpisodeEnv(outputs, name)
        for tid in env.task_ids():
            assert env.row(tid)["env_version"] == env.env_version(tid)
        assert stats["per_env"][name]["env_version"] == env_version(env.env_parts())
        assert len({env.row(t)["env_version"] for t in env.task_ids()}) == len(env.task_ids())
        env.close()
    row = load_env_rows(outputs)[0]
    assert resolved_golden_calls(row)


def test_worker_outlives_the_thread_that_started_it(outputs):
    """A trainer may reset from a short-lived thread: the shared worker it started must not
    die with that thread (the sandbox's parent-death signal follows the forking thread)."""
    import time

    name = _envs(outputs)[-1]
    first = EpisodeEnv(outputs, name)
    tids = first.task_ids()
    t = threading.Thread(target=first.reset, args=(tids[0],))
    t.start()
    t.join()
    time.sleep(1.0)  # time for a parent-death signal to land, were it armed on that thread
    with EpisodeEnv(outputs, name) as second:
        obs = second.reset(tids[-1])
        assert first._transport is second._transport and first._transport._proc.poll() is None
        # the first episode goes on after its thread ended: its calls reach the worker
        first.call_tool(obs.tools[0]["function"]["name"], {})
        assert not first.done
    first.close()
