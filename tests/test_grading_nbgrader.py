"""The labs drop into an nbgrader course: generate_assignment and autograde accept their metadata."""
import csv
import os
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("nbgrader")

SAMPLE = os.path.join(os.path.dirname(__file__), "sample_lab", "99-sample")
LABS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "labs")


def nbgrader(course, *args):
    # nbgrader runs `alembic` by name: the venv's bin must be on PATH.
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    done = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def course_with(tmp_path, lab_dir):
    """An nbgrader course whose source is the lab without its hidden checks."""
    course = tmp_path / "course"
    name = os.path.basename(lab_dir)
    shutil.copytree(lab_dir, course / "source" / name,
                    ignore=shutil.ignore_patterns("hidden_checks.py", "__pycache__"))
    (course / "nbgrader_config.py").write_text(
        f"c = get_config()\nc.CourseDirectory.course_id = 'vfiolab'\nc.CourseDirectory.root = {str(course)!r}\n")
    return course, name


def public_points(lab_dir):
    from vfiolab.grading.lab import Lab
    return sum(c.points for c in Lab(lab_dir).load()[0])


def autograde(tmp_path, lab_dir, blank=True):
    course, name = course_with(tmp_path, lab_dir)
    nbgrader(course, "generate_assignment", name, "--force")
    released = course / "release" / name
    assert (released / "checks.py").exists()
    assert "BEGIN SOLUTION" not in (released / f"{name}.ipynb").read_text()
    shutil.copytree(course / "source" / name, course / "submitted" / "solved" / name)
    if blank:
        shutil.copytree(released, course / "submitted" / "blank" / name)
    nbgrader(course, "autograde", name, "--force")
    nbgrader(course, "export", "--to", str(course / "grades.csv"))
    return {row["student_id"]: row for row in csv.DictReader(open(course / "grades.csv"))}


def test_nbgrader_generates_and_autogrades_the_sample_lab(tmp_path):
    grades = autograde(tmp_path, SAMPLE)
    assert float(grades["solved"]["max_score"]) == public_points(SAMPLE) == 4
    assert float(grades["solved"]["score"]) == 4
    assert float(grades["blank"]["score"]) == 0


REAL_LABS = sorted(os.path.join(LABS, d) for d in os.listdir(LABS)
                   if os.path.isdir(os.path.join(LABS, d))
                   and any(f.endswith(".ipynb") for f in os.listdir(os.path.join(LABS, d)))) \
    if os.path.isdir(LABS) else []


@pytest.mark.parametrize("lab_dir", REAL_LABS, ids=os.path.basename)
def test_nbgrader_autogrades_each_lab(tmp_path, lab_dir):
    # The solution only: each real notebook takes a while, and blank ones are graded by test_grading_labs.
    grades = autograde(tmp_path, lab_dir, blank=False)
    assert float(grades["solved"]["score"]) == float(grades["solved"]["max_score"]) > 0
