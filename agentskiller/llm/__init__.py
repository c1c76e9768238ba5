"""The LLM layer: one client, two providers (offline, openai), a response cache, usage lines.

```python
from agentskiller.llm import LLMClient, LLMError, LLMTransportError
client = LLMClient.from_config(config["llm"], seed=config["seed"], usage_log=logger)
answer = client.generate(task="s04.blueprint_detail", messages=..., schema=Model, context=...)
turn = client.chat(task="rollout.assistant", messages=..., tools=[...])  # -> ChatAnswer
```

``LLMError``: the answer stayed unacceptable (a step may quarantine the unit).
``LLMTransportError`` (endpoint down for the whole retry window) and ``LLMRequestError``
(request refused: key, model, context length) are not ``LLMError`` subclasses: they say
nothing about the unit and must fail the job.

Importing this package does not import ``openai``; the openai provider does that when it
is built.
"""

from .base import (
    LLMConfig,
    LLMContextLengthError,
    LLMError,
    LLMRequestError,
    LLMTransportError,
    ProviderRequest,
    ProviderResponse,
)
from .chat import ChatAnswer, ChatUsage, ToolCall, ToolFunction
from .client import LLMClient, LLMStats
from .extract import extract_code, extract_json

__all__ = [
    "ChatAnswer",
    "ChatUsage",
    "LLMClient",
    "LLMConfig",
    "LLMContextLengthError",
    "LLMError",
    "LLMRequestError",
    "LLMTransportError",
    "LLMStats",
    "ProviderRequest",
    "ProviderResponse",
    "ToolCall",
    "ToolFunction",
    "extract_code",
    "extract_json",
]
