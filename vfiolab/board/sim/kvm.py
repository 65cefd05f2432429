"""/dev/kvm on the sim board: the VM file, memory slots, irqfd/resamplefd and KVM_IRQ_LINE
(virt/kvm/kvm_main.c, virt/kvm/eventfd.c, arch/arm64/kvm/arm.c, Linux 6.1). The vCPU is in
kvm_vcpu.py, the vGICv3 device in kvm_vgic.py; the guest runs on vfiolab/csrc/aarch64.c.

irqfd: an irqfd holds the kernel's reference to its eventfd. The kernel's irqfd_wakeup runs inside
eventfd_signal; here every board call (board.service) and every slice of KVM_RUN consumes the
eventfd's count and injects, so a VFIO trigger eventfd wired as an irqfd reaches the guest
without user space reading it (only a raw os.read of that fd between two board calls could
see the count first). An irqfd asserts its SPI (level 1) and never deasserts it by itself; with
KVM_IRQFD_FLAG_RESAMPLE the guest's deactivation of the (level) SPI lowers the line and signals
every resamplefd on that gsi (irqfd_resampler_ack), which VFIO's unmask virqfd turns into an
unmask. Without a resampler a level SPI stays asserted: use edge SPIs for plain irqfds.

Where the sim knowingly differs from a real kernel:
  - one vCPU (KVM_CAP_MAX_VCPUS and NR_VCPUS say 1; a second CREATE_VCPU is EINVAL);
  - 32 memory slots (KVM_CAP_NR_MEMSLOTS says 32); a slot's memory must be one board.alloc()
    buffer (EFAULT at SET_USER_MEMORY_REGION otherwise, where the kernel would fault at run time);
    every user pointer (ONE_REG, device attributes) must point into board.alloc() memory too;
  - no KVM_SET_GSI_ROUTING (KVM_CAP_IRQ_ROUTING says 0): gsi N is SPI 32 + N, the default route;
  - no user-space irqchip: KVM_ARM_IRQ_TYPE_CPU without a vGIC is EOPNOTSUPP;
  - vGICv2 and the ITS device are not offered (CREATE_DEVICE: ENODEV, as a host without them).
"""
import ctypes
import errno
import os
import struct

from vfiolab import uapi_kvm as K

from .errors import kernel_error
from .eventfds import EventfdCtx
from .files import File
from .memory import PAGE_SIZE
from .userbuf import user_pointer

IPA_DEFAULT, IPA_MAX, IPA_MIN = 40, 44, 32     # get_kvm_ipa_limit() on the qemu board: 44
MAX_VCPUS = 1
NR_MEMSLOTS = 32
VCPU_MMAP_SIZE = (K.KVM_COALESCED_MMIO_PAGE_OFFSET + 1) * PAGE_SIZE
CAPABILITIES = {
    K.KVM_CAP_IRQCHIP: 1, K.KVM_CAP_USER_MEMORY: 1, K.KVM_CAP_NR_VCPUS: MAX_VCPUS,
    K.KVM_CAP_NR_MEMSLOTS: NR_MEMSLOTS, K.KVM_CAP_IRQ_ROUTING: 0, K.KVM_CAP_IRQFD: 1,
    K.KVM_CAP_MAX_VCPUS: MAX_VCPUS, K.KVM_CAP_ONE_REG: 1, K.KVM_CAP_IRQFD_RESAMPLE: 1,
    K.KVM_CAP_ARM_PSCI: 1, K.KVM_CAP_DEVICE_CTRL: 1, K.KVM_CAP_ARM_PSCI_0_2: 1,
    K.KVM_CAP_ARM_VM_IPA_SIZE: IPA_MAX,
}


# --- user memory -----------------------------------------------------------------------------------
def copy_from_user(board, address, size, what):
    """The bytes at a user address, which must lie inside one board.alloc() buffer (EFAULT)."""
    pin = _pin(board, address, size, what)
    try:
        return ctypes.string_at(address, size)
    finally:
        pin.release()


def copy_to_user(board, address, data, what):
    pin = _pin(board, address, len(data), what)
    try:
        ctypes.memmove(address, bytes(data), len(data))
    finally:
        pin.release()


def _pin(board, address, size, what):
    try:
        return board.memory.pin(address, size)
    except OSError:
        raise kernel_error(errno.EFAULT, f"{what}: {address:#x} is not inside a board.alloc() buffer "
                           "(the sim follows user pointers only into board memory)") from None


# --- /dev/kvm --------------------------------------------------------------------------------------
class KvmHost:
    """The KVM module: /dev/kvm and the VMs made through it (board.service() reaches their irqfds)."""

    def __init__(self, board):
        self.board = board
        self.vms = []
        board.vfs.add("/dev/kvm", board.char_device(lambda flags: KvmDevFile(self)))

    def service(self):
        for vm in list(self.vms):
            vm.service_irqfds()


class KvmDevFile(File):
    name = "/dev/kvm"

    def __init__(self, host):
        self.host = host

    def ioctl(self, request, arg):
        """kvm_dev_ioctl."""
        if request == K.KVM_GET_API_VERSION:
            _require_zero(arg, "KVM_GET_API_VERSION")
            return K.KVM_API_VERSION
        if request == K.KVM_CREATE_VM:
            return self.create_vm(arg)
        if request == K.KVM_CHECK_EXTENSION:
            return check_extension(arg)
        if request == K.KVM_GET_VCPU_MMAP_SIZE:
            _require_zero(arg, "KVM_GET_VCPU_MMAP_SIZE")
            return VCPU_MMAP_SIZE
        raise kernel_error(errno.EINVAL, f"/dev/kvm has no ioctl {request:#x} (kvm_arch_dev_ioctl)")

    def create_vm(self, machine_type):
        """kvm_arm_setup_stage2: type bits [7:0] are the IPA size (0: 40 bits)."""
        if not isinstance(machine_type, int) or machine_type & ~0xFF:
            raise kernel_error(errno.EINVAL, "KVM_CREATE_VM: the type is KVM_VM_TYPE_ARM_IPA_SIZE(bits) or 0")
        ipa = machine_type & 0xFF or IPA_DEFAULT
        if ipa > IPA_MAX or ipa < IPA_MIN:
            raise kernel_error(errno.EINVAL, f"KVM_CREATE_VM: IPA size {ipa} is outside {IPA_MIN}..{IPA_MAX}")
        vm = VmFile(self.host, ipa)
        self.host.vms.append(vm)
        return self.host.board.install(vm)


def _require_zero(arg, what):
    if arg != 0:
        raise kernel_error(errno.EINVAL, f"{what} takes 0 as its argument")


def check_extension(cap):
    if not isinstance(cap, int):
        raise kernel_error(errno.EINVAL, "KVM_CHECK_EXTENSION takes the capability number by value")
    return CAPABILITIES.get(cap, 0)


# --- irqfd ----------------------------------------------------------------------------------------
class Irqfd:
    def __init__(self, eventfd, identity, gsi, resampler, resamplefd):
        self.eventfd, self.identity, self.gsi = eventfd, identity, gsi
        self.resampler, self.resamplefd = resampler, resamplefd


class Resampler:
    """struct kvm_kernel_irqfd_resampler: the irqfds with RESAMPLE on one gsi."""

    def __init__(self, gsi):
        self.gsi = gsi
        self.irqfds = []


def eventfd_identity(fd):
    """Which eventfd an fd refers to (two fds of one eventfd give the same answer); None when the
    kernel does not say (fdinfo has eventfd-id since Linux 5.18)."""
    try:
        with open(f"/proc/self/fdinfo/{fd}") as f:
            for line in f:
                if line.startswith("eventfd-id:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


# --- the VM ---------------------------------------------------------------------------------------
class Memslot:
    def __init__(self, slot, flags, gpa, size, host, pin):
        self.slot, self.flags, self.gpa, self.size, self.host, self.pin = slot, flags, gpa, size, host, pin


class VmFile(File):
    name = "kvm-vm"

    def __init__(self, host, ipa_bits):
        self.host, self.board = host, host.board
        self.ipa_bits = ipa_bits
        self.memslots = {}           # slot id -> Memslot
        self.vcpus = []              # VcpuFile
        self.created_vcpus = 0
        self.vgic = None             # kvm_vgic.VgicV3Device once CREATE_DEVICE made one
        self.irqfds = []
        self.resamplers = {}         # gsi -> Resampler
        self.refs = 1                # the VM fd, each vCPU fd and each device fd
        self.dead = None             # why kvm_vm_dead() was called (every ioctl is EIO then)

    # --- lifetime ---------------------------------------------------------------------------
    def get(self):
        self.refs += 1

    def put(self):
        self.refs -= 1
        if self.refs:
            return
        for irqfd in list(self.irqfds):
            self._shutdown_irqfd(irqfd)
        for memslot in self.memslots.values():
            memslot.pin.release()
        self.memslots = {}
        if self in self.host.vms:
            self.host.vms.remove(self)

    def release(self):
        self.put()

    @property
    def vgic_initialized(self):
        return self.vgic is not None and self.vgic.initialized

    def check_alive(self):
        """kvm_vm_ioctl, kvm_vcpu_ioctl, kvm_device_ioctl: EIO once the VM is dead."""
        if self.dead:
            raise kernel_error(errno.EIO, f"this VM is dead ({self.dead}): make a new one")

    # --- ioctls -----------------------------------------------------------------------------
    def ioctl(self, request, arg):
        """kvm_vm_ioctl / kvm_arch_vm_ioctl."""
        from .kvm_vcpu import create_vcpu
        from .kvm_vgic import create_device
        self.check_alive()
        if request == K.KVM_CREATE_VCPU:
            return create_vcpu(self, arg)
        if request == K.KVM_CHECK_EXTENSION:
            return check_extension(arg)
        if request == K.KVM_SET_USER_MEMORY_REGION:
            return self.set_memory_region(user_pointer(arg, "KVM_SET_USER_MEMORY_REGION"))
        if request == K.KVM_IRQFD:
            return self.irqfd(user_pointer(arg, "KVM_IRQFD"))
        if request == K.KVM_IRQ_LINE:
            return self.irq_line(user_pointer(arg, "KVM_IRQ_LINE"))
        if request == K.KVM_ARM_PREFERRED_TARGET:
            from .kvm_vcpu import TARGET
            buf = user_pointer(arg, "KVM_ARM_PREFERRED_TARGET")
            buf.write(0, struct.pack("<I7I", TARGET, *[0] * 7))
            return 0
        if request == K.KVM_CREATE_DEVICE:
            return create_device(self, user_pointer(arg, "KVM_CREATE_DEVICE"))
        raise kernel_error(errno.EINVAL, f"the VM has no ioctl {request:#x} (kvm_arch_vm_ioctl)")

    def set_memory_region(self, buf):
        """kvm_vm_ioctl_set_memory_region / __kvm_set_memory_region / kvm_arch_prepare_memory_region."""
        slot, flags, gpa, size, uaddr = struct.unpack("<IIQQQ", buf.read(0, 32))
        if flags & ~(K.KVM_MEM_LOG_DIRTY_PAGES | K.KVM_MEM_READONLY):
            raise kernel_error(errno.EINVAL, f"KVM_SET_USER_MEMORY_REGION: unknown flags {flags:#x}")
        if size % PAGE_SIZE or gpa % PAGE_SIZE or uaddr % PAGE_SIZE:
            raise kernel_error(errno.EINVAL, "KVM_SET_USER_MEMORY_REGION: size, guest_phys_addr and "
                               "userspace_addr must be page aligned")
        if slot >> 16 or slot >= NR_MEMSLOTS:
            raise kernel_error(errno.EINVAL, f"KVM_SET_USER_MEMORY_REGION: slot {slot} is not 0..{NR_MEMSLOTS - 1}")
        if gpa + size >= 1 << 64:
            raise kernel_error(errno.EINVAL, "KVM_SET_USER_MEMORY_REGION: the range wraps")
        old = self.memslots.get(slot)
        if size == 0:
            if old is None:
                raise kernel_error(errno.EINVAL, f"KVM_SET_USER_MEMORY_REGION: slot {slot} is empty: nothing to delete")
            self._delete_memslot(old)
            return 0
        if old is not None:
            if uaddr != old.host or size != old.size or (flags ^ old.flags) & K.KVM_MEM_READONLY:
                raise kernel_error(errno.EINVAL, "KVM_SET_USER_MEMORY_REGION: a used slot can only move "
                                   "or change LOG_DIRTY_PAGES; delete it (size 0) first")
            if gpa == old.gpa:
                old.flags = flags
                return 0
        for other in self.memslots.values():
            if other is not old and gpa < other.gpa + other.size and other.gpa < gpa + size:
                raise kernel_error(errno.EEXIST, f"KVM_SET_USER_MEMORY_REGION: overlaps slot {other.slot}")
        if gpa + size > 1 << self.ipa_bits:
            raise kernel_error(errno.EFAULT, f"KVM_SET_USER_MEMORY_REGION: ends past the VM's "
                               f"{self.ipa_bits}-bit IPA space")
        if flags & K.KVM_MEM_READONLY:
            raise kernel_error(errno.EOPNOTSUPP, "KVM_MEM_READONLY slots are not modelled by the sim")
        pin = _pin(self.board, uaddr, size, "KVM_SET_USER_MEMORY_REGION userspace_addr")
        if old is not None:
            self._delete_memslot(old)
        memslot = Memslot(slot, flags, gpa, size, uaddr, pin)
        self.memslots[slot] = memslot
        for vcpu in self.vcpus:
            vcpu.map_memslot(memslot)
        return 0

    def _delete_memslot(self, memslot):
        for vcpu in self.vcpus:
            vcpu.unmap_memslot(memslot)
        memslot.pin.release()
        del self.memslots[memslot.slot]

    # --- interrupts -------------------------------------------------------------------------
    def set_spi(self, gsi, level):
        """kvm_set_irq through the default route: gsi N is SPI 32 + N (vgic_irqfd_set_irq)."""
        if self.vgic_initialized and gsi < self.vgic.nr_spis:
            self.vgic.gic.set_line(32 + gsi, level)

    def irqfd(self, buf):
        """kvm_irqfd: assign (kvm_irqfd_assign) or deassign (kvm_irqfd_deassign)."""
        fd, gsi, flags, resamplefd = struct.unpack("<iIIi", buf.read(0, 16))
        if flags & ~(K.KVM_IRQFD_FLAG_DEASSIGN | K.KVM_IRQFD_FLAG_RESAMPLE):
            raise kernel_error(errno.EINVAL, f"KVM_IRQFD: unknown flags {flags:#x}")
        if flags & K.KVM_IRQFD_FLAG_DEASSIGN:
            return self._irqfd_deassign(fd, gsi)
        if not self.vgic_initialized:
            raise kernel_error(errno.EAGAIN, "KVM_IRQFD: the vGIC is not initialised yet "
                               "(KVM_DEV_ARM_VGIC_CTRL_INIT first: kvm_arch_intc_initialized)")
        eventfd = self._eventfd(fd, "fd")
        resample = None
        if flags & K.KVM_IRQFD_FLAG_RESAMPLE:
            try:
                resample = self._eventfd(resamplefd, "resamplefd")
            except OSError:
                eventfd.put()
                raise
        identity = eventfd_identity(eventfd.fd)
        if identity is not None and any(i.identity == identity for i in self.irqfds):
            eventfd.put()
            if resample:
                resample.put()
            raise kernel_error(errno.EBUSY, f"KVM_IRQFD: eventfd {fd} is already an irqfd of this VM")
        resampler = None
        if resample is not None:
            resampler = self.resamplers.setdefault(gsi, Resampler(gsi))
        irqfd = Irqfd(eventfd, identity, gsi, resampler, resample)
        if resampler:
            resampler.irqfds.append(irqfd)
        self.irqfds.append(irqfd)
        self._consume(irqfd)          # an eventfd already signalled injects at once (vfs_poll)
        return 0

    @staticmethod
    def _eventfd(fd, what):
        try:
            return EventfdCtx(fd)
        except OSError as e:
            raise kernel_error(e.errno, f"KVM_IRQFD {what} {fd}: {e.strerror}") from None

    def _irqfd_deassign(self, fd, gsi):
        probe = self._eventfd(fd, "fd")
        identity = eventfd_identity(probe.fd)
        probe.put()
        for irqfd in list(self.irqfds):
            if irqfd.gsi == gsi and irqfd.identity == identity:
                self._shutdown_irqfd(irqfd)
        return 0                      # nothing matched: still 0, as the kernel answers

    def _shutdown_irqfd(self, irqfd):
        """irqfd_shutdown: the last irqfd of a resampler lowers its line (irqfd_resampler_shutdown)."""
        self.irqfds.remove(irqfd)
        if irqfd.resampler is not None:
            irqfd.resampler.irqfds.remove(irqfd)
            if not irqfd.resampler.irqfds:
                self.resamplers.pop(irqfd.gsi, None)
                self.set_spi(irqfd.gsi, False)
            irqfd.resamplefd.put()
        irqfd.eventfd.put()

    def _consume(self, irqfd):
        """irqfd_wakeup: on arm64 kvm_arch_set_irq_inatomic injects an SPI at once with level 1,
        and nothing ever injects the 0 (irqfd_inject's 1-then-0 pulse is only the fallback when
        the atomic path cannot be used). So a plain irqfd leaves a level SPI asserted: after each
        EOI it fires again, for ever (seen on the qemu board's 6.1); only a resampler lowers it."""
        if not irqfd.eventfd.consume():
            return False
        self.set_spi(irqfd.gsi, True)
        return True

    def service_irqfds(self):
        """irqfd_wakeup for every irqfd whose eventfd was signalled."""
        for irqfd in list(self.irqfds):
            self._consume(irqfd)

    def guest_eois(self, intids):
        """kvm_notify_acked_irq -> irqfd_resampler_ack for each deactivated level SPI."""
        for intid in intids:
            resampler = self.resamplers.get(intid - 32)
            if resampler is None:
                continue
            self.set_spi(resampler.gsi, False)
            for irqfd in resampler.irqfds:
                irqfd.resamplefd.signal(1)

    def irq_line(self, buf):
        """kvm_vm_ioctl_irq_line (arm64)."""
        irq, level = struct.unpack("<II", buf.read(0, 8))
        irq_type = irq >> K.KVM_ARM_IRQ_TYPE_SHIFT & K.KVM_ARM_IRQ_TYPE_MASK
        vcpu = (irq >> K.KVM_ARM_IRQ_VCPU_SHIFT & K.KVM_ARM_IRQ_VCPU_MASK) + \
            (irq >> K.KVM_ARM_IRQ_VCPU2_SHIFT & K.KVM_ARM_IRQ_VCPU2_MASK) * (K.KVM_ARM_IRQ_VCPU_MASK + 1)
        number = irq & K.KVM_ARM_IRQ_NUM_MASK
        if irq_type == K.KVM_ARM_IRQ_TYPE_CPU:
            if self.vgic is not None:
                raise kernel_error(errno.ENXIO, "KVM_IRQ_LINE: KVM_ARM_IRQ_TYPE_CPU with an in-kernel vGIC")
            raise kernel_error(errno.EOPNOTSUPP, "KVM_IRQ_LINE: the sim has no user-space irqchip "
                               "(create a vGICv3 and use KVM_ARM_IRQ_TYPE_SPI)")
        if irq_type not in (K.KVM_ARM_IRQ_TYPE_SPI, K.KVM_ARM_IRQ_TYPE_PPI):
            raise kernel_error(errno.EINVAL, f"KVM_IRQ_LINE: unknown irq type {irq_type}")
        if self.vgic is None:
            raise kernel_error(errno.ENXIO, "KVM_IRQ_LINE: no in-kernel irqchip (create the vGICv3 first)")
        if irq_type == K.KVM_ARM_IRQ_TYPE_PPI:
            if vcpu >= len(self.vcpus):
                raise kernel_error(errno.EINVAL, f"KVM_IRQ_LINE: no vCPU {vcpu}")
            if not 16 <= number < 32:
                raise kernel_error(errno.EINVAL, f"KVM_IRQ_LINE: PPI {number} is not 16..31")
        elif number < 32:
            raise kernel_error(errno.EINVAL, f"KVM_IRQ_LINE: SPI {number} is below 32 (gsi N is SPI 32 + N)")
        if not self.vgic.initialized:
            raise kernel_error(errno.EBUSY, "KVM_IRQ_LINE: the vGICv3 is not initialised "
                               "(vgic_lazy_init: KVM_DEV_ARM_VGIC_CTRL_INIT first)")
        if number >= 32 + self.vgic.nr_spis:
            raise kernel_error(errno.EINVAL, f"KVM_IRQ_LINE: INTID {number} is past the vGIC's "
                               f"{self.vgic.nr_spis} SPIs")
        self.vgic.gic.set_line(number, bool(level))
        return 0
