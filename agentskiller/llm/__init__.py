"""The LLM layer: one client, two providers (offline, openai), a response cache, usage lines.

```python
from agentskiller.llm import LLMClient, LLMError
client = LLMClient.from_config(config["llm"], seed=config["seed"], usage_log=logger)
answer = client.generate(task="s04.blueprint_detail", messages=..., schema=Model, context=...)
```

Importing this package does not import ``openai``; the openai provider does that when it
is built.
"""

from .base import LLMConfig, LLMError, ProviderRequest, ProviderResponse
from .client import LLMClient, LLMStats
from .extract import extract_code, extract_json

__all__ = [
    "LLMClient",
    "LLMConfig",
    "LLMError",
    "LLMStats",
    "ProviderRequest",
    "ProviderResponse",
    "extract_code",
    "extract_json",
]
