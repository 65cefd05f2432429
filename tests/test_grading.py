"""Grading, without kernels: the authoring API, hints, release, learner-side checks, tamper check."""
import os
import shutil
import subprocess
import sys
import textwrap

import nbformat
import pytest

from vfiolab.grading import Fail, check, expect_bytes, expect_equal
from vfiolab.grading.checks import judge
from vfiolab.grading.lab import Lab, LabError
from vfiolab.grading.learner import public_results
from vfiolab.grading.notebook import changed_locked_cells, learner_version
from vfiolab.grading.observations import observe_all, round_trip, seen_from
from vfiolab.grading.release import ReleaseError, release_lab

SAMPLE = os.path.join(os.path.dirname(__file__), "sample_lab", "99-sample")


def test_expect_bytes_names_the_first_differing_byte():
    with pytest.raises(Fail, match=r"dst: first difference at byte 2 \(0x2\): observed 0xff, expected 0x03"):
        expect_bytes(b"\x01\x02\xff\x04", b"\x01\x02\x03\x04", "dst")
    with pytest.raises(Fail, match="3 bytes observed, 4 expected"):
        expect_bytes(b"\x01\x02\x03", b"\x01\x02\x03\x04", "dst")
    expect_bytes(bytearray(b"ab"), b"ab", "same")


def test_checks_judge_observations_and_a_failure_never_stops_the_others():
    @check("ex1-a", points=2)
    def a(seen):
        expect_equal(seen["x"], 1, "x")

    @check("ex1-b")
    def b(seen):
        return seen["missing"]

    @check("ex2-c")
    def c(seen):
        raise ZeroDivisionError("boom")

    seen = seen_from(round_trip(observe_all([], {})))
    seen.update(x=2)
    results = judge([a.__vfiolab_check__, b.__vfiolab_check__, c.__vfiolab_check__], seen)
    assert [r.earned for r in results] == [0, 0, 0]
    assert results[0].message == "x: observed 2, expected 1" and results[0].exercise == "ex1"
    assert "no observation named 'missing'" in results[1].message
    assert results[2].message == "could not judge: ZeroDivisionError: boom"


def test_public_checks_on_a_namespace_solution_and_blank():
    lab = Lab(SAMPLE)
    solved = {"dst": bytearray(reversed(bytes(range(1, 17)))), "checksum": lambda d: sum(d) % 256}
    _, results = public_results(lab, namespace=solved)
    assert [(r.id, r.passed) for r in results] == [("ex1-reverse", True), ("ex2-sum", True)]
    _, results = public_results(lab, "ex1", namespace={"dst": bytearray(16)})
    assert [r.id for r in results] == ["ex1-reverse"]
    assert "first difference at byte 0 (0x0): observed 0x00, expected 0x10" in results[0].message
    _, results = public_results(lab, namespace={})
    assert "could not observe dst: 'dst' is not defined in the notebook" in results[0].message


def test_lab_loads_hidden_checks_only_when_asked_and_refuses_misplaced_ones(tmp_path):
    lab = Lab(SAMPLE)
    assert [c.id for c in lab.load()[0]] == ["ex1-reverse", "ex2-sum"]
    checks = lab.load(hidden=True)[0]
    assert [c.id for c in checks if c.hidden] == ["ex1-untouched-src", "ex2-wraps"]
    bad = tmp_path / "98-bad"
    shutil.copytree(SAMPLE, bad)
    (bad / "checks.py").write_text("from vfiolab.grading import check\n"
                                   "@check('ex1-x', hidden=True)\ndef x(seen): pass\n")
    with pytest.raises(LabError, match="hidden=True but lives in checks.py"):
        bad_lab = Lab(bad)
        bad_lab.load()


def test_release_strips_solutions_and_leaves_hidden_checks_out(tmp_path):
    out = release_lab(SAMPLE, tmp_path)
    assert sorted(os.listdir(out)) == ["99-sample.ipynb", "checks.py"]
    nb = nbformat.read(os.path.join(out, "99-sample.ipynb"), as_version=4)
    text = open(os.path.join(out, "99-sample.ipynb")).read()
    assert "BEGIN SOLUTION" not in text and "reversed(src)" not in text and "% 256" not in text
    sources = [c.source for c in nb.cells]
    assert "def checksum(data):\n    # YOUR CODE HERE\n    raise NotImplementedError()" in sources
    assert "# YOUR CODE HERE\nraise NotImplementedError()" in sources
    assert all(c.get("outputs", []) == [] for c in nb.cells)
    assert all(c.metadata["nbgrader"]["schema_version"] == 3 for c in nb.cells)
    for secret in ("ex1-untouched-src", "ex2-wraps", "SECRET-HIDDEN-MARKER", "hidden_checks"):
        for name in os.listdir(out):
            assert secret not in open(os.path.join(out, name)).read()


def test_release_refuses_a_lab_that_mentions_a_hidden_check(tmp_path):
    lab = tmp_path / "99-sample"
    shutil.copytree(SAMPLE, lab)
    nb = nbformat.read(lab / "99-sample.ipynb", as_version=4)
    nb.cells[0].source += "\nThe hidden check ex2-wraps tests wrap-around."
    nbformat.write(nb, lab / "99-sample.ipynb")
    with pytest.raises(ReleaseError, match="mentions the hidden check 'ex2-wraps'"):
        release_lab(lab, tmp_path / "out")
    assert not (tmp_path / "out" / "99-sample").exists()


def test_vfiolab_release_command(tmp_path):
    done = subprocess.run([sys.executable, "-m", "vfiolab", "release", str(tmp_path), SAMPLE],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "99-sample" / "checks.py").exists()
    assert not (tmp_path / "99-sample" / "hidden_checks.py").exists()


def test_changed_locked_cells():
    released = learner_version(nbformat.read(os.path.join(SAMPLE, "99-sample.ipynb"), as_version=4))
    submitted = nbformat.from_dict(released)
    submitted.cells = [c for c in submitted.cells if c.metadata["nbgrader"]["grade_id"] != "ex1"]
    submitted.cells[-1].source = "print('all good')"
    assert changed_locked_cells(released, submitted) == (["ex1"], ["scoreboard"])


def test_tamper_check_sees_a_monkeypatch_in_a_fresh_interpreter():
    script = textwrap.dedent("""
        import vfiolab.grading.checks as checks
        from vfiolab.grading import tamper
        from vfiolab.grading.collector import library_roots, package_fingerprints
        prints, roots = package_fingerprints(), library_roots()
        assert tamper.find_tampering(prints, "vfiolab", roots) == [], "clean interpreter flagged"
        checks.judge = lambda *a: []
        print(tamper.find_tampering(prints, "vfiolab", roots))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "vfiolab.grading.checks.judge was replaced by code from <string>" in done.stdout


def test_a_check_cell_runs_only_the_observers_its_checks_read():
    from vfiolab.grading.checks import Observer
    from vfiolab.grading.observations import LazySeen
    calls = []

    def cheap(ns):
        calls.append("cheap")
        return ns["x"] * 2

    def costly(ns):
        calls.append("costly")
        raise RuntimeError("never needed by ex1")

    seen = LazySeen([Observer("cheap", cheap), Observer("costly", costly)], {"x": 21})

    @check("ex1-double", points=1)
    def double(seen):
        expect_equal(seen["cheap"], 42, "x doubled")

    results = judge([double.__vfiolab_check__], seen)
    assert [r.passed for r in results] == [True] and calls == ["cheap"]
    assert seen["cheap"] == 42 and calls == ["cheap"]           # observed once, then remembered
    with pytest.raises(Fail, match="could not observe costly: RuntimeError: never needed by ex1"):
        seen["costly"]
    with pytest.raises(KeyError, match="no observation named 'other'"):
        seen["other"]


def test_the_scoreboard_leaves_the_judging_to_the_grader_in_a_graded_kernel(monkeypatch, capsys):
    """Outside the grader it observes every observer; in a kernel the grader runs (kernel_env
    says so) it observes nothing: the grader observes that same state right after it."""
    from vfiolab.grading import learner
    from vfiolab.grading.sandbox import GRADED_KERNEL, kernel_env
    shown, calls = [], []
    monkeypatch.setattr(learner, "_display", shown.append)
    monkeypatch.setattr(learner, "observe_all", lambda observers, ns: calls.append(ns) or {})
    monkeypatch.delenv(GRADED_KERNEL, raising=False)
    learner.scoreboard(SAMPLE)
    assert len(calls) == 1 and len(shown) == 1
    assert kernel_env("/scratch", {})[GRADED_KERNEL] == "1"
    monkeypatch.setenv(GRADED_KERNEL, "1")
    learner.scoreboard(SAMPLE)
    assert len(calls) == 1 and len(shown) == 1
    assert "the grader judges this notebook after its last cell" in capsys.readouterr().out


def test_a_kernel_that_dies_before_answering_is_started_again(monkeypatch):
    """No learner code ran, so it is the grader's failure (a TCP port taken between choosing and
    binding it, seen 1 in 100 on a loaded machine): the runner tries again, and says so."""
    from vfiolab.grading import runner
    calls = []

    def execute(job, nb, budget):
        calls.append(len(nb.cells))
        if len(calls) == 1:
            return {"status": "error", "notes": ["the grader could not run the notebook"],
                    "detail": ["RuntimeError: Kernel died before replying to kernel_info"],
                    "phases": {}, "seconds": 0.1}
        return {"status": "ok", "notes": [], "observations": {"dst": 1}, "tampering": [],
                "phases": {"kernel start": 0.2}, "seconds": 0.5}

    monkeypatch.setattr(runner, "_execute", execute)
    nb = nbformat.read(os.path.join(SAMPLE, "99-sample.ipynb"), as_version=4)
    result = runner.run_notebook({"notebook_timeout": 10}, nb)
    assert result["status"] == "ok" and calls == [len(nb.cells)] * 2
    assert result["detail"] == ["the kernel failed to start 1 time(s) before this run: "
                                "RuntimeError: Kernel died before replying to kernel_info"]
