"""`vfiolab bench classrun`'s parts, without grading a class (the run itself is a benchmark): the
class it writes holds each kind of submission as said, and its sampler sees a whole process tree."""
import os
import subprocess
import sys
import time

import nbformat

from vfiolab.bench.classrun import KINDS, TAMPER, TreeSampler, make_class

SAMPLE = os.path.join(os.path.dirname(__file__), "sample_lab", "99-sample")


def test_the_class_holds_solutions_blanks_a_late_exit_and_tampering(tmp_path):
    kinds = make_class([SAMPLE], 10, str(tmp_path))
    assert [kinds[(f"learner{i:03d}", "99-sample")] for i in range(10)] == KINDS
    assert sorted(os.listdir(tmp_path / "submissions" / "learner000" / "99-sample")) == ["99-sample.ipynb"]

    def cells(i):
        nb = nbformat.read(tmp_path / "submissions" / f"learner{i:03d}" / "99-sample" / "99-sample.ipynb", 4)
        return [c.source for c in nb.cells]

    solution = cells(0)
    assert any("BEGIN SOLUTION" in c for c in solution)
    assert not any("BEGIN SOLUTION" in c for c in cells(5)) and len(cells(5)) == len(solution)
    late = cells(8)
    exit_at = late.index("import os\nos._exit(1)")
    assert late[:exit_at] + late[exit_at + 1:] == solution
    assert 'grading.check_exercise("ex1")' in "".join(late[:exit_at])      # ex1 is kept
    assert 'grading.check_exercise("ex2")' in "".join(late[exit_at:])      # ex2 comes after
    assert cells(9)[2] == TAMPER and cells(9)[:2] + cells(9)[3:] == solution


def test_the_sampler_sums_the_memory_of_the_whole_process_tree():
    parent = subprocess.Popen([sys.executable, "-c",
                               "import subprocess, sys; subprocess.run([sys.executable, '-c', "
                               "'import time; b = bytearray(64 << 20); time.sleep(3)'])"])
    try:
        sampler = TreeSampler(parent.pid)
        time.sleep(2)
        sampler.stop()
    finally:
        parent.kill()
        parent.wait()
    assert sampler.most >= 2                                  # the child counts too
    assert sampler.largest_kib > 64 << 10                      # the child's 64 MiB
    assert sampler.peak_kib > sampler.largest_kib and sampler.peak_pss_kib > 64 << 10
    assert sampler.loads
