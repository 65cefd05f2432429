"""A class run interrupted by Ctrl-C, stopped by SIGTERM (a shutdown), then killed outright (power
lost) resumes where it stopped: what was recorded stays, is complete, and is not graded again;
the rest is graded."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

SAMPLE = os.path.join(os.path.dirname(__file__), "sample_lab", "99-sample")
LAB = "99-sample"
LEARNERS = [f"learner{i}" for i in range(6)]


def recorded(out):
    folder = out / "results"
    return sorted(p.parent.name for p in folder.glob(f"*/{LAB}.json")) if folder.exists() else []


def start(subs, out):
    return subprocess.Popen([sys.executable, "-m", "vfiolab", "grade", str(subs), "--out", str(out),
                             "--labs", SAMPLE, "--jobs", "1"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def stop_after(process, out, count, sig, timeout=120):
    """Send sig to the grader's process group (as a terminal's Ctrl-C does) once `count`
    notebooks are recorded."""
    deadline = time.monotonic() + timeout
    while len(recorded(out)) < count:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no notebook recorded in time"
        time.sleep(0.05)
    os.killpg(process.pid, sig)
    stdout, stderr = process.communicate(timeout=60)
    return process.returncode, stdout, stderr


@pytest.fixture
def subs(tmp_path):
    for learner in LEARNERS:
        shutil.copytree(SAMPLE, tmp_path / "subs" / learner / LAB,
                        ignore=shutil.ignore_patterns("hidden_checks.py", "__pycache__"))
    return tmp_path / "subs"


def test_an_interrupted_class_run_resumes_without_regrading(subs, tmp_path):
    out = tmp_path / "grades"
    code, _, stderr = stop_after(start(subs, out), out, 1, signal.SIGINT)
    assert code == 130, stderr
    first = recorded(out)
    assert 1 <= len(first) < len(LEARNERS)
    assert f"interrupted: {len(first)} graded and recorded" in stderr, stderr
    assert "Traceback" not in stderr, stderr
    book = json.load(open(out / "gradebook.json"))   # rebuilt on the way out
    assert sorted(r["learner"] for r in book["labs"]) == first

    # a shutdown's SIGTERM stops it as Ctrl-C does
    code, _, stderr = stop_after(start(subs, out), out, len(first) + 1, signal.SIGTERM)
    assert code == 130 and "interrupted:" in stderr, stderr
    first = recorded(out)

    # killed outright (power lost): nothing is written on the way out
    code, _, _ = stop_after(start(subs, out), out, len(first) + 1, signal.SIGKILL)
    assert code == -signal.SIGKILL
    second = recorded(out)
    assert set(first) < set(second)
    for learner in second:   # every record is whole (written to a temporary name, then renamed)
        rec = json.load(open(out / "results" / learner / f"{LAB}.json"))
        assert rec["points"] == rec["max_points"] == 6, rec

    done = subprocess.run([sys.executable, "-m", "vfiolab", "grade", str(subs), "--out", str(out),
                           "--labs", SAMPLE, "--jobs", "1"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"graded {len(LEARNERS) - len(second)}, skipped {len(second)} already graded" in done.stdout
    book = json.load(open(out / "gradebook.json"))
    assert sorted(r["learner"] for r in book["labs"]) == LEARNERS
    assert all(r["points"] == 6 for r in book["labs"])
