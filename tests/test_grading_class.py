"""`vfiolab grade` on a class folder of honest and hostile submissions of the sample lab.

One grading run (two notebooks at a time, short time limits) over: the untouched learner version,
the full solution, an infinite loop, a loop that ignores interrupts, os._exit, deleted and edited
check cells, monkeypatched vfiolab code, a notebook that hunts for the hidden checks, a file that is
not a notebook and a folder with no notebook. Each must get the grade it deserves and a clear message.
"""
import csv
import json
import os
import shutil
import subprocess
import sys

import nbformat
import pytest

from vfiolab.grading.release import release_lab

SAMPLE = os.path.join(os.path.dirname(__file__), "sample_lab", "99-sample")
LAB = "99-sample"
FULL, PUBLIC = 6, 4


def code(source):
    return nbformat.v4.new_code_cell(source)


def with_cell(nb, index, source):
    nb = nbformat.from_dict(nb)
    nb.cells.insert(index, code(source))
    return nb


def without(nb, *grade_ids):
    nb = nbformat.from_dict(nb)
    nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") not in grade_ids]
    return nb


def _slow(nb):
    for _ in range(5):
        nb = with_cell(nb, 4, "import time\ntime.sleep(2.5)")
    return nb


def edited(nb, grade_id, source):
    nb = nbformat.from_dict(nb)
    for c in nb.cells:
        if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            c.source = source
    return nb


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("class")
    lab = shutil.copytree(SAMPLE, root / "instructor" / LAB)  # hidden checks live only here
    blank = nbformat.read(os.path.join(release_lab(lab, root / "release"), f"{LAB}.ipynb"), 4)
    solution = nbformat.read(lab / f"{LAB}.ipynb", 4)
    hidden_path = str(lab / "hidden_checks.py")
    hunt = f"""
import glob, os
found = []
import vfiolab
checkout = os.path.dirname(os.path.dirname(vfiolab.__file__))
for path in [{hidden_path!r}, {os.path.join(SAMPLE, "hidden_checks.py")!r}] \\
        + glob.glob("/tmp/**/hidden_checks.py", recursive=True) \\
        + glob.glob(checkout + "/labs/*/hidden_checks.py") \\
        + glob.glob(checkout + "/tests/**/hidden_checks.py", recursive=True) \\
        + glob.glob({str(root)!r} + "/**/*.py", recursive=True):
    try:
        text = open(path).read()
    except OSError:
        continue
    if "hidden=True" in text:
        found.append(text)
print("HUNT:", "FOUND" if found else "NOTHING")
if found:
    dst = bytearray(found[0].encode())   # would leak into the hints if the sandbox failed
"""
    patch = """
import vfiolab.grading.observations as o, vfiolab.grading.checks as c
o.observe_all = lambda observers, ns: {"dst": {"$bytes": "EA8ODQwLCgkIBwYFBAMCAQ=="}}
c.judge = lambda checks, seen: []
"""
    submissions = {
        "blank": blank,
        "solution": solution,
        "loop": with_cell(solution, 4, "while True:\n    pass"),
        "stubborn": with_cell(solution, 4, "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                                            "while True:\n    pass"),
        "exit": with_cell(solution, 4, "import os\nos._exit(3)"),
        # five cells of 2.5 s (each under the 3 s cell limit) overrun the 12 s notebook limit
        "slow": _slow(solution),
        "deleted": without(solution, "ex1", "ex2", "scoreboard"),
        "faked": edited(blank, "ex1", "print('ex1: 2 / 2 points  PASS ex1-reverse')"),
        "patched": with_cell(blank, 2, patch),
        "hunter": with_cell(solution, 4, hunt),
    }
    subs = root / "submissions"
    for learner, nb in submissions.items():
        (subs / learner / LAB).mkdir(parents=True)
        nbformat.write(nb, subs / learner / LAB / f"{LAB}.ipynb")
    (subs / "garbage" / LAB).mkdir(parents=True)
    (subs / "garbage" / LAB / f"{LAB}.ipynb").write_bytes(b"\x89PNG\r\n\x1a\n not a notebook")
    (subs / "nothing" / LAB).mkdir(parents=True)
    (subs / "nothing" / LAB / "answers.txt").write_text("dst = reversed(src)")
    out = root / "grades"
    command = [sys.executable, "-m", "vfiolab", "grade", str(subs), "--out", str(out),
               "--labs", str(lab), "--jobs", "2", "--cell-timeout", "3", "--timeout", "12"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    book = json.load(open(out / "gradebook.json"))
    labs = {r["learner"]: r for r in book["labs"]}
    rows = {}
    for row in csv.DictReader(open(out / "gradebook.csv")):
        rows.setdefault(row["learner"], {})[row["check"]] = row
    return {"out": out, "labs": labs, "rows": rows, "command": command, "stdout": done.stdout,
            "feedback": lambda learner: open(out / "feedback" / learner / f"{LAB}.md").read()}


def points(graded, learner):
    return graded["labs"][learner]["points"]


def test_every_submission_is_graded(graded):
    assert sorted(graded["labs"]) == sorted(["blank", "solution", "loop", "stubborn", "exit", "slow",
                                             "deleted", "faked", "patched", "hunter", "garbage",
                                             "nothing"])
    assert all(len(checks) == 4 for checks in graded["rows"].values())


def test_untouched_learner_version_gets_zero_with_hints(graded):
    assert points(graded, "blank") == 0
    rows = graded["rows"]["blank"]
    assert rows["ex1-reverse"]["message"] == "could not observe dst: 'dst' is not defined in the notebook"
    assert "NotImplementedError" in rows["ex2-sum"]["message"]


def test_the_solution_gets_full_marks(graded):
    assert points(graded, "solution") == FULL and graded["labs"]["solution"]["max_points"] == FULL


def test_an_infinite_loop_is_interrupted_and_the_rest_is_graded(graded):
    assert points(graded, "loop") == FULL
    assert any("KeyboardInterrupt (interrupted: over the per-cell time limit)" in n
               for n in graded["labs"]["loop"]["notes"])


EX1 = 3  # ex1-reverse (2) + hidden ex1-untouched-src (1): ex1's answer cell comes before cell 5


def test_a_loop_that_ignores_interrupts_runs_out_of_time_and_keeps_what_came_before(graded):
    rec = graded["labs"]["stubborn"]
    assert rec["status"] == "timeout" and rec["stopped_cell"] == 5
    assert points(graded, "stubborn") == EX1
    rows = graded["rows"]["stubborn"]
    assert rows["ex1-reverse"]["passed"] == "True" and rows["ex1-untouched-src"]["passed"] == "True"
    assert rows["ex2-sum"]["message"] == "not graded: ran out of time in cell 5"
    assert any("cell 5 ran out of time: it went on running after it was interrupted" in n
               for n in rec["notes"])


def test_a_kernel_killed_by_os_exit_keeps_what_came_before(graded):
    assert points(graded, "exit") == EX1 and graded["labs"]["exit"]["status"] == "kernel-died"
    assert graded["rows"]["exit"]["ex2-wraps"]["message"] == "not graded: the kernel died in cell 5"
    assert any("the kernel died while running cell 5" in n for n in graded["labs"]["exit"]["notes"])


def test_the_notebook_time_limit_keeps_what_came_before(graded):
    rec = graded["labs"]["slow"]
    assert rec["status"] == "timeout" and points(graded, "slow") == EX1, rec
    assert graded["rows"]["slow"]["ex2-sum"]["message"].startswith("not graded: ran out of time in cell")
    assert any("the notebook ran out of time (12 s) in cell" in n for n in rec["notes"])


def test_feedback_says_a_shared_reason_once(graded):
    text = graded["feedback"]("exit")
    assert text.count("the kernel died in cell 5") == 1, text
    assert "- 3 checks (ex2-sum, ex2-wraps" not in text  # ex2 has 2 checks: both named once
    assert "2 checks (ex2-sum, ex2-wraps): not graded: the kernel died in cell 5" in text


def test_deleted_check_cells_change_nothing_but_a_note(graded):
    assert points(graded, "deleted") == FULL
    assert any("ex1 deleted" in n and "ex2 deleted" in n for n in graded["labs"]["deleted"]["notes"])


def test_an_edited_check_cell_that_fakes_a_pass_gets_zero(graded):
    assert points(graded, "faked") == 0
    assert any("ex1 edited" in n for n in graded["labs"]["faked"]["notes"])


def test_monkeypatched_vfiolab_gets_zero_and_says_why_once(graded):
    rec = graded["labs"]["patched"]
    assert points(graded, "patched") == 0 and rec["status"] == "tampered"
    assert graded["rows"]["patched"]["ex1-reverse"]["message"] == \
        "0: vfiolab's code was replaced from the notebook (see the notes)"
    # the instructor keeps every replaced function; the learner gets one line for cell 3
    assert "vfiolab.grading.observations.observe_all was replaced by code from cell 3" in rec["tampering"]
    lines = [n for n in rec["notes"] if "(vfiolab's own code)" in n]
    assert len(lines) == 1 and lines[0].startswith("cell 3 replaced "), rec["notes"]
    assert "vfiolab.grading.observations.observe_all" in lines[0] and "submit again" in lines[0]
    text = graded["feedback"]("patched")
    assert "/tmp" not in text and "ipykernel" not in text and "scratch" not in text, text
    assert text.count("(vfiolab's own code)") == 1


def test_the_hidden_checks_cannot_be_read_from_the_notebook(graded):
    if any("without isolation" in note for note in graded["labs"]["hunter"]["detail"]):
        pytest.skip("this machine gives the grader no Linux namespaces (a container without "
                    "CAP_SYS_ADMIN or user namespaces), so a kernel can read any file; the gradebook "
                    "warns the instructor instead")
    executed = nbformat.read(graded["out"] / "executed" / "hunter" / f"{LAB}.ipynb", 4)
    printed = "".join(o.get("text", "") for c in executed.cells for o in c.get("outputs", []))
    assert "HUNT: NOTHING" in printed
    assert points(graded, "hunter") == FULL


def test_a_file_that_is_not_a_notebook_and_a_missing_notebook(graded):
    assert points(graded, "garbage") == 0 and graded["labs"]["garbage"]["status"] == "not-a-notebook"
    assert graded["rows"]["garbage"]["ex1-reverse"]["message"] == \
        "not graded: the submission is not a notebook"
    assert any("not a readable Jupyter notebook" in n for n in graded["labs"]["garbage"]["notes"])
    assert points(graded, "nothing") == 0
    assert "no notebook 99-sample.ipynb submitted (found: answers.txt)" in \
        graded["rows"]["nothing"]["ex1-reverse"]["message"]


def test_feedback_never_holds_hidden_check_code(graded):
    hidden_source = open(os.path.join(SAMPLE, "hidden_checks.py")).read()
    for learner in graded["labs"]:
        text = graded["feedback"](learner)
        assert "SECRET-HIDDEN-MARKER" not in text and "expect_equal" not in text
        assert "def " not in text and hidden_source[:60] not in text
    assert "| ex2-wraps (hidden) | pass | 1/1 |" in graded["feedback"]("solution")


def test_a_rerun_skips_what_is_graded(graded):
    done = subprocess.run(graded["command"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "graded 0, skipped 12 already graded" in done.stdout
