"""Run the real workflow from tests: `snakemake` in a subprocess on a scratch directory."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "Snakefile"
DEFAULT_CONFIG = REPO / "config" / "config.yaml"


@dataclass
class RunResult:
    returncode: int
    stdout: str
    stderr: str
    workdir: Path

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def jobs(self) -> list[tuple[str, dict]]:
        """(rule, wildcards) of every job that ran, parsed from Snakemake's log."""
        out = []
        for block in re.split(r"\n(?=(?:local)?(?:rule|checkpoint) )", "\n" + self.stderr):
            m = re.match(r"(?:local)?(?:rule|checkpoint) (\w+):", block.strip())
            if not m:
                continue
            wc = {}
            wm = re.search(r"wildcards: (.*)", block)
            if wm:
                for part in wm.group(1).split(", "):
                    if "=" in part:
                        k, v = part.split("=", 1)
                        wc[k.strip()] = v.strip()
            out.append((m.group(1), wc))
        return out


def write_config(workdir: Path, **overrides) -> Path:
    cfg = yaml.safe_load(DEFAULT_CONFIG.read_text())
    for key, value in overrides.items():
        node = cfg
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def snakemake(
    workdir: Path, *args: str, config: Path | None = None, env: dict | None = None, timeout: int = 900
) -> RunResult:
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(SNAKEFILE),
        "--directory",
        str(workdir),
        "--configfile",
        str(config or DEFAULT_CONFIG),
        *args,
    ]
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout, env=full_env)
    return RunResult(proc.returncode, proc.stdout, proc.stderr, workdir)


def usage_rows(workdir: Path) -> list[dict]:
    rows = []
    for log in sorted((workdir / "logs").rglob("*.log")):
        for line in log.read_text(errors="replace").splitlines():
            if "LLM_USAGE " in line:
                rows.append(json.loads(line.split("LLM_USAGE ", 1)[1]))
    return rows


def artifact_files(root: Path) -> dict[str, bytes]:
    """Every file under outputs/ (relative path -> bytes)."""
    base = root / "outputs"
    return {str(p.relative_to(base)): p.read_bytes() for p in sorted(base.rglob("*")) if p.is_file()}
