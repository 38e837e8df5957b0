"""Linters run as tests (as in ros2/examples), so CI fails on style regressions."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_ruff_clean():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff not installed")
    targets = [p for p in ("ad_perception", "test", "scripts", "launch") if (ROOT / p).is_dir()]
    result = subprocess.run(
        [ruff, "check", *targets],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
