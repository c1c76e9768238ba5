"""TRL adapter: a generated env as ``GRPOTrainer(environment_factory=...)``.

::

    from trl import GRPOConfig, GRPOTrainer
    from agentskiller.rlenv.trl import environment_factory, episode_reward, trl_dataset

    trainer = GRPOTrainer(model=model, args=GRPOConfig(...), processing_class=tokenizer,
                          train_dataset=trl_dataset("outputs", "DentalCareDesk"),
                          environment_factory=environment_factory("outputs", "DentalCareDesk"),
                          reward_funcs=episode_reward)

TRL's contract (trl >= 1.x, ``GRPOTrainer``): the factory is called with no arguments, one
instance per concurrent rollout; ``reset(**row)`` gets the dataset row's columns before each
rollout; every public method of the class is a tool, its JSON schema read from the method's
signature and Google-style docstring (``transformers.utils.get_json_schema``); TRL's loop
generates, runs the tool calls it parses, appends the results and generates again until a
turn has no tool call; a tool's exception becomes its result (``{"error": ...}``).

:func:`environment_factory` builds such a class for one env: one method per tool of the env
(the dataset row's OpenAI tools: names, descriptions, parameter types, enums, which are
required), plus ``send_message_to_user(text)``, the conversation with the simulated user as a
tool (TRL's loop ends when the model stops calling tools, so talking to the user must be
one). Each instance wraps an :class:`~agentskiller.rlenv.episode.EpisodeEnv` (its own keyed
state on the env's one sandboxed session worker). :func:`environment_factories` does this for
several envs, for TRL's ``{name: factory}`` form with an ``environment`` column (each row
then sees only its env's tools).

:func:`episode_reward` is the reward function: it records each rollout's last assistant text
(when the model ended without a tool call: a lookup's answer or a refusal may be in it), then
scores every episode of the batch with one evaluator call (:func:`score_episodes`): 1.0 when
the evaluator passes the episode, else 0.0.

Loss masking: the user's replies reach the model as ``send_message_to_user`` results, i.e.
tool messages, and TRL masks every tool result out of the loss (``tool_mask`` 0), so the
simulated user's turns are never trained on; only the model's own tokens are.

The class needs neither trl nor torch to be built or used (the tests of the episode core use
it without them); they are needed for training (``pip install -e '.[trl]'``).
"""

from __future__ import annotations

import inspect
import json
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .episode import SEND_MESSAGE_TOOL, EpisodeEnv, load_env_rows, score_episodes

__all__ = ["AgentSkillerEnvironment", "environment_factory", "environment_factories", "episode_reward", "trl_dataset"]

_JSON_TYPES: dict[str, Any] = {
    "string": str,
    "integer": int,
    "number": float,
    "boolean": bool,
    "array": list,
    "object": dict,
    "null": type(None),
}
_RESERVED = {"reset", "get_reward", "send_message_to_user", "close"}


def _py_type(schema: dict) -> Any:
    """A Python type hint for a JSON Schema (what ``get_json_schema`` turns back into it)."""
    t = schema.get("type")
    if "enum" in schema and t is None:
        t = "string"
    if isinstance(t, list):
        types = tuple(_py_type({**schema, "type": x}) for x in t)
        return typing.Union[types] if len(types) > 1 else types[0]  # noqa: UP007 (built at run time)
    if t == "array":
        item = schema.get("items") or {}
        return list[_py_type(item)] if item.get("type") in _JSON_TYPES and item.get("type") != "array" else list
    return _JSON_TYPES.get(t, Any)


def _one_line(text: str) -> str:
    return " ".join(str(text or "").split())


def _tool_method(tool: dict) -> Callable:
    """A method named after the tool, with its parameters as keyword arguments (their types
    and descriptions in the signature and docstring), that calls the tool in the episode."""
    fn = tool["function"]
    name = fn["name"]
    params = fn.get("parameters") or {}
    props: dict[str, dict] = params.get("properties") or {}
    required = set(params.get("required") or [])

    def method(self, **arguments: Any) -> str:
        return self._call(name, arguments)

    sig_params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    annotations: dict[str, Any] = {}
    doc_args = []
    for pname, pschema in sorted(props.items(), key=lambda kv: (kv[0] not in required, kv[0])):
        hint = _py_type(pschema)
        annotations[pname] = hint
        default = inspect.Parameter.empty if pname in required else None
        sig_params.append(inspect.Parameter(pname, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=hint))
        desc = _one_line(pschema.get("description") or pname.replace("_", " "))
        if pschema.get("enum"):
            desc += f" (choices: {json.dumps(list(pschema['enum']))})"
        doc_args.append(f"    {pname}: {desc}")
    annotations["return"] = str
    method.__name__ = name
    method.__qualname__ = f"AgentSkillerEnvironment.{name}"
    method.__signature__ = inspect.Signature(sig_params, return_annotation=str)  # type: ignore[attr-defined]
    method.__annotations__ = annotations
    doc = _one_line(fn.get("description") or name.replace("_", " "))
    if doc_args:
        doc += "\n\nArgs:\n" + "\n".join(doc_args)
    method.__doc__ = doc + "\n\nReturns:\n    The tool's result as JSON text, or an error."
    return method


class AgentSkillerEnvironment:
    """Base of the classes :func:`environment_factory` builds (one per env); see the module
    docstring. Class attributes set by the factory: ``outputs_dir``, ``env_name``,
    ``episode_options`` (keyword arguments of :class:`EpisodeEnv`)."""

    outputs_dir: str | Path = "outputs"
    env_name: str = ""
    episode_options: dict = {}

    def __init__(self) -> None:
        self.episode = EpisodeEnv(self.outputs_dir, self.env_name, **dict(self.episode_options))
        self.last_score = None

    def reset(self, task_id: str | None = None, **row: Any) -> None:
        """Start the episode of the dataset row's task (``task_id``, or the row's ``id``)."""
        key = task_id or row.get("id")
        if key is None:
            raise ValueError("reset needs the row's task_id (trl_dataset rows carry it)")
        self.episode.reset(str(key))
        self.last_score = None
        return None  # the row's prompt already holds the policy and the first message

    def send_message_to_user(self, text: str) -> str:
        """Send a message to the user (the customer) and get their reply. Use it to ask for information, to ask for confirmation before a change, and to give the final answer.

        Args:
            text: the message to the user

        Returns:
            The user's reply.
        """
        return self.episode.send_message_to_user(text)

    def _call(self, name: str, arguments: dict) -> str:
        return self.episode.call_tool(name, arguments)

    def _close(self) -> None:
        """Free the episode's state now (private: TRL makes every public method a tool)."""
        self.episode.close()


def environment_factory(outputs_dir: str | Path, env_name: str, **episode_options: Any) -> type:
    """A class for ``GRPOTrainer(environment_factory=...)`` on one env: its tools as methods,
    plus ``send_message_to_user``. ``episode_options`` go to :class:`EpisodeEnv` (``llm``,
    ``seed``, ``max_turns``, ``sandbox``, ...)."""
    rows = load_env_rows(outputs_dir, env_name)
    if not rows:
        raise ValueError(f"{env_name}: no dataset rows under {outputs_dir}")
    tools: dict[str, dict] = {}
    for r in rows:
        for t in json.loads(r["tools"]) if isinstance(r["tools"], str) else r["tools"]:
            tools.setdefault(t["function"]["name"], t)
    namespace: dict[str, Any] = {
        "outputs_dir": str(Path(outputs_dir).resolve()),
        "env_name": env_name,
        "episode_options": dict(episode_options),
        "__doc__": f"The {env_name} env for TRL: its tools and send_message_to_user.",
    }
    for name, tool in sorted(tools.items()):
        if name in _RESERVED or name.startswith("_") or name in namespace:
            raise ValueError(f"{env_name}: tool name {name!r} clashes with the adapter's own methods")
        namespace[name] = _tool_method(tool)
    cls_name = "".join(ch for ch in env_name if ch.isalnum()) + "Environment"
    return type(cls_name, (AgentSkillerEnvironment,), namespace)


def environment_factories(outputs_dir: str | Path, envs: Sequence[str], **episode_options: Any) -> dict[str, type]:
    """``{env: class}`` for TRL's multi-environment form (rows carry ``environment``)."""
    return {e: environment_factory(outputs_dir, e, **episode_options) for e in envs}


def tool_schemas(factory: type) -> list[dict]:
    """The OpenAI tool schemas TRL will show the model for ``factory``'s methods (through
    ``transformers.utils.get_json_schema``; needs transformers)."""
    from transformers.utils import get_json_schema

    inst = factory.__new__(factory)
    return [
        get_json_schema(getattr(inst, n))
        for n, _ in inspect.getmembers(factory, predicate=inspect.isfunction)
        if n not in ("reset", "get_reward") and not n.startswith("_")
    ]


def _final_text(completion: Any) -> str:
    """The last assistant message's text when the rollout ended without a tool call."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion:
        last = completion[-1]
        if isinstance(last, dict) and last.get("role") == "assistant" and not last.get("tool_calls"):
            content = last.get("content")
            return content if isinstance(content, str) else ""
    return ""


def episode_reward(environments: Sequence[AgentSkillerEnvironment], completions: Sequence | None = None, **_: Any):
    """TRL reward function: the evaluator's verdict per rollout (1.0 passed, 0.0 not), the
    batch scored in one evaluator call. Each environment keeps its :class:`Score` as
    ``last_score`` (category, diagnostics)."""
    episodes = []
    for i, env in enumerate(environments):
        if completions is not None and i < len(completions):
            env.episode.add_assistant_message(_final_text(completions[i]))
        episodes.append(env.episode)
    scores = score_episodes(episodes)
    for env, s in zip(environments, scores):
        env.last_score = s
    return [s.reward for s in scores]


def trl_dataset(outputs_dir: str | Path, envs: str | Sequence[str] | None = None, *, multi: bool | None = None):
    """The dataset rows as a ``datasets.Dataset`` for GRPO: ``prompt`` (the policy as the
    system message, the user's first message), ``task_id``, ``env`` and ``env_version``;
    plus ``environment`` (the env) for TRL's multi-environment form (``multi``: default
    when more than one env)."""
    from datasets import Dataset

    names = [envs] if isinstance(envs, str) else list(envs) if envs is not None else None
    rows = [r for r in load_env_rows(outputs_dir) if names is None or r["env"] in names]
    multi = (len({r["env"] for r in rows}) > 1) if multi is None else multi
    data: dict[str, list] = {"prompt": [], "task_id": [], "env": [], "env_version": []}
    if multi:
        data["environment"] = []
    for r in rows:
        data["prompt"].append([{"role": m["role"], "content": m["content"]} for m in r["messages"]])
        data["task_id"].append(r["task_id"])
        data["env"].append(r["env"])
        data["env_version"].append(r.get("env_version") or "")
        if multi:
            data["environment"].append(r["env"])
    return Dataset.from_dict(data)


#: the user tool's schema, as the episode core states it (the method's docstring says the same)
USER_TOOL = SEND_MESSAGE_TOOL
