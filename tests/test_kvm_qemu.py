"""The KVM scenarios (tests/kvm_scenarios.py) on the qemu board's real KVM (Linux 6.1, nested under
QEMU TCG with virtualization=on), unchanged: where the sim and the real kernel disagree, this is
where it shows."""
import shutil

import pytest

import vfiolab

import kvm_scenarios

pytestmark = pytest.mark.skipif(not shutil.which("qemu-system-aarch64"),
                                reason="qemu-system-aarch64 is not installed (./bootstrap test installs it)")


@pytest.fixture(scope="module")
def board():
    with vfiolab.open_board("qemu", quiet=True) as b:
        yield b


def test_the_guest_kernel_has_kvm(board):
    assert "kvm" in board.listdir("/dev")
    assert "Hyp mode initialized successfully" in board.dmesg() or "VHE mode initialized" in board.dmesg()


@pytest.mark.parametrize("scenario", kvm_scenarios.ALL, ids=lambda f: f.__name__)
def test_kvm_scenario_on_real_kvm(board, scenario):
    scenario(board)


@pytest.mark.parametrize("scenario", kvm_scenarios.EDU, ids=lambda f: f.__name__)
def test_kvm_edu_scenario_on_real_kvm(board, scenario):
    import scenarios
    scenario(board, scenarios.edu(board))
