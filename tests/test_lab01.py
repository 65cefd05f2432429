"""Lab 01 (the platform bus): the notebook runs top to bottom on the sim board (fast) and on the
qemu board (a real kernel)."""
import pytest

from emulation import limit_note, scaled
from lab_runs import cell_text as outputs, needs_qemu, run_all

LAB = "01-platform-bus"


def test_notebook_runs_on_the_sim_board_in_10_seconds(tmp_path):
    nb, _, seconds = run_all(LAB, tmp_path, timeout=180)
    assert "total: 10/10" in outputs(nb, "scoreboard")
    assert "2c0a0000.dma is now held by vfio-amba | host driver was dma-pl330" in outputs(nb, "ex3-answer")
    assert "group 2 viable? False" in outputs(nb, "viable-demo")
    assert seconds <= scaled(10), f"the notebook's cells took {seconds:.1f} s on the sim board, {limit_note(10)}"


@pytest.mark.timeout(300)
@needs_qemu(LAB)
def test_notebook_runs_on_the_qemu_board(tmp_path):
    nb, _, _ = run_all(LAB, tmp_path, board="qemu", timeout=180)
    assert "total: 10/10" in outputs(nb, "scoreboard")
    assert "0000:00:01.0 is now held by vfio-pci | host driver was None" in outputs(nb, "ex3-answer")
    # Slot 3's shared group: the second edu joined it when vfio-pci probed it; virtio-pci blocks it.
    assert "IOMMU group 0: ['0000:00:03.0', '0000:00:03.1']" in outputs(nb, "groups-list")
    assert "the group with the most devices: 0" in outputs(nb, "groups-list")
    assert "0000:00:03.0 is on vfio-pci; group 0 viable? False" in outputs(nb, "viable-demo")
    assert "{'0000:00:03.1': 'virtio-pci'}" in outputs(nb, "viable-demo")
    assert "blockers left: []" in outputs(nb, "ex5-answer")
    assert "0x008000000-0x0080fffff msi" in outputs(nb, "resv-show")      # the real arm-smmu-v3's window
    assert "PL330         0 found" in outputs(nb, "qemu-check")

# Release and grading (solution full marks, learner version zero with hints): tests/test_grading_labs.py.
