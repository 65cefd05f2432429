"""Lab 03 (the xgmac reset module and irqfd): the notebook runs top to bottom on the sim, in under
10 s of cells, with the evidence each section is about in its outputs; every cell run twice gives
the same answer; with VFIOLAB_BOARD=qemu the qemu section runs on the real kernel. Grading
(solution full marks, learner version zero with hints) is tests/test_grading_labs.py's, for every
lab through `vfiolab grade`.
"""
import shutil

import pytest

from emulation import limit_note, scaled
from lab_runs import errors, html_of, lab_copy, needs_qemu, run_all, run_twice, text_of

LAB = "03-xgmac-irqfd"


def test_solution_runs_on_the_sim_in_under_10_s(tmp_path):
    nb, out, took = run_all(LAB, tmp_path)
    assert took < scaled(10), f"Run All took {took:.1f} s of cells, {limit_note(10)}"
    # 1: a DMA outlives its owner without a reset; the reset module stops it, bases untouched
    assert "RX DMA: waiting for a frame" in out and "VFIO: no reset function found!" in out
    assert "frame in my buffer, though I never started the device: True" in out
    assert "DMA_RX_BASE_ADDR  left 0x40000000, after close 0x40000000" in out
    assert "CONTROL           left 0x00000004, after close 0x00000000" in out
    assert "the MAC took the frame: False ; IOMMU faults: []" in out
    assert "the MAC took the next frame: False" in out          # the learner's own reset
    # 2: the refusal, then the bind without a reset
    assert "driver after the bind: None" in out
    assert "VFIO: No reset function found for device fff50000.ethernet" in out
    assert "flags 0x4: PLATFORM True, RESET False; driver vfio-platform" in out
    # 3: loopback and the level IRQ
    assert "IRQ 0: EVENTFD|MASKABLE|AUTOMASKED" in out
    assert "sent 114 bytes, received 114: the same" in out
    assert "received 100 bytes: the same; masked after handle_irq: False" in out
    # 4: the guest; the edge pitfall and its fix
    assert "round 2: the device raised its line; the guest took nothing" in out
    assert "GICD_ICFGR2 = 0xaaaaa2aa" in out
    assert "round 2: the guest took INTID 37, EOI written; after it VFIO unmasked the line" in out
    assert "user space / irqfd =" in out
    assert "qemu section skipped: set RUN_QEMU = True" in out
    assert "total: 18/18" in out                               # the public checks, on the scoreboard
    html = html_of(nb)
    assert "IRQ timeline: irqfd + resamplefd" in html and "EOI of INTID 37 written" in html
    assert "IAR: took INTID 37" in html


# Cells whose second run cannot print the same: they time the two interrupt paths.
MEASURED = {"code-29", "code-33"}


def test_every_cell_run_twice_gives_the_same_answer_as_once(tmp_path):
    """Each code cell, exercises included, runs twice in a row: the second run shows what the
    first did, never an error (the timing cells print new figures)."""
    folder, nb = lab_copy(LAB, tmp_path)
    gids = {c.metadata["nbgrader"]["grade_id"]: c.source for c in nb.cells}
    assert all("median_us(" in gids[g] for g in MEASURED), "MEASURED names the timing cells"
    pairs = run_twice(nb, folder)
    assert errors(nb) == []
    checked = 0
    for gid, once, twice in pairs:
        if gid in MEASURED:
            continue
        assert text_of(twice) == text_of(once), gid
        checked += gid.startswith("ex")
    assert checked >= 12              # every answer and check cell of the six exercises


VFIO_PLATFORM_TOOLS = ("apt-get", "aarch64-linux-gnu-gcc", "make", "dpkg-deb", "dtc")


@needs_qemu(LAB)
@pytest.mark.skipif(not all(shutil.which(t) for t in VFIO_PLATFORM_TOOLS),
                    reason="the qemu board's vfio-platform build needs " + ", ".join(VFIO_PLATFORM_TOOLS)
                           + ": ./bootstrap test installs them")
def test_whole_notebook_runs_with_the_qemu_board(tmp_path):
    """VFIOLAB_BOARD=qemu: sections 1-4 stay on the sim (QEMU's virt has no xgmac); the cells
    tagged "qemu" run on the real kernel: the real refusal and the real Calxeda reset module
    (vfio_platform=True: modules built for the guest kernel, no-IOMMU), then edu's INTx into the
    lab's guest through real KVM's irqfd + resamplefd."""
    _, out, _ = run_all(LAB, tmp_path, board="qemu", timeout=600)
    print(out[out.index("qemu board"):])
    assert "a000000.ethernet: driver after the bind without the reset module: None" in out
    assert "VFIO: No reset function found for device a000000.ethernet" in out
    assert "with vfio_platform_calxedaxgmac loaded: driver vfio-platform" in out
    assert "device flags 0x5: RESET True" in out
    assert "rmmod vfio_platform_calxedaxgmac while the device is bound:" in out
    assert out.count("a000000.ethernet: VFIO: reset") == 3                 # open, RESET, close
    assert "real KVM, first KVM_RUN: intr" in out
    for i in (1, 2, 3):
        assert (f"round {i}: guest IAR took INTID 37, then EOI written; counts left for user "
                "space: trigger 0, resample 0") in out
