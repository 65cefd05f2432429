"""A tiny VMM over the board contract: one VM, one vCPU, guest RAM, a vGICv3, irqfds, KVM_RUN.

    with Vmm(board) as vmm:                 # /dev/kvm of any board (sim, qemu, host)
        vmm.load(irq_guest())               # at guests.BASE; vmm.pc = guests.BASE
        vmm.run()                           # Exit("intr", ...): the guest waits in WFI
        vmm.irq_line(gsi=5, level=1)        # SPI 37
        vmm.run()                           # Exit("mmio", addr=REPORT, data=37, is_write=True)

The set-up is the order that works on real KVM (REFERENCE.md section 10): CREATE_VM, memory slot,
CREATE_VCPU, PREFERRED_TARGET + VCPU_INIT, vGICv3 (DIST, REDIST addresses), CTRL_INIT. Every call
is a raw ioctl with uapi_kvm's structs, so a lab can show each one; failures are the board's
OSError with the kernel's errno. User pointers (ONE_REG, device attributes) point into a
board.alloc() scratch page, as the sim board requires.
"""
import errno
import struct
from dataclasses import dataclass

from vfiolab import guests
from vfiolab import uapi_kvm as K


@dataclass(frozen=True)
class Exit:
    """One KVM_RUN's outcome: reason "mmio", "intr" (EINTR), "internal" or the raw exit number."""
    reason: str
    addr: int = 0
    data: int = 0
    length: int = 0
    is_write: bool = False
    detail: str = ""


class Vmm:
    def __init__(self, board, ram_size=0x10000, base=guests.BASE, dist=guests.GICD, redist=guests.REDIST,
                 nr_irqs=None):
        self.board, self.base = board, base
        self.fds = []
        self.kvm = self._keep(board.open("/dev/kvm"))
        self.vm = self._keep(board.ioctl(self.kvm, K.KVM_CREATE_VM, 0))
        self.ram = board.alloc(ram_size)
        region = K.kvm_userspace_memory_region(slot=0, flags=0, guest_phys_addr=base,
                                               memory_size=len(self.ram), userspace_addr=self.ram.vaddr)
        board.ioctl(self.vm, K.KVM_SET_USER_MEMORY_REGION, region)
        self.vcpu = self._keep(board.ioctl(self.vm, K.KVM_CREATE_VCPU, 0))
        init = K.kvm_vcpu_init()
        board.ioctl(self.vm, K.KVM_ARM_PREFERRED_TARGET, init)
        board.ioctl(self.vcpu, K.KVM_ARM_VCPU_INIT, init)
        self.scratch = board.alloc(4096)
        device = K.kvm_create_device(type=K.KVM_DEV_TYPE_ARM_VGIC_V3)
        board.ioctl(self.vm, K.KVM_CREATE_DEVICE, device)
        self.gic = self._keep(device.fd)
        if nr_irqs is not None:
            self.set_attr(K.KVM_DEV_ARM_VGIC_GRP_NR_IRQS, 0, struct.pack("<I", nr_irqs))
        self.set_attr(K.KVM_DEV_ARM_VGIC_GRP_ADDR, K.KVM_VGIC_V3_ADDR_TYPE_DIST, struct.pack("<Q", dist))
        self.set_attr(K.KVM_DEV_ARM_VGIC_GRP_ADDR, K.KVM_VGIC_V3_ADDR_TYPE_REDIST, struct.pack("<Q", redist))
        self.set_attr(K.KVM_DEV_ARM_VGIC_GRP_CTRL, K.KVM_DEV_ARM_VGIC_CTRL_INIT, None)
        size = board.ioctl(self.kvm, K.KVM_GET_VCPU_MMAP_SIZE, 0)
        self.run_page = board.mmap(self.vcpu, size, 0)

    def _keep(self, fd):
        self.fds.append(fd)
        return fd

    # --- guest memory and registers ----------------------------------------------------------
    def load(self, code, offset=0):
        """Copy guest bytes into RAM at base + offset and point the PC at them. A board whose
        CPU caches translated code (the qemu board: QEMU's TCG) writes it with write_code."""
        write_code = getattr(self.board, "write_code", None)
        if write_code is not None:
            write_code(self.ram, offset, bytes(code))
        else:
            self.ram[offset:offset + len(code)] = bytes(code)
        self.pc = self.base + offset

    def write32(self, address, value):
        off = address - self.base
        self.ram[off:off + 4] = struct.pack("<I", value)

    def set_reg(self, reg_id, value):
        self.scratch[0:8] = struct.pack("<Q", value & (2**64 - 1))
        self.board.ioctl(self.vcpu, K.KVM_SET_ONE_REG, K.kvm_one_reg(id=reg_id, addr=self.scratch.vaddr))

    def get_reg(self, reg_id):
        self.board.ioctl(self.vcpu, K.KVM_GET_ONE_REG, K.kvm_one_reg(id=reg_id, addr=self.scratch.vaddr))
        return struct.unpack("<Q", self.scratch[0:8])[0]

    @property
    def pc(self):
        return self.get_reg(K.REG_PC)

    @pc.setter
    def pc(self, value):
        self.set_reg(K.REG_PC, value)

    # --- the vGIC --------------------------------------------------------------------------
    def set_attr(self, group, attr, value):
        """KVM_SET_DEVICE_ATTR with `value` (bytes, or None for no payload) at a user address."""
        if value is not None:
            self.scratch[64:64 + len(value)] = value
        arg = K.kvm_device_attr(flags=0, group=group, attr=attr, addr=self.scratch.vaddr + 64)
        return self.board.ioctl(self.gic, K.KVM_SET_DEVICE_ATTR, arg)

    def get_attr(self, group, attr, size):
        arg = K.kvm_device_attr(flags=0, group=group, attr=attr, addr=self.scratch.vaddr + 64)
        self.board.ioctl(self.gic, K.KVM_GET_DEVICE_ATTR, arg)
        return bytes(self.scratch[64:64 + size])

    def dist_reg(self, offset):
        """A distributor register through KVM_DEV_ARM_VGIC_GRP_DIST_REGS, as QEMU saves it."""
        return struct.unpack("<I", self.get_attr(K.KVM_DEV_ARM_VGIC_GRP_DIST_REGS, K.vgic_v3_attr(offset), 4))[0]

    def set_dist_reg(self, offset, value):
        self.set_attr(K.KVM_DEV_ARM_VGIC_GRP_DIST_REGS, K.vgic_v3_attr(offset), struct.pack("<I", value))

    # --- interrupts --------------------------------------------------------------------------
    def irqfd(self, fd, gsi, resamplefd=None, deassign=False):
        flags = (K.KVM_IRQFD_FLAG_RESAMPLE if resamplefd is not None else 0) | \
                (K.KVM_IRQFD_FLAG_DEASSIGN if deassign else 0)
        arg = K.kvm_irqfd(fd=fd, gsi=gsi, flags=flags,
                          resamplefd=resamplefd if resamplefd is not None else 0)
        return self.board.ioctl(self.vm, K.KVM_IRQFD, arg)

    def irq_line(self, gsi, level):
        """Drive SPI 32 + gsi from user space (KVM_IRQ_LINE)."""
        arg = K.kvm_irq_level(irq=K.irq_line(K.KVM_ARM_IRQ_TYPE_SPI, 32 + gsi), level=1 if level else 0)
        return self.board.ioctl(self.vm, K.KVM_IRQ_LINE, arg)

    # --- running -----------------------------------------------------------------------------
    def run(self, mmio_read_data=0):
        """One KVM_RUN. An MMIO load exit is answered with mmio_read_data at the next run."""
        run_page = self.run_page
        if run_page.read32(8) == K.KVM_EXIT_MMIO and not run_page.read8(32 + 20):
            run_page.write64(32 + 8, mmio_read_data & (2**64 - 1))
        try:
            self.board.ioctl(self.vcpu, K.KVM_RUN, 0)
        except OSError as e:
            if e.errno == errno.EINTR:
                return Exit("intr", detail=e.strerror)
            raise
        reason = run_page.read32(8)
        if reason == K.KVM_EXIT_MMIO:
            length = run_page.read32(32 + 16)
            data = run_page.read64(32 + 8) & ((1 << (8 * length)) - 1)
            return Exit("mmio", addr=run_page.read64(32), data=data, length=length,
                        is_write=bool(run_page.read8(32 + 20)))
        if reason == K.KVM_EXIT_INTERNAL_ERROR:
            return Exit("internal", addr=run_page.read64(32 + 8), data=run_page.read64(32 + 16),
                        detail=f"suberror {run_page.read32(32)}")
        return Exit(str(reason))

    def run_until_mmio(self, tries=4):
        """KVM_RUN until an MMIO exit (EINTR and other exits are retried up to `tries` times)."""
        for _ in range(tries):
            exit = self.run()
            if exit.reason == "mmio":
                return exit
        return exit

    def close(self):
        self.run_page.close()
        for fd in reversed(self.fds):
            try:
                self.board.close(fd)
            except OSError:
                pass
        self.fds = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
