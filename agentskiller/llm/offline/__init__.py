"""Offline provider: register one handler per task next to its step.

```python
from agentskiller.llm.offline import handler, OfflineRequest

@handler("s04.blueprint_detail")
def blueprint_detail(req: OfflineRequest) -> dict | str:
    ...
```

Handler modules live in :mod:`agentskiller.llm.offline.handlers` and are imported
automatically the first time the offline provider needs a handler.
"""

from .provider import (
    OfflineProvider,
    OfflineRequest,
    get_handler,
    handler,
    load_handlers,
    registered_tasks,
    request_rng,
    run_chat_handler,
    run_handler,
    unregister,
)

__all__ = [
    "OfflineProvider",
    "OfflineRequest",
    "get_handler",
    "handler",
    "load_handlers",
    "registered_tasks",
    "request_rng",
    "run_chat_handler",
    "run_handler",
    "unregister",
]
