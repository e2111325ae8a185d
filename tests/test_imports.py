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


def test_no_benchmark_script_shadows_a_package() -> None:
    """`python benchmarks/x.py` puts benchmarks/ first on sys.path: a script named like a package
    (coverage.py was) breaks every import of it, even an optional one deep inside numba → apricot.
    So: no script is named like an installed module, and the stack imports with benchmarks/ first."""
    import importlib.util
    from pathlib import Path

    bench = Path(__file__).resolve().parents[1] / "benchmarks"
    scripts = sorted(p.stem for p in bench.glob("*.py"))
    shadowing = [name for name in scripts if name in sys.stdlib_module_names or importlib.util.find_spec(name)]
    assert scripts and not shadowing, shadowing
    stack = "apricot, faiss, numba, ot, polars, sklearn, sentence_transformers, ray, data_selection"
    code = f"import sys; sys.path.insert(0, {str(bench)!r}); import {stack}"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
