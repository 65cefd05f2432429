"""Lab 02 (a user-space PL330 driver through VFIO): the notebook runs, and grades as it should.

- The solution notebook runs top to bottom on the sim board; observed in its own kernel and judged
  with the public and hidden checks, it gets full marks.
- The learner's version (`vfiolab release`) runs with its errors and gets zero, each check with a hint.
- With VFIOLAB_BOARD=qemu the whole notebook runs too: the PL330 sections on the sim (the qemu
  board has no PL330), the qemu-board section (cells tagged "qemu") on the real kernel: edu through
  vfio-pci, and microcode on QEMU's own PL330. Learners turn that section on with RUN_QEMU = True.
The full grading pipeline (sandbox, tamper check) is exercised for every lab by the grading tests;
here the observers run in the executed kernel directly, which is quicker.
"""
import json
import os
import shutil

import nbformat
import pytest
from nbclient import NotebookClient

from vfiolab.grading.checks import judge
from vfiolab.grading.lab import Lab
from vfiolab.grading.observations import seen_from
from vfiolab.grading.release import release_lab
from vfiolab.qtest import find_qemu

LAB = os.path.join(os.path.dirname(__file__), "..", "labs", "02-vfio-pl330")
NOTEBOOK = "02-vfio-pl330.ipynb"
OBSERVE = ("import json\nfrom vfiolab.grading.collector import observe_notebook\n"
           "print('OBSERVED' + json.dumps(observe_notebook(open('checks.py').read(), "
           "get_ipython().user_ns)))")


def execute(nb, folder, board="sim", allow_errors=False, timeout=120):
    os.environ["VFIOLAB_BOARD"] = board     # the kernel inherits it
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=allow_errors,
                       resources={"metadata": {"path": folder}}).execute()
    finally:
        os.environ.pop("VFIOLAB_BOARD", None)
    return nb


def text_of(cell):
    out = []
    for o in cell.get("outputs", []):
        if o.output_type == "stream":
            out.append(o.text)
        elif o.output_type == "error":
            out.append(f"{o.ename}: {o.evalue}")
        elif "text/plain" in o.get("data", {}):
            out.append(o["data"]["text/plain"])
    return "".join(out)


def errors(nb):
    return [(i, text_of(c)) for i, c in enumerate(nb.cells)
            if c.cell_type == "code" and any(o.output_type == "error" for o in c.get("outputs", []))]


def judged(nb):
    """Public and hidden results on what the last (observing) cell saw."""
    out = text_of(nb.cells[-1])
    assert "OBSERVED" in out, out[-2000:]
    data = json.loads(out.split("OBSERVED", 1)[1])
    checks, _ = Lab(LAB).load(hidden=True)
    return judge(checks, seen_from(data))


def with_observer(nb):
    nb.cells.append(nbformat.v4.new_code_cell(OBSERVE))
    return nb


def test_solution_runs_on_the_sim_and_gets_full_marks(tmp_path):
    folder = shutil.copytree(LAB, tmp_path / "lab")
    nb = with_observer(nbformat.read(folder / NOTEBOOK, as_version=4))
    execute(nb, str(folder))
    assert errors(nb) == []
    outputs = "\n".join(text_of(c) for c in nb.cells if c.cell_type == "code")
    assert "PrimeCell ID  0xB105F00D" in outputs
    assert "64 bytes copied: True" in outputs
    assert "data write error" in outputs and "0x40000000 (8 bytes): translation" in outputs
    assert "undefined instruction" in outputs and "operand invalid" in outputs
    assert "second interrupt within 200 ms: 0" in outputs
    results = judged(nb)
    assert len({r.exercise for r in results}) >= 6 and any(r.hidden for r in results)
    failed = [(r.id, r.message) for r in results if not r.passed]
    assert failed == []


def test_learner_version_scores_zero_with_hints(tmp_path):
    folder = release_lab(Lab(LAB), str(tmp_path))
    nb = with_observer(nbformat.read(os.path.join(folder, NOTEBOOK), as_version=4))
    execute(nb, folder, allow_errors=True)
    results = judged(nb)
    passed = [r.id for r in results if r.passed]
    assert passed == []
    for r in results:
        assert len(r.message) > 20 and "Traceback" not in r.message, (r.id, r.message)


@pytest.mark.skipif(not find_qemu("qemu-system-aarch64"),
                    reason="qemu-system-aarch64 is not installed: the qemu-board section of lab 02 "
                           "cannot run (on Debian or Ubuntu: sudo apt install qemu-system-arm)")
def test_whole_notebook_runs_with_the_qemu_board(tmp_path):
    """VFIOLAB_BOARD=qemu: the PL330 sections still use the sim (the qemu board has no PL330);
    the cells tagged "qemu" run on the real kernel."""
    folder = shutil.copytree(LAB, tmp_path / "lab")
    nb = nbformat.read(folder / NOTEBOOK, as_version=4)
    assert sum(c.cell_type == "code" and "qemu" in c.metadata.get("tags", []) for c in nb.cells) >= 4
    execute(nb, str(folder), board="qemu", timeout=300)
    assert errors(nb) == []
    outputs = "\n".join(text_of(c) for c in nb.cells if c.cell_type == "code")
    assert "-> vfio-pci" in outputs
    assert "copied through the SMMUv3: True" in outputs
    assert "IOMMU faults: []" in outputs
    if find_qemu("qemu-system-arm"):
        assert "same destination bytes: True" in outputs
