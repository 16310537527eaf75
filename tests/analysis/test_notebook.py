"""notebooks/inspect_checkpoint.ipynb runs from top to bottom on a smoke run."""

import pathlib

import nbformat
from conftest import HANG_GUARD_SECONDS
from nbclient import NotebookClient

NOTEBOOK = pathlib.Path(__file__).resolve().parents[2] / "notebooks" / "inspect_checkpoint.ipynb"


def _outputs(cell):
    texts = []
    for output in cell.outputs:
        if output.output_type == "stream":
            texts.append(output.text)
        elif "data" in output:
            texts.append(output.data.get("text/markdown", ""))
    return "".join(texts)


def test_committed_notebook_has_no_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(not cell.outputs and cell.execution_count is None for cell in code)


def test_notebook_runs_on_a_smoke_workdir(smoke_run, monkeypatch):
    monkeypatch.setenv("UADA_WORKDIR", smoke_run.workdir)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        notebook,
        timeout=HANG_GUARD_SECONDS,  # per cell: a guard against a hung kernel
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parents[1])}},
    ).execute()  # raises CellExecutionError, with the cell and traceback, if a cell fails
    text = "\n".join(_outputs(cell) for cell in notebook.cells if cell.cell_type == "code")
    assert "| mode | uada |" in text and "| norm | dan |" in text
    # The smoke run logs every 2 of its 4 steps: the curves were read from its event files.
    assert "'seg_loss':" in text and "'lr': 0.01" in text
    assert "layers with moving statistics (norm=dan)" in text
    assert "| DomainAgnosticNormalization |" in text
    for domain in ("demo_source", "demo_target", "demo_unseen"):
        assert f"{domain}: pixel accuracy" in text
    assert "source neighbours (perfect:" in text and "| all |" in text
    images = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if "image/png" in output.get("data", {})
    ]
    assert len(images) >= 6  # curves, statistics, three grids, retrieval
