"""Every public module imports first, in a fresh interpreter (catches import cycles early)."""

from __future__ import annotations

import subprocess
import sys

import pytest

MODULES = [
    "curate.mixing",
    "curate.selectors",
    "curate.manifest",
    "curate.select",
    "curate.report",
    "api.app",
    "curate.cli",
]


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_on_its_own(module: str) -> None:
    proc = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
