"""The KVM scenarios (tests/kvm_scenarios.py) on the qemu board's real KVM (Linux 6.1, nested under
QEMU TCG with virtualization=on), unchanged: where the sim and the real kernel disagree, this is
where it shows."""
import shutil
import threading
import time

import pytest

import vfiolab
from vfiolab import uapi_kvm as K

import kvm_scenarios
from kvm_scenarios import count, signal

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


def test_a_blocking_kvm_run_does_not_stall_other_calls(board):
    """The guest waits in WFI, so KVM_RUN blocks (until the agent's 0.5 s slice ends it with
    EINTR); meanwhile another thread's ioctls and eventfd writes are answered."""
    with kvm_scenarios.guest(board) as vmm:
        done = []

        def vcpu_thread():
            assert vmm.run().reason == "intr"
            done.append("KVM_RUN")

        runner = threading.Thread(target=vcpu_thread)
        runner.start()
        time.sleep(0.1)                                   # KVM_RUN is on its way to the guest
        for _ in range(3):
            assert board.ioctl(vmm.kvm, K.KVM_GET_API_VERSION, 0) == 12
        efd = board.eventfd()
        signal(board, efd)
        assert count(board, efd) == 1
        board.close(efd)
        done.append("other calls")
        runner.join(30)
        assert done == ["other calls", "KVM_RUN"]
