"""Build hook only; the project metadata is in pyproject.toml.

The workflow's JSON Schemas live in ``schemas/`` at the repository root, beside the Snakefile
(where Snakemake workflows keep them). A built wheel ships a copy inside the package as
``agentskiller/schemas/``, so a non-editable install validates artifacts too
(``agentskiller.io.SCHEMAS_DIR`` falls back to it when there is no checkout).
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithSchemas(build_py):
    def run(self) -> None:
        super().run()
        src = Path(__file__).resolve().parent / "schemas"
        dst = Path(self.build_lib) / "agentskiller" / "schemas"
        self.mkpath(str(dst))
        for path in sorted(src.glob("*.schema.*")):
            self.copy_file(str(path), str(dst / path.name))


setup(cmdclass={"build_py": BuildWithSchemas})
