"""A late cell that kills, hangs or overruns a solved real lab keeps the points earned before it.

For every lab under labs/: its solution, with one cell inserted before the last exercise's first
cell, is graded by `vfiolab grade`: a cell that ignores interrupts (killed one per-cell limit
after its interrupt), os._exit, and a cell that sleeps past the notebook's time limit. Each must
score exactly the checks of the exercises before that cell, and say why the last one was not
graded. (Issue 13: these scored 0 of 17 and 0 of 33.)
"""
import json
import os
import shutil
import subprocess
import sys

import nbformat
import pytest

from vfiolab.grading.lab import Lab
from vfiolab.grading.release import lab_folders
from vfiolab.grading.verdict import exercise_ends

LABS_ROOT = os.path.join(os.path.dirname(os.path.dirname(__file__)), "labs")
LABS = lab_folders(LABS_ROOT) if os.path.isdir(LABS_ROOT) else []
pytestmark = pytest.mark.skipif(not LABS, reason="no lab with a notebook under labs/ yet")

LATE = {
    "unkillable": "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                  "while True:\n    time.sleep(0.05)",
    "exit": "import os\nos._exit(1)",
    "slow": "import time\ntime.sleep(40)",   # under the cell limit, past the notebook's
}


def late_notebook(lab, source):
    """(notebook with `source` before the last exercise's first cell, that cell's index)."""
    nb = nbformat.read(os.path.join(lab, Lab(lab).notebook), 4)
    checks = Lab(lab).load(hidden=True)[0]
    ends = exercise_ends(nb, {c.exercise for c in checks})
    last = max(ends, key=ends.get)
    first = min(i for i, c in enumerate(nb.cells)
                if str(c.metadata.get("nbgrader", {}).get("grade_id", "")) == last
                or str(c.metadata.get("nbgrader", {}).get("grade_id", "")).startswith(last + "-"))
    nb.cells.insert(first, nbformat.v4.new_code_cell(source))
    return nb, first


def grade(root, kinds, cell_timeout, timeout):
    subs, expected = root / "submissions", {}
    for lab in LABS:
        name = os.path.basename(lab)
        for kind in kinds:
            nb, index = late_notebook(lab, LATE[kind])
            folder = subs / kind / name
            shutil.copytree(lab, folder, ignore=shutil.ignore_patterns("hidden_checks.py", "__pycache__"))
            nbformat.write(nb, folder / f"{name}.ipynb")
            checks = Lab(lab).load(hidden=True)[0]
            ends = exercise_ends(nb, {c.exercise for c in checks})
            expected[kind, name] = (index + 1, sum(c.points for c in checks
                                                   if ends.get(c.exercise, -1) < index),
                                    sum(c.points for c in checks))
    done = subprocess.run([sys.executable, "-m", "vfiolab", "grade", str(subs), "--out",
                           str(root / "grades"), "--labs", *LABS, "--jobs", "2",
                           "--cell-timeout", str(cell_timeout), "--timeout", str(timeout)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    book = json.load(open(root / "grades" / "gradebook.json"))
    return expected, {(r["learner"], r["lab"]): r for r in book["labs"]}, book["rows"]


@pytest.fixture(scope="module")
def killed(tmp_path_factory):
    # 6 s per cell: the unkillable cell is killed 13 s after it starts
    return grade(tmp_path_factory.mktemp("killed"), ["unkillable", "exit"], 6, 300)


@pytest.fixture(scope="module")
def overrun(tmp_path_factory):
    # the lab's own cells take a few seconds; the late cell's sleep(40) crosses 25 s
    return grade(tmp_path_factory.mktemp("overrun"), ["slow"], 60, 25)


def check_kept(graded, kind, lab, status, why):
    expected, records, rows = graded
    name = os.path.basename(lab)
    cell, kept, full = expected[kind, name]
    rec = records[kind, name]
    assert 0 < kept < full
    assert rec["status"] == status and rec["stopped_cell"] == cell, rec
    assert rec["points"] == kept, rec
    lost = [r for r in rows if r["learner"] == kind and r["lab"] == name and not r["passed"]]
    assert lost and all(r["message"] == f"not graded: {why} in cell {cell}" for r in lost), lost


@pytest.mark.parametrize("lab", LABS, ids=os.path.basename)
def test_a_late_cell_that_ignores_interrupts(killed, lab):
    check_kept(killed, "unkillable", lab, "timeout", "ran out of time")


@pytest.mark.parametrize("lab", LABS, ids=os.path.basename)
def test_a_late_os_exit(killed, lab):
    check_kept(killed, "exit", lab, "kernel-died", "the kernel died")


@pytest.mark.parametrize("lab", LABS, ids=os.path.basename)
def test_a_late_notebook_timeout(overrun, lab):
    check_kept(overrun, "slow", lab, "timeout", "ran out of time")
