"""Lab 01 (the platform bus): the notebook runs top to bottom on the sim board (fast) and on the
qemu board (a real kernel)."""
import os
import shutil
from datetime import datetime

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAB = os.path.join(ROOT, "labs", "01-platform-bus")
NOTEBOOK = os.path.join(LAB, "01-platform-bus.ipynb")


def run_notebook(board, monkeypatch):
    """Execute the solution notebook in a fresh kernel on `board`; (notebook, seconds of execution)."""
    monkeypatch.setenv("VFIOLAB_BOARD", board)
    nb = nbformat.read(NOTEBOOK, 4)
    NotebookClient(nb, timeout=180, kernel_name="python3", record_timing=True, startup_timeout=60,
                   resources={"metadata": {"path": LAB}}).execute()
    seconds = 0.0
    for cell in nb.cells:
        timing = cell.metadata.get("execution", {})
        if "shell.execute_reply" in timing:
            start = datetime.fromisoformat(timing["iopub.execute_input"].replace("Z", "+00:00"))
            end = datetime.fromisoformat(timing["shell.execute_reply"].replace("Z", "+00:00"))
            seconds += (end - start).total_seconds()
    return nb, seconds


def outputs(nb, grade_id):
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)
    return "".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in cell.outputs)


def test_notebook_runs_on_the_sim_board_in_10_seconds(monkeypatch):
    nb, seconds = run_notebook("sim", monkeypatch)     # a failing cell raises CellExecutionError
    assert "total: 10/10" in outputs(nb, "scoreboard")
    assert "2c0a0000.dma is now held by vfio-amba | host driver was dma-pl330" in outputs(nb, "ex3-answer")
    assert "group 2 viable? False" in outputs(nb, "viable-demo")
    assert seconds <= 10, f"the notebook's cells took {seconds:.1f} s on the sim board"


@pytest.mark.timeout(300)
def test_notebook_runs_on_the_qemu_board(monkeypatch):
    if shutil.which("qemu-system-aarch64") is None:
        pytest.skip("qemu-system-aarch64 is not installed (apt-get install qemu-system-arm): "
                    "the qemu board cannot boot")
    nb, _ = run_notebook("qemu", monkeypatch)
    assert "total: 10/10" in outputs(nb, "scoreboard")
    assert "0000:00:01.0 is now held by vfio-pci | host driver was None" in outputs(nb, "ex3-answer")
    # Slot 3's shared group: the second edu joined it when vfio-pci probed it; virtio-pci blocks it.
    assert "IOMMU group 0: ['0000:00:03.0', '0000:00:03.1']" in outputs(nb, "groups-list")
    assert "the group with the most devices: 0" in outputs(nb, "groups-list")
    assert "0000:00:03.0 is on vfio-pci; group 0 viable? False" in outputs(nb, "viable-demo")
    assert "{'0000:00:03.1': 'virtio-pci'}" in outputs(nb, "viable-demo")
    assert "blockers left: []" in outputs(nb, "ex5-answer")
    assert "0x008000000-0x0080fffff msi" in outputs(nb, "resv-show")      # the real arm-smmu-v3's window
    assert "PL330         0 found" in outputs(nb, "qemu-check")

# Release and grading (solution full marks, learner version zero with hints): tests/test_grading_labs.py.
