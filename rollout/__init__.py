"""Rollouts: a simulated user and an assistant play each dataset row (DESIGN.md section 7).

```python
from rollout import RolloutSettings, run_rollouts, load_rows
rows = load_rows("outputs", env="DentalCareDesk")
summary = run_rollouts(rows, "outputs", "rollouts/DentalCareDesk.jsonl", RolloutSettings(episodes_per_task=2))
```

``python -m rollout --outputs-dir outputs --env DentalCareDesk --out rollouts/DentalCareDesk.jsonl``
does the same from the command line. Without an LLM client the offline simulators play
both sides (:mod:`rollout.offline_user`, :mod:`rollout.offline_assistant`): deterministic
demo and test doubles, not models. Output lines are
:class:`agentskiller.models.episodes.Episode`.
"""

from .check import solved
from .loop import episode_id, load_rows, play_episode, read_episodes, run_rollouts
from .settings import RolloutSettings

__all__ = ["RolloutSettings", "run_rollouts", "play_episode", "load_rows", "read_episodes", "episode_id", "solved"]
