"""Every real lab under labs/ grades as its author intends: the solution gets full marks, the
released learner version gets zero with a hint on every check, and the release hides what it must."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from vfiolab.grading.lab import Lab
from vfiolab.grading.release import lab_folders, release_lab

LABS_ROOT = os.path.join(os.path.dirname(os.path.dirname(__file__)), "labs")
LABS = lab_folders(LABS_ROOT) if os.path.isdir(LABS_ROOT) else []
pytestmark = pytest.mark.skipif(not LABS, reason="no lab with a notebook under labs/ yet")


@pytest.mark.parametrize("lab", LABS, ids=os.path.basename)
def test_each_lab_loads_and_releases_without_leaks(tmp_path, lab):
    checks, observers = Lab(lab).load(hidden=True)
    assert checks and observers
    out = release_lab(lab, tmp_path)  # raises if anything hidden would leak
    assert not os.path.exists(os.path.join(out, "hidden_checks.py"))


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("labs")
    for lab in LABS:
        name = os.path.basename(lab)
        shutil.copytree(lab, root / "submissions" / "solution" / name,
                        ignore=shutil.ignore_patterns("hidden_checks.py", "__pycache__"))
        release_lab(lab, root / "submissions" / "blank")
    done = subprocess.run([sys.executable, "-m", "vfiolab", "grade", str(root / "submissions"),
                           "--out", str(root / "grades"), "--labs", *LABS, "--jobs", "2",
                           "--cell-timeout", "120", "--timeout", "600"],
                          capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stdout + done.stderr
    book = json.load(open(root / "grades" / "gradebook.json"))
    return {(r["learner"], r["lab"]): r for r in book["labs"]}, book["rows"]


@pytest.mark.parametrize("lab", LABS, ids=os.path.basename)
def test_the_solution_gets_full_marks(graded, lab):
    record = graded[0][("solution", os.path.basename(lab))]
    assert record["status"] == "ok", record
    assert record["points"] == record["max_points"] > 0, record


@pytest.mark.parametrize("lab", LABS, ids=os.path.basename)
def test_the_learner_version_gets_zero_with_hints(graded, lab):
    name = os.path.basename(lab)
    assert graded[0][("blank", name)]["points"] == 0
    for row in graded[1]:
        if row["learner"] == "blank" and row["lab"] == name:
            assert row["message"] and row["message"] != "passed", row
