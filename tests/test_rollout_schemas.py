"""The rollout episode and verdict schemas are the pydantic models' own (regenerate them with
the snippet in this test when a model changes)."""

from __future__ import annotations

import json

import pytest

from agentskiller.io import SCHEMAS_DIR
from agentskiller.models.episodes import Episode, Verdict


@pytest.mark.parametrize("model,name", [(Episode, "rollout_episode"), (Verdict, "verdict")])
def test_schema_file_is_the_model_schema(model, name):
    on_disk = json.loads((SCHEMAS_DIR / f"{name}.schema.json").read_text())
    generated = model.model_json_schema()
    for key in ("title", "description", "$schema", "$id"):
        on_disk.pop(key, None)
        generated.pop(key, None)
    assert on_disk == json.loads(json.dumps(generated, sort_keys=True)), (
        f"schemas/{name}.schema.json is stale: regenerate it from {model.__name__}.model_json_schema()"
    )
