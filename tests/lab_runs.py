"""Running a lab's notebook as a learner does, for the lab tests (tests/test_lab0N*.py): Run All in
a fresh kernel on a board, every code cell run twice in a row, and what the cells showed."""
import copy
import os
import shutil
import time
from contextlib import contextmanager

import nbformat
import pytest
from nbclient import NotebookClient

from vfiolab.qtest import find_qemu

LABS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "labs")


def lab_copy(lab, tmp_path):
    """(folder, notebook): a copy of labs/<lab> in tmp_path, and its notebook (the solution) read."""
    folder = shutil.copytree(os.path.join(LABS, lab), tmp_path / "lab")
    return folder, nbformat.read(folder / f"{lab}.ipynb", as_version=4)


@contextmanager
def on_board(board):
    """VFIOLAB_BOARD=board for the kernels started inside (they inherit it); restored after."""
    before = os.environ.get("VFIOLAB_BOARD")
    os.environ["VFIOLAB_BOARD"] = board
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("VFIOLAB_BOARD", None)
        else:
            os.environ["VFIOLAB_BOARD"] = before


def execute(nb, folder, board="sim", timeout=120):
    """Run every cell of nb in order in a fresh kernel started in folder, as Run All does but
    going on past a cell's error (errors() lists them). Returns the seconds the cells took, the
    kernel's start left out."""
    with on_board(board):
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True,
                                resources={"metadata": {"path": str(folder)}})
        with client.setup_kernel():
            start = time.monotonic()
            for index, cell in enumerate(nb.cells):
                client.execute_cell(cell, index)
            return time.monotonic() - start


def run_all(lab, tmp_path, board="sim", timeout=120):
    """Run All of a copy of labs/<lab> on board; no cell may end in an error. Returns (notebook,
    code_text of it, seconds the cells took)."""
    folder, nb = lab_copy(lab, tmp_path)
    seconds = execute(nb, folder, board, timeout)
    assert errors(nb) == []
    return nb, code_text(nb), seconds


def needs_qemu(lab):
    """Skips a test of lab's qemu-board section where qemu-system-aarch64 is not installed."""
    return pytest.mark.skipif(not find_qemu("qemu-system-aarch64"),
                              reason=f"qemu-system-aarch64 is not installed: the qemu-board section "
                                     f"of lab {lab[:2]} cannot run (on Debian or Ubuntu: sudo apt "
                                     "install qemu-system-arm)")


def run_twice(nb, folder, board="sim", timeout=120, after=()):
    """Run All with each code cell run again right after its first run, then the new cells of
    `after` once, in the same kernel. Returns [(grade_id, first run, second run)], the two runs
    being cells with their outputs; nb holds every cell run."""
    pairs, cells = [], []
    for cell in nb.cells:
        cells.append(cell)
        if cell.cell_type == "code":
            twin = copy.deepcopy(cell)
            cells.append(twin)
            pairs.append((grade_id(cell), cell, twin))
    nb.cells = cells + list(after)
    execute(nb, folder, board, timeout)
    return pairs


def grade_id(cell):
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def text_of(cell):
    """What a cell showed as text: its streams, text/plain results and errors (ename: evalue)."""
    out = []
    for o in cell.get("outputs", []):
        if o.output_type == "stream":
            out.append(o.text)
        elif o.output_type == "error":
            out.append(f"{o.ename}: {o.evalue}")
        elif "text/plain" in o.get("data", {}):
            out.append(o["data"]["text/plain"])
    return "".join(out)


def cell_text(nb, gid):
    """text_of the cell whose nbgrader grade_id is gid."""
    return text_of(next(c for c in nb.cells if grade_id(c) == gid))


def code_text(nb):
    """text_of every code cell, one after the other."""
    return "\n".join(text_of(c) for c in nb.cells if c.cell_type == "code")


def errors(nb):
    """[(index, text)] of the code cells that ended in an error."""
    return [(i, text_of(c)) for i, c in enumerate(nb.cells)
            if c.cell_type == "code" and any(o.output_type == "error" for o in c.get("outputs", []))]


def html_of(nb):
    """Every text/html output of the code cells (the widgets' still pictures), joined."""
    return "\n".join(o["data"]["text/html"] for c in nb.cells if c.cell_type == "code"
                     for o in c.get("outputs", []) if "text/html" in o.get("data", {}))
