"""KVM on the sim board: the portable scenarios (tests/kvm_scenarios.py) and what only the sim can
show (exits of instructions it cannot run, the step budget, bad arguments)."""
import errno
import os

import pytest

import vfiolab
from vfiolab import guests
from vfiolab import uapi_kvm as K
from vfiolab.hw.a64_asm import assemble
from vfiolab.hw.kvm import Vmm

import kvm_scenarios
from scenarios import expect_errno


@pytest.fixture
def board():
    with vfiolab.open_board("sim") as b:
        yield b


@pytest.mark.parametrize("scenario", kvm_scenarios.ALL, ids=lambda f: f.__name__)
def test_kvm_scenario(board, scenario):
    scenario(board)


@pytest.mark.parametrize("scenario", kvm_scenarios.EDU, ids=lambda f: f.__name__)
def test_kvm_edu_scenario_on_the_virt_twin(scenario):
    import scenarios
    with vfiolab.open_board("sim", layout="virt") as virt:
        scenario(virt, scenarios.edu(virt))


def test_registers_through_one_reg(board):
    with Vmm(board) as vmm:
        vmm.load(assemble("add x2, x0, x1\nmovz x3, #0x0a00, lsl #16\nstr x2, [x3]\nb .\n", base=guests.BASE))
        vmm.set_reg(K.x_reg(0), 40)
        vmm.set_reg(K.x_reg(1), 2)
        exit = vmm.run()
        assert (exit.reason, exit.addr, exit.data, exit.length) == ("mmio", guests.REPORT, 42, 8)
        assert vmm.get_reg(K.x_reg(2)) == 42 and vmm.pc == guests.BASE + 8
        assert vmm.get_reg(K.REG_PSTATE) == 0x3C5
        vreg0 = K.KVM_REG_ARM64 | 0x0040000000000000 | K.KVM_REG_ARM_CORE | 0x150 // 4
        expect_errno(errno.ENOENT, vmm.get_reg, vreg0)          # V0: real KVM answers, the sim has no FP
        expect_errno(errno.EINVAL, vmm.get_reg, K.core_reg(0x150))   # V0 is 128 bits, not 64
        expect_errno(errno.EINVAL, vmm.get_reg, K.core_reg(4))       # the middle of x0
        expect_errno(errno.ENOENT, vmm.get_reg, K.core_reg(0x360))   # past struct kvm_regs
        expect_errno(errno.EINVAL, vmm.get_reg, K.REG_PC & ~K.KVM_REG_SIZE_U64 | K.KVM_REG_SIZE_U32)
        one = K.kvm_one_reg(id=K.REG_PC, addr=12345)
        expect_errno(errno.EFAULT, board.ioctl, vmm.vcpu, K.KVM_GET_ONE_REG, one)   # not board memory


def test_mmio_load_data_comes_from_kvm_run(board):
    with Vmm(board) as vmm:
        vmm.load(assemble("movz x3, #0x0a00, lsl #16\nldr w1, [x3, #8]\nadd x1, x1, #1\nstr w1, [x3]\nb .\n",
                          base=guests.BASE))
        load = vmm.run()
        assert (load.addr, load.length, load.is_write) == (guests.REPORT + 8, 4, False)
        store = vmm.run(mmio_read_data=0x1234)
        assert (store.addr, store.data) == (guests.REPORT, 0x1235)


def test_what_the_interpreter_cannot_run_is_an_internal_error_exit(board):
    with Vmm(board) as vmm:
        vmm.load(assemble("nop\n.word 0xd4000002\n", base=guests.BASE))    # hvc #0
        exit = vmm.run()
        assert exit.reason == "internal" and (exit.addr, exit.data) == (guests.BASE + 4, 0xD4000002)
        assert "cannot run undef" in board.dmesg()


def test_a_guest_that_never_exits_gives_eintr(board):
    with Vmm(board) as vmm:
        vmm.load(assemble("b .\n", base=guests.BASE))
        exit = vmm.run()
        assert exit.reason == "intr" and "time slice" in exit.detail
        assert vmm.run_page.read32(8) == K.KVM_EXIT_INTR


def test_writeback_mmio_is_enosys(board):
    with Vmm(board) as vmm:
        vmm.load(assemble("movz x3, #0x0a00, lsl #16\nstr w0, [x3, #4]!\n", base=guests.BASE))
        expect_errno(errno.ENOSYS, vmm.run)


def test_the_vm_outlives_its_fd_while_a_vcpu_is_open(board):
    vmm = Vmm(board)
    vmm.load(guests.irq_guest())
    board.close(vmm.vm)
    vmm.fds.remove(vmm.vm)
    assert vmm.run().reason == "intr"
    vmm.set_dist_reg(0x204, 1)                # ISPENDR1 through the device fd: SPI 32 pending
    assert vmm.run().data == 32
    vmm.close()
    assert board.kvm.vms == []


def test_an_irqfd_raised_by_a_device_interrupt_reaches_the_guest_through_board_calls(board):
    with kvm_scenarios.guest(board, guests.ICFGR_EDGE) as vmm:
        trigger = board.eventfd()
        vmm.irqfd(trigger, 9)
        os.write(trigger, (1).to_bytes(8, "little"))
        assert board.poll([trigger], 0) == []       # a board call ran KVM's irqfd wakeup first
        assert vmm.run().data == 41
        board.close(trigger)
