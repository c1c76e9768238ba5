"""A real TRL GRPO step on CPU on a generated env (agentskiller.rlenv.trl).

Needs the ``trl`` extra (``pip install -e '.[trl]' torch==2.13.0``); skips without it. Nothing
is downloaded: the tokenizer is trained here with ``tokenizers`` on the dataset's own text,
and the model is a tiny randomly initialized Qwen2 built from a ``transformers`` config.

What runs for real: ``GRPOTrainer(environment_factory=...)`` probes the class built by
:func:`environment_factory` and renders its methods as tools in the chat template; for every
rollout TRL calls ``reset(**row)``, generates with the model, parses tool calls from the
completion with its own response parser, calls the env's methods (which run the generated
tool code in the env's sandboxed session worker and the offline user simulator), feeds the
results back and generates again until a turn has no tool call; the reward function scores
every episode with the evaluator; one optimizer step is taken.

What is scripted, and why: a randomly initialized model never writes a well-formed tool call,
so for two of the four rollouts the *tokens* of each turn are replaced after the model
generated them (a wrapper around ``GRPOTrainer._generate_single_turn``): rollout 0 writes the
turns the offline assistant plays on the task (tool calls, and messages to the user through
``send_message_to_user``; the offline assistant sees only the messages and the tools) and
the offline user answers it (reward 1.0), rollout 1 answers without any
tool (reward 0.0). Everything after generation - parsing, tool dispatch, the tool results and
masks, the rewards, advantages, loss and the optimizer step - is TRL's own code path, and the
other two rollouts are the random model's own text.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

trl = pytest.importorskip("trl")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")
datasets = pytest.importorskip("datasets")

from agentskiller.rlenv import EpisodeEnv, load_env_rows  # noqa: E402
from agentskiller.rlenv import trl as rltrl  # noqa: E402

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>"]  # fmt: skip


def _pick_task(outputs: Path) -> tuple[str, str, list[list[tuple[str, dict]]]]:
    """The scripted turns of rollout 0: the offline assistant (it sees only the messages and
    the tools) played through the core with the offline user, on the first action task
    (fewest golden calls) it solves. One turn = the tool calls of one assistant message; a
    message to the user is a ``send_message_to_user`` call."""
    from rollout.offline_assistant import OfflineAssistant

    rows = sorted(
        (r for r in load_env_rows(outputs) if r["task_kind"] == "action"),
        key=lambda r: (len(r["golden_calls"]), r["env"], r["task_id"]),
    )
    for r in rows[:10]:
        with EpisodeEnv(outputs, r["env"]) as env:
            obs = env.reset(r["task_id"])
            assistant, turns = OfflineAssistant(), []
            while not env.done and len(turns) < 40:
                msg = assistant.respond(env.messages, obs.tools)
                calls = msg.get("tool_calls") or []
                if calls and msg.get("content"):
                    break  # text beside tool calls: TRL would not hand it to the env
                turn = []
                for c in calls:
                    args = json.loads(c["function"]["arguments"] or "{}")
                    env.call_tool(c["function"]["name"], args)
                    turn.append((c["function"]["name"], args))
                if not calls:
                    env.send_message_to_user(msg.get("content") or "")
                    turn.append(("send_message_to_user", {"text": msg.get("content") or ""}))
                turns.append(turn)
            if env.done and env.score().reward == 1.0:
                return r["env"], r["task_id"], turns
    pytest.fail("the offline assistant solves none of the shortest action tasks through the core")


def _tokenizer(outputs: Path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    from trl.chat_template_utils import qwen2_5_chat_template

    rows = load_env_rows(outputs)
    texts = sorted({r["messages"][0]["content"] for r in rows}) + [r["messages"][1]["content"] for r in rows]
    texts += sorted({r["tools"] for r in rows}) + [json.dumps(r["scenario"]) for r in rows]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=2048, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", padding_side="left"
    )
    fast.chat_template = qwen2_5_chat_template
    return fast


@pytest.fixture(scope="module")
def outputs(outputs_dir) -> Path:
    if not (outputs_dir / "dataset" / "train.jsonl").is_file():
        pytest.skip(f"no dataset under {outputs_dir}")
    return outputs_dir


def test_env_methods_are_trl_tools(outputs):
    """The factory's methods are the env's tools, as TRL renders them (get_json_schema):
    same names, parameters, required ones, types and enums, plus send_message_to_user."""
    name = sorted({r["env"] for r in load_env_rows(outputs)})[0]
    factory = rltrl.environment_factory(outputs, name)
    row = load_env_rows(outputs, name)[0]
    expected = {t["function"]["name"]: t["function"] for t in json.loads(row["tools"])}
    schemas = {s["function"]["name"]: s["function"] for s in rltrl.tool_schemas(factory)}
    assert set(schemas) == set(expected) | {"send_message_to_user"}
    for tool, fn in expected.items():
        got = schemas[tool]["parameters"]
        want = fn.get("parameters") or {}
        assert set(got.get("properties", {})) == set(want.get("properties", {})), tool
        assert set(got.get("required", [])) == set(want.get("required", [])), tool
        for p, s in want.get("properties", {}).items():
            assert got["properties"][p].get("type") == s.get("type"), (tool, p)
            assert got["properties"][p].get("enum") == s.get("enum"), (tool, p)
    env = factory()
    try:
        assert env.reset(task_id=row["task_id"], prompt=row["messages"], env=row["env"]) is None
        auth = next(t for t in expected if "authorize" in t)
        assert "error" in env.__getattribute__(auth)()  # a missing argument is the tool's error
        assert env.send_message_to_user(text="Hello, how can I help?")
    finally:
        env._close()


def test_grpo_step_on_cpu(outputs, tmp_path, monkeypatch):
    from transformers import Qwen2Config, Qwen2ForCausalLM
    from trl import GRPOConfig, GRPOTrainer

    t0 = time.perf_counter()
    monkeypatch.setenv("TRL_EXPERIMENTAL_SILENCE", "1")
    torch.manual_seed(0)
    env_name, task_id, turns = _pick_task(outputs)
    tok = _tokenizer(outputs)
    model = Qwen2ForCausalLM(
        Qwen2Config(
            vocab_size=len(tok),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=32768,
            tie_word_embeddings=True,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
        )
    )
    before = {k: v.detach().clone() for k, v in model.named_parameters()}

    ds = rltrl.trl_dataset(outputs, env_name)
    ds = ds.filter(lambda r: r["task_id"] == task_id)
    assert ds.num_rows == 1

    scored: list[list[float]] = []
    real_score = rltrl.score_episodes

    def counting_score(envs):
        out = real_score(envs)
        scored.append([s.reward for s in out])
        return out

    monkeypatch.setattr(rltrl, "score_episodes", counting_score)

    args = GRPOConfig(
        output_dir=str(tmp_path / "grpo"),
        per_device_train_batch_size=4,
        num_generations=4,
        max_completion_length=1536,
        max_steps=1,
        learning_rate=1e-3,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        bf16=False,
        seed=0,
        temperature=1.0,
        max_tool_calling_iterations=len(turns) + 2,
    )
    factory = rltrl.environment_factory(outputs, env_name)
    trainer = GRPOTrainer(
        model=model,
        args=args,
        processing_class=tok,
        train_dataset=ds,
        reward_funcs=rltrl.episode_reward,
        environment_factory=factory,
    )
    tool_names = {getattr(t, "__name__", "") for t in trainer.tools}
    assert {n for turn in turns for n, _ in turn} <= tool_names and "send_message_to_user" in tool_names

    # -- the scripted turns (see the module docstring) ---------------------------------
    real_generate = trainer._generate_single_turn
    opener = tok.encode("<|im_start|>assistant\n", add_special_tokens=False)

    def turn_ids(k: int) -> list[int]:
        if k < len(turns):
            text = "\n".join(
                f"<tool_call>\n{json.dumps({'name': n, 'arguments': a})}\n</tool_call>" for n, a in turns[k]
            )
        else:
            text = "Thank you, goodbye!"
        return tok.encode(text + "<|im_end|>", add_special_tokens=False)

    def count(seq: list[int], sub: list[int]) -> int:
        n = len(sub)
        return sum(seq[i : i + n] == sub for i in range(len(seq) - n + 1))

    first = turn_ids(0)
    state = {"calls": 0, "base": 0}

    def scripted(prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
        out, logprobs = real_generate(prompt_ids, images, multimodal_fields, num_generations, has_tool_images)
        out = [list(c) for c in out]
        if state["calls"] == 0:  # the first turn of every rollout
            state["base"] = count(list(prompt_ids[0]), opener)
            out[0] = first
            out[1] = tok.encode("I'm sorry, I can't help with that.<|im_end|>", add_special_tokens=False)
        else:  # after tool results: only the rollouts that called a tool come here
            for i, ids in enumerate(prompt_ids):
                ids = list(ids)
                if count(ids, first[:-1]):  # rollout 0: its k-th turn follows k assistant turns
                    out[i] = turn_ids(count(ids, opener) - state["base"])
        state["calls"] += 1
        return out, logprobs

    monkeypatch.setattr(trainer, "_generate_single_turn", scripted)
    trainer.train()

    # -- what happened -------------------------------------------------------------------
    assert trainer.state.global_step == 1
    changed = [k for k, v in model.named_parameters() if not torch.equal(v.detach(), before[k])]
    assert changed, "the optimizer step changed no parameter"
    assert scored, "the rewards did not come from score_episodes"
    rewards = scored[-1]
    assert len(rewards) == 4 and rewards[0] == 1.0 and rewards[1] == 0.0, rewards
    envs = trainer.environments
    golden = envs[0].episode
    assert golden.row()["task_id"] == task_id and golden.stop_reason == "user_stop"
    assert golden.final_state_hash == golden.row()["final_state_hash"]
    calls = [m["tool_calls"][0]["function"]["name"] for m in golden.messages if m.get("tool_calls")]
    assert calls == [n for turn in turns for n, _ in turn if n != "send_message_to_user"]
    users = [m["content"] for m in golden.messages[2:] if m["role"] == "user"]
    assert any(u.lower().startswith("yes") for u in users), users  # the offline user confirmed the write
    assert envs[0].last_score.passed and envs[1].last_score.category == "missing_write"
    logged = trainer.state.log_history[0]
    assert logged["tools/call_frequency"] > 0
    print(
        f"\nGRPO step on {env_name}/{task_id}: rewards {rewards}, {len(changed)} parameter tensors changed, "
        f"tool calls/rollout {logged['tools/call_frequency']:.2f}, {time.perf_counter() - t0:.1f} s"
    )
