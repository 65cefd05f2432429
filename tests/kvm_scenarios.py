"""KVM scenarios: plain functions that take a board and assert what Linux's KVM (arm64, 6.1) answers.

They use only the board contract, so they are meant to run unchanged on the sim and on the qemu
board's real KVM (virtualization=on). Each errno names, in a comment, the kernel function that picks
it. On real KVM a guest waiting in WFI blocks KVM_RUN; these scenarios expect KVM_RUN to come back
with EINTR then (the sim does so at once; the qemu board's agent must interrupt a KVM_RUN that
blocks, as a VMM's timer signal would).

    kvm_scenarios.ALL: every scenario, each f(board)
"""
import errno
import struct

from vfiolab import guests
from vfiolab import uapi as U
from vfiolab import uapi_kvm as K
from vfiolab.hw.kvm import Vmm

from scenarios import Session, expect_errno

REPORT = guests.REPORT


def _attr(board, scratch, group, attr, payload=None):
    if payload is not None:
        scratch[0:len(payload)] = payload
    return K.kvm_device_attr(flags=0, group=group, attr=attr, addr=scratch.vaddr)


def guest(board, icfgr=guests.ICFGR_LEVEL):
    """A VM running lab 03's guest, parked in WFI with SPIs 32-63 enabled."""
    vmm = Vmm(board)
    vmm.load(guests.irq_guest())
    vmm.write32(guests.PARAMS, icfgr)
    exit = vmm.run()
    assert exit.reason == "intr", f"the guest should wait in WFI, got {exit}"
    return vmm


def take(vmm, intid):
    """The guest takes `intid`: an IAR report, then its EOI report. (Real KVM injects an irqfd from
    a kworker, which a loaded nested guest may run after KVM_RUN's slice: EINTR is retried.)"""
    iar = vmm.run_until_mmio()
    assert (iar.reason, iar.addr, iar.data) == ("mmio", REPORT, intid), f"expected IAR {intid}, got {iar}"
    eoi = vmm.run()
    assert (eoi.reason, eoi.addr, eoi.data) == ("mmio", REPORT + 4, intid), f"expected EOI {intid}, got {eoi}"


def nothing_pending(vmm):
    exit = vmm.run()
    assert exit.reason == "intr", f"no interrupt should be pending, but the guest went on: {exit}"


def readable(board, fd):
    return fd in board.poll([fd], 0)


def signal(board, fd):
    """Write 1 to a board eventfd (through the board: on the qemu board its twin is in the guest)."""
    board.write(fd, struct.pack("<Q", 1))


def count(board, fd):
    return struct.unpack("<Q", board.read(fd, 8))[0]


# --- scenarios ------------------------------------------------------------------------------------
def kvm_api_and_capabilities(board):
    kvm = board.open("/dev/kvm")
    try:
        assert board.ioctl(kvm, K.KVM_GET_API_VERSION, 0) == 12
        for cap in (K.KVM_CAP_IRQCHIP, K.KVM_CAP_IRQFD, K.KVM_CAP_IRQFD_RESAMPLE, K.KVM_CAP_ONE_REG,
                    K.KVM_CAP_DEVICE_CTRL, K.KVM_CAP_USER_MEMORY):
            assert board.ioctl(kvm, K.KVM_CHECK_EXTENSION, cap) > 0, cap
        assert board.ioctl(kvm, K.KVM_CHECK_EXTENSION, 100000) == 0
        assert board.ioctl(kvm, K.KVM_GET_VCPU_MMAP_SIZE, 0) == 2 * 4096   # kvm_run + coalesced MMIO page
        expect_errno(errno.EINVAL, board.ioctl, kvm, K.KVM_CREATE_VM, 0x100)   # kvm_arm_setup_stage2
        expect_errno(errno.EINVAL, board.ioctl, kvm, K.KVM_CREATE_VM, 60)      # IPA beyond the limit
        expect_errno(errno.EINVAL, board.ioctl, kvm, K.KVM_GET_API_VERSION, 1)
    finally:
        board.close(kvm)


class RawVm:
    """A VM built step by step with raw ioctls (the scenarios below get each step wrong once)."""

    def __init__(self, board):
        self.board = board
        self.kvm = board.open("/dev/kvm")
        self.vm = board.ioctl(self.kvm, K.KVM_CREATE_VM, 0)
        self.fds = [self.vm, self.kvm]
        self.scratch = board.alloc(4096)
        self.ram = board.alloc(0x10000)
        self.vcpu = self.gic = None

    def keep(self, fd):
        self.fds.insert(0, fd)
        return fd

    def memslot(self):
        region = K.kvm_userspace_memory_region(slot=0, guest_phys_addr=guests.BASE, memory_size=0x10000,
                                               userspace_addr=self.ram.vaddr)
        self.board.ioctl(self.vm, K.KVM_SET_USER_MEMORY_REGION, region)

    def vcpu_init(self):
        self.vcpu = self.keep(self.board.ioctl(self.vm, K.KVM_CREATE_VCPU, 0))
        init = K.kvm_vcpu_init()
        self.board.ioctl(self.vm, K.KVM_ARM_PREFERRED_TARGET, init)
        self.board.ioctl(self.vcpu, K.KVM_ARM_VCPU_INIT, init)
        return init

    def create_gic(self):
        device = K.kvm_create_device(type=K.KVM_DEV_TYPE_ARM_VGIC_V3)
        self.board.ioctl(self.vm, K.KVM_CREATE_DEVICE, device)
        self.gic = self.keep(device.fd)

    def attr(self, group, attr, payload=None):
        return _attr(self.board, self.scratch, group, attr, payload)

    def address(self, kind, value):
        return self.attr(K.KVM_DEV_ARM_VGIC_GRP_ADDR, kind, struct.pack("<Q", value))

    def close(self):
        for fd in self.fds:
            self.board.close(fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def kvm_setup_errnos(board):
    """Each step of a VM's set-up done out of order, with the errno the kernel picks."""
    with RawVm(board) as v:
        unaligned = K.kvm_userspace_memory_region(slot=1, guest_phys_addr=guests.BASE + 0x800,
                                                  memory_size=0x1000, userspace_addr=v.ram.vaddr)
        expect_errno(errno.EINVAL, board.ioctl, v.vm, K.KVM_SET_USER_MEMORY_REGION, unaligned)
        v.memslot()
        overlap = K.kvm_userspace_memory_region(slot=1, guest_phys_addr=guests.BASE + 0x1000,
                                                memory_size=0x1000, userspace_addr=v.ram.vaddr)
        expect_errno(errno.EEXIST, board.ioctl, v.vm, K.KVM_SET_USER_MEMORY_REGION, overlap)
        empty = K.kvm_userspace_memory_region(slot=2, memory_size=0)
        expect_errno(errno.EINVAL, board.ioctl, v.vm, K.KVM_SET_USER_MEMORY_REGION, empty)  # nothing to delete

        vcpu = v.keep(board.ioctl(v.vm, K.KVM_CREATE_VCPU, 0))
        one_reg = K.kvm_one_reg(id=K.REG_PC, addr=v.scratch.vaddr)
        expect_errno(errno.ENOEXEC, board.ioctl, vcpu, K.KVM_GET_ONE_REG, one_reg)   # not initialised
        expect_errno(errno.ENOEXEC, board.ioctl, vcpu, K.KVM_RUN, 0)
        init = K.kvm_vcpu_init()
        board.ioctl(v.vm, K.KVM_ARM_PREFERRED_TARGET, init)
        wrong = K.kvm_vcpu_init(target=init.target + 1)
        expect_errno(errno.EINVAL, board.ioctl, vcpu, K.KVM_ARM_VCPU_INIT, wrong)    # kvm_vcpu_set_target
        unknown = K.kvm_vcpu_init(target=init.target)
        unknown.features[0] = 1 << 9
        expect_errno(errno.ENOENT, board.ioctl, vcpu, K.KVM_ARM_VCPU_INIT, unknown)  # unknown feature
        board.ioctl(vcpu, K.KVM_ARM_VCPU_INIT, init)
        v.scratch[0:8] = struct.pack("<Q", 0x3C0 | 0x9)                              # EL2h
        pstate = K.kvm_one_reg(id=K.REG_PSTATE, addr=v.scratch.vaddr)
        expect_errno(errno.EINVAL, board.ioctl, vcpu, K.KVM_SET_ONE_REG, pstate)     # set_core_reg
        board.ioctl(vcpu, K.KVM_GET_ONE_REG, pstate)
        assert struct.unpack("<Q", v.scratch[0:8])[0] == 0x3C5                        # kvm_reset_vcpu

        efd = v.keep(board.eventfd())
        irqfd = K.kvm_irqfd(fd=efd, gsi=0)
        expect_errno(errno.EAGAIN, board.ioctl, v.vm, K.KVM_IRQFD, irqfd)  # kvm_arch_intc_initialized
        spi = K.kvm_irq_level(irq=K.irq_line(K.KVM_ARM_IRQ_TYPE_SPI, 32), level=1)
        expect_errno(errno.ENXIO, board.ioctl, v.vm, K.KVM_IRQ_LINE, spi)  # no in-kernel irqchip

        v.create_gic()
        expect_errno(errno.EEXIST, board.ioctl, v.vm, K.KVM_CREATE_DEVICE, K.kvm_create_device(type=7))
        expect_errno(errno.EBUSY, board.ioctl, v.vm, K.KVM_IRQ_LINE, spi)  # vgic_lazy_init: v3 needs INIT
        expect_errno(errno.EINVAL, board.ioctl, v.gic, K.KVM_SET_DEVICE_ATTR,
                     v.address(K.KVM_VGIC_V3_ADDR_TYPE_DIST, guests.GICD + 0x1000))  # vgic_check_iorange
        dist = v.address(K.KVM_VGIC_V3_ADDR_TYPE_DIST, guests.GICD)
        board.ioctl(v.gic, K.KVM_SET_DEVICE_ATTR, dist)
        expect_errno(errno.EEXIST, board.ioctl, v.gic, K.KVM_SET_DEVICE_ATTR, dist)  # set once
        expect_errno(errno.ENXIO, board.ioctl, v.gic, K.KVM_SET_DEVICE_ATTR,
                     v.address(9, 0))                                                # -ENODEV -> -ENXIO
        # The first KVM_RUN maps the vGIC: no redistributor address is ENXIO, and kvm_vm_dead():
        # from then on every ioctl of this VM, its vCPUs and its devices is EIO.
        expect_errno(errno.ENXIO, board.ioctl, vcpu, K.KVM_RUN, 0)
        expect_errno(errno.EIO, board.ioctl, v.gic, K.KVM_SET_DEVICE_ATTR,
                     v.address(K.KVM_VGIC_V3_ADDR_TYPE_REDIST, guests.REDIST))
        expect_errno(errno.EIO, board.ioctl, vcpu, K.KVM_GET_ONE_REG, pstate)
        expect_errno(errno.EIO, board.ioctl, v.vm, K.KVM_IRQ_LINE, spi)

    with RawVm(board) as v:                          # addresses set, CTRL_INIT forgotten
        v.memslot()
        v.vcpu_init()
        v.create_gic()
        board.ioctl(v.gic, K.KVM_SET_DEVICE_ATTR, v.address(K.KVM_VGIC_V3_ADDR_TYPE_DIST, guests.GICD))
        board.ioctl(v.gic, K.KVM_SET_DEVICE_ATTR, v.address(K.KVM_VGIC_V3_ADDR_TYPE_REDIST, guests.REDIST))
        regs = v.attr(K.KVM_DEV_ARM_VGIC_GRP_DIST_REGS, K.vgic_v3_attr(0), b"\0" * 4)
        expect_errno(errno.EBUSY, board.ioctl, v.gic, K.KVM_GET_DEVICE_ATTR, regs)   # not initialised
        expect_errno(errno.EBUSY, board.ioctl, v.vcpu, K.KVM_RUN, 0)     # vgic_v3_map_resources
        expect_errno(errno.EIO, board.ioctl, v.vcpu, K.KVM_RUN, 0)       # and the VM is dead

    with RawVm(board) as v:                          # set up right: what is refused afterwards
        v.memslot()
        v.vcpu_init()
        v.create_gic()
        board.ioctl(v.gic, K.KVM_SET_DEVICE_ATTR, v.address(K.KVM_VGIC_V3_ADDR_TYPE_DIST, guests.GICD))
        board.ioctl(v.gic, K.KVM_SET_DEVICE_ATTR, v.address(K.KVM_VGIC_V3_ADDR_TYPE_REDIST, guests.REDIST))
        board.ioctl(v.gic, K.KVM_SET_DEVICE_ATTR, v.attr(K.KVM_DEV_ARM_VGIC_GRP_CTRL, K.KVM_DEV_ARM_VGIC_CTRL_INIT))
        expect_errno(errno.EBUSY, board.ioctl, v.vm, K.KVM_CREATE_VCPU, 1)  # kvm_arch_vcpu_precreate
        nowhere = v.attr(K.KVM_DEV_ARM_VGIC_GRP_DIST_REGS, K.vgic_v3_attr(0x14), struct.pack("<I", 7))
        board.ioctl(v.gic, K.KVM_GET_DEVICE_ATTR, nowhere)          # no register there: reads 0
        assert v.scratch[0:4] == bytes(4)
        efd = v.keep(board.eventfd())
        irqfd = K.kvm_irqfd(fd=efd, gsi=0)
        expect_errno(errno.EINVAL, board.ioctl, v.vm, K.KVM_IRQFD, K.kvm_irqfd(fd=efd, gsi=0, flags=4))
        expect_errno(errno.EBADF, board.ioctl, v.vm, K.KVM_IRQFD, K.kvm_irqfd(fd=2**31 - 1, gsi=0))
        expect_errno(errno.EINVAL, board.ioctl, v.vm, K.KVM_IRQFD, K.kvm_irqfd(fd=v.vm, gsi=0))  # no eventfd
        board.ioctl(v.vm, K.KVM_IRQFD, irqfd)
        expect_errno(errno.EBUSY, board.ioctl, v.vm, K.KVM_IRQFD, K.kvm_irqfd(fd=efd, gsi=1))  # fd in use
        deassign = K.kvm_irqfd(fd=efd, gsi=0, flags=K.KVM_IRQFD_FLAG_DEASSIGN)
        board.ioctl(v.vm, K.KVM_IRQFD, deassign)
        board.ioctl(v.vm, K.KVM_IRQFD, deassign)                           # nothing left: 0 again
        low = K.kvm_irq_level(irq=K.irq_line(K.KVM_ARM_IRQ_TYPE_SPI, 31), level=1)
        expect_errno(errno.EINVAL, board.ioctl, v.vm, K.KVM_IRQ_LINE, low)   # not an SPI
        high = K.kvm_irq_level(irq=K.irq_line(K.KVM_ARM_IRQ_TYPE_SPI, 256), level=1)
        expect_errno(errno.EINVAL, board.ioctl, v.vm, K.KVM_IRQ_LINE, high)  # past the 224 SPIs


def kvm_gsi_is_spi_minus_32(board):
    with guest(board, guests.ICFGR_EDGE) as vmm:
        for gsi in (0, 5, 31):
            vmm.irq_line(gsi, 1)
            vmm.irq_line(gsi, 0)
            take(vmm, 32 + gsi)
        nothing_pending(vmm)


def kvm_edge_latches_level_follows_the_line(board):
    with guest(board, guests.ICFGR_EDGE) as vmm:
        vmm.irq_line(1, 1)
        vmm.irq_line(1, 0)              # an edge is latched: the pulse is taken
        take(vmm, 33)
        nothing_pending(vmm)
    with guest(board, guests.ICFGR_LEVEL) as vmm:
        vmm.irq_line(1, 1)
        vmm.irq_line(1, 0)              # a level interrupt whose line fell before the vCPU ran is gone
        nothing_pending(vmm)
        vmm.irq_line(1, 1)
        take(vmm, 33)
        take(vmm, 33)                   # still high after the EOI: it fires again
        vmm.irq_line(1, 0)              # lowered before the guest returns from the handler
        nothing_pending(vmm)


def kvm_irqfd_resample_on_level_eoi(board):
    with guest(board, guests.ICFGR_LEVEL) as vmm:
        trigger, resample = board.eventfd(), board.eventfd()
        try:
            vmm.irqfd(trigger, 3, resamplefd=resample)
            signal(board, trigger)
            iar = vmm.run_until_mmio()
            assert (iar.addr, iar.data) == (REPORT, 35)
            assert not readable(board, resample)           # not before the guest's EOI
            eoi = vmm.run()
            assert (eoi.addr, eoi.data) == (REPORT + 4, 35)
            assert readable(board, resample)
            assert count(board, resample) == 1
            assert not readable(board, trigger)            # KVM consumed the trigger's count
            nothing_pending(vmm)                           # the resampler lowered the line
            signal(board, trigger)
            take(vmm, 35)
            assert count(board, resample) == 1
            vmm.irqfd(trigger, 3, deassign=True)
        finally:
            board.close(trigger)
            board.close(resample)


def kvm_irqfd_edge_never_resamples(board):
    with guest(board, guests.ICFGR_EDGE) as vmm:
        trigger, resample = board.eventfd(), board.eventfd()
        try:
            vmm.irqfd(trigger, 7, resamplefd=resample)
            signal(board, trigger)
            take(vmm, 39)
            nothing_pending(vmm)
            assert not readable(board, resample)           # EOI maintenance only for level SPIs
            vmm.irqfd(trigger, 7, deassign=True)
        finally:
            board.close(trigger)
            board.close(resample)


def kvm_plain_irqfd_keeps_a_level_spi_asserted(board):
    """Without a resampler nothing lowers the line an irqfd raised (arm64's irqfd_wakeup injects
    level 1 in atomic context and never 0): a level SPI fires again after every EOI."""
    with guest(board, guests.ICFGR_LEVEL) as vmm:
        trigger = board.eventfd()
        try:
            vmm.irqfd(trigger, 8)
            signal(board, trigger)
            for _ in range(3):
                take(vmm, 40)
            vmm.irqfd(trigger, 8, deassign=True)   # deassigning a plain irqfd lowers nothing either
            take(vmm, 40)
        finally:
            board.close(trigger)


def kvm_irqfd_deassign_stops_injection(board):
    with guest(board, guests.ICFGR_EDGE) as vmm:
        trigger = board.eventfd()
        try:
            vmm.irqfd(trigger, 2)
            signal(board, trigger)
            take(vmm, 34)
            vmm.irqfd(trigger, 2, deassign=True)
            signal(board, trigger)
            nothing_pending(vmm)
            assert readable(board, trigger)                # nobody consumes it now
            assert count(board, trigger) == 1
        finally:
            board.close(trigger)


def kvm_distributor_through_dist_regs(board):
    """The VMM reads and sets distributor registers as QEMU does (KVM_DEV_ARM_VGIC_GRP_DIST_REGS)."""
    with guest(board, guests.ICFGR_LEVEL) as vmm:
        assert vmm.dist_reg(0x104) == 0xFFFFFFFF           # the guest's ISENABLER1
        assert vmm.dist_reg(0xC08) == 0                    # its ICFGR2: level
        assert vmm.dist_reg(0xC0C) == 0xAAAAAAAA           # SPIs 48-63 kept KVM's edge reset
        assert vmm.dist_reg(0x0) & 0x12 == 0x12            # ARE_NS | EnableGrp1A
        vmm.set_dist_reg(0xC08, 0xAAAAAAAA)                # the VMM makes SPIs 32-47 edge
        vmm.irq_line(4, 1)
        vmm.irq_line(4, 0)
        take(vmm, 36)                                      # an edge: the pulse was latched
        nothing_pending(vmm)


def kvm_edu_intx_through_irqfd_and_resamplefd(board, target):
    """Lab 03's chain with edu's INTx (level): ACTION_TRIGGER = the irqfd, ACTION_UNMASK = its
    resamplefd. raise (vfio-pci masks INTx, KVM injects SPI 37), the guest's IAR, edu acked, the
    guest's EOI (resamplefd -> vfio's virqfd unmasks INTx), raise again: no user-space step."""
    from vfiolab.drivers.edu import IRQ_ACK, IRQ_RAISE
    gsi = 5
    with Session(board, target) as s, guest(board, guests.ICFGR_LEVEL) as vmm:
        bar0 = U.vfio_region_info(index=U.VFIO_PCI_BAR0_REGION_INDEX)
        board.ioctl(s.device, U.VFIO_DEVICE_GET_REGION_INFO, bar0)
        regs = board.mmap(s.device, 0x1000, bar0.offset)
        trigger, resample = s._keep(board.eventfd()), s._keep(board.eventfd())
        board.ioctl(s.device, U.VFIO_DEVICE_SET_IRQS, U.irq_set_eventfds(U.VFIO_PCI_INTX_IRQ_INDEX, [trigger]))
        board.ioctl(s.device, U.VFIO_DEVICE_SET_IRQS, U.irq_set_eventfds(
            U.VFIO_PCI_INTX_IRQ_INDEX, [resample], flags=U.VFIO_IRQ_SET_DATA_EVENTFD | U.VFIO_IRQ_SET_ACTION_UNMASK))
        vmm.irqfd(trigger, gsi, resamplefd=resample)
        try:
            for i in (1, 2, 3):
                regs.write32(IRQ_RAISE, i)
                iar = vmm.run_until_mmio()
                assert (iar.addr, iar.data) == (REPORT, 32 + gsi), f"round {i}: expected the IAR of SPI 37, got {iar}"
                regs.write32(IRQ_ACK, i)
                eoi = vmm.run()
                assert (eoi.addr, eoi.data) == (REPORT + 4, 32 + gsi), f"round {i}: expected its EOI, got {eoi}"
                nothing_pending(vmm)
                assert not readable(board, trigger), "the trigger's count reached user space"
                assert not readable(board, resample), "the resamplefd's count reached user space"
        finally:
            regs.close()
            vmm.irqfd(trigger, gsi, deassign=True)
        board.ioctl(s.device, U.VFIO_DEVICE_SET_IRQS, U.vfio_irq_set(
            flags=U.VFIO_IRQ_SET_DATA_NONE | U.VFIO_IRQ_SET_ACTION_TRIGGER,
            index=U.VFIO_PCI_INTX_IRQ_INDEX, start=0, count=0))


def kvm_vgic_v3_needs_a_gicv3_host(board):
    """KVM offers the vGICv3 only on a GICv3 host (the board's gic="its"); with a GICv2 host
    (gic="v2m") CREATE_DEVICE of type 7 is ENODEV (kvm_ioctl_create_device: no ops registered)."""
    with RawVm(board) as v:
        test = K.kvm_create_device(type=K.KVM_DEV_TYPE_ARM_VGIC_V3, flags=1)   # KVM_CREATE_DEVICE_TEST
        if board.gic == "its":
            assert board.ioctl(v.vm, K.KVM_CREATE_DEVICE, test) == 0
        else:
            expect_errno(errno.ENODEV, board.ioctl, v.vm, K.KVM_CREATE_DEVICE, test)
        expect_errno(errno.ENODEV, board.ioctl, v.vm, K.KVM_CREATE_DEVICE, K.kvm_create_device(type=99, flags=1))


EDU = [kvm_edu_intx_through_irqfd_and_resamplefd]      # f(board, scenarios.edu(board))

ALL = [kvm_api_and_capabilities, kvm_setup_errnos, kvm_gsi_is_spi_minus_32,
       kvm_edge_latches_level_follows_the_line, kvm_irqfd_resample_on_level_eoi,
       kvm_irqfd_edge_never_resamples, kvm_plain_irqfd_keeps_a_level_spi_asserted,
       kvm_irqfd_deassign_stops_injection, kvm_vgic_v3_needs_a_gicv3_host,
       kvm_distributor_through_dist_regs]
