"""Every notebook executes headless (quick settings) and is stored without outputs.

Each notebook runs in a fresh kernel of this interpreter with ``RVC_LAB_QUICK=1`` (tiny inputs,
cheap F0 methods); a cell that raises fails the test with the cell's source and traceback.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("ipywidgets")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NAMES = ("01_audition", "02_stream_vs_offline_parity", "03_f0_accuracy", "04_metrics_qa", "05_latency_profiling",
         "06_ab_evaluation")
CELL_TIMEOUT_S = 240


def test_all_notebooks_present():
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_notebook_stored_without_outputs(name):
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "a notebook without code"
    for cell in code:
        assert cell.outputs == [] and cell.execution_count is None, f"outputs left in {name}: {cell.source[:60]!r}"


@pytest.fixture(scope="module")
def quick_env(demo_assets):
    """Quick mode for the kernels (they inherit this process's environment); demo assets made once."""
    old = os.environ.get("RVC_LAB_QUICK")
    os.environ["RVC_LAB_QUICK"] = "1"
    yield
    if old is None:
        os.environ.pop("RVC_LAB_QUICK", None)
    else:
        os.environ["RVC_LAB_QUICK"] = old


@pytest.mark.parametrize("name", NAMES)
def test_notebook_executes(name, quick_env, tmp_path):
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()  # raises CellExecutionError naming the failing cell
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code), "some cells did not run"
    errors = [o for c in code for o in c.outputs if o.get("output_type") == "error"]
    assert not errors, errors
    # the panels rendered something: widget views or rich output in at least one cell
    kinds = {o.get("output_type") for c in code for o in c.outputs}
    assert kinds & {"display_data", "execute_result"}, f"{name} displayed nothing"
