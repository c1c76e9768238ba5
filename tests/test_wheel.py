"""A built wheel is a working install: schemas, prompts and the offline catalogue travel with it.

The wheel is built from the checkout and unpacked into a folder of its own (``pip install
--target``); a step then runs from there, in a directory outside the checkout, with nothing of
the checkout on ``sys.path``. Its dependencies come from the test environment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

STEP = r"""
import json, sys
from pathlib import Path
import agentskiller, agentskiller.io as io
from agentskiller.jobs import StepContext
from agentskiller.steps.catalog import s01_topics

out = Path(sys.argv[1])
cfg = {"seed": 7, "outputs_dir": str(out), "topics": {"seeds": ["travel", "finance"], "target_count": 4},
       "llm": {"provider": "offline", "cache_dir": str(out / "cache")}}
ctx = StepContext.from_paths("s01", cfg, outputs={"topics": out / "topics.json"})
s01_topics.run(ctx)
print(json.dumps({"package": agentskiller.__file__, "schemas": str(io.SCHEMAS_DIR)}))
"""


@pytest.mark.slow
def test_wheel_install_runs_s01(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(REPO)],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    [wheel] = list(wheels.glob("agentskiller-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "agentskiller/schemas/topics.schema.json" in names
    assert "agentskiller/schemas/config.schema.yaml" in names
    assert any(n.startswith("agentskiller/prompts/") and n.endswith(".yaml") for n in names)
    assert any(n.startswith("agentskiller/llm/offline/catalog/") for n in names)

    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "AGENTSKILLER_SCHEMAS_DIR"}
    env["PYTHONPATH"] = str(site)  # before the editable install's finder
    res = subprocess.run(
        [sys.executable, "-c", STEP, str(work / "out")], cwd=work, env=env, capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr[-3000:]
    where = json.loads(res.stdout.strip().splitlines()[-1])
    assert where["package"].startswith(str(site)) and where["schemas"].startswith(str(site))
    topics = json.loads((work / "out" / "topics.json").read_text())
    assert len(topics["topics"]) >= 4 and topics["meta"]["step"] == "s01"
