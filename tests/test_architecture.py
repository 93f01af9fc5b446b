"""The layers hold: an import contract (import-linter, configured in pyproject.toml) and mypy, run as tests.

The contract: cli/demo > notebook > analysis > core > local, no module importing a layer above its own, and no
import cycle between modules of a layer, lazy imports inside functions included (annotation-only imports under
``TYPE_CHECKING`` do not count). A planted violation of each kind must break it, or the contract checks nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _lint(where: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(where)}
    return subprocess.run(
        [str(BIN / "lint-imports"), str(where / "pyproject.toml"), "--no-cache"],
        cwd=where,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_import_contract_is_kept():
    done = _lint(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


PLANTED = {
    "the spine imports the analysis layer, lazily": (
        "wcode_magic/core/response.py",
        "\n\ndef _planted():\n    from ..analysis import frames\n\n    return frames\n",
        "- wcode_magic.core.response -> wcode_magic.analysis.frames",
    ),
    "a lazy import cycle inside the spine": (
        "wcode_magic/core/catalog.py",
        "\n\ndef _planted():\n    from . import params\n\n    return params\n",
        "No import cycle",
    ),
    "the local server imports the spine": (
        "wcode_magic/local/faults.py",
        "\n\ndef _planted():\n    from ..core import params\n\n    return params\n",
        "wcode_magic.local",
    ),
}


@pytest.mark.parametrize("case", list(PLANTED))
def test_a_planted_violation_breaks_the_contract(tmp_path, case):
    shutil.copytree(ROOT / "wcode_magic", tmp_path / "wcode_magic", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    path, planted, named = PLANTED[case]
    with open(tmp_path / path, "a", encoding="utf-8") as f:
        f.write(planted)
    done = _lint(tmp_path)
    assert done.returncode != 0 and named in done.stdout, done.stdout


def test_mypy_finds_no_error():
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
