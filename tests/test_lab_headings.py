"""An exercise's heading promises points: "(N points: P from the public check below, H more hidden)".
They must be what its checks give (public and hidden), and "more hidden" must appear exactly where
hidden checks exist."""
import os
import re

import nbformat
import pytest

from vfiolab.grading.lab import Lab

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LABS = [os.path.join(ROOT, "labs", name) for name in ("01-platform-bus", "02-vfio-pl330", "03-xgmac-irqfd", "04-msi-its")]
HEADING = re.compile(r"^##[^\n]*Exercise (\d+):[^\n]*\((\d+) points?(?:: (\d+) from the public "
                     r"checks? below, (\d+) more hidden)?\)", re.M)


@pytest.mark.parametrize("path", LABS, ids=os.path.basename)
def test_headings_promise_what_the_checks_give(path):
    lab = Lab(path)
    checks, _ = lab.load(hidden=True)
    nb = nbformat.read(os.path.join(lab.path, lab.notebook), as_version=4)
    promised = {}
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for n, total, public, hidden in HEADING.findall(cell.source):
                promised[f"ex{n}"] = (int(total), int(public or total), int(hidden or 0))
    given = {}
    for c in checks:
        total, public, hidden = given.get(c.exercise, (0, 0, 0))
        given[c.exercise] = (total + c.points, public + (0 if c.hidden else c.points),
                             hidden + (c.points if c.hidden else 0))
    assert promised == given, f"headings promise {promised}, the checks give {given}"
    for exercise, (_, _, hidden) in given.items():
        # "more hidden" in the heading exactly when hidden checks exist
        assert (promised[exercise][2] > 0) == (hidden > 0), exercise


@pytest.mark.parametrize("path", LABS, ids=os.path.basename)
def test_scoreboard_lists_exercises_in_the_notebooks_order(path):
    """The scoreboard and the feedback list exercises in the order checks.py defines them: that must
    be the order the learner meets them in the notebook (lab 04 once listed ex4 after ex6)."""
    lab = Lab(path)
    checks, _ = lab.load(hidden=False)
    defined = list(dict.fromkeys(c.exercise for c in checks))
    nb = nbformat.read(os.path.join(lab.path, lab.notebook), as_version=4)
    met = [m for cell in nb.cells if cell.cell_type == "code"
           for m in re.findall(r"check_exercise\(\"(ex\d+)\"", cell.source)]
    assert defined == list(dict.fromkeys(met)), f"checks.py defines {defined}, the notebook checks {met}"
