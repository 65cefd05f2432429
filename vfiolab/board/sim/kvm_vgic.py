"""The vGICv3 KVM device (arch/arm64/kvm/vgic/vgic-kvm-device.c, vgic-init.c, Linux 6.1) over the C
model (vfiolab/csrc/vgic3.c).

    KVM_CREATE_DEVICE type 7       one per VM (EEXIST), not after a vCPU has run (EBUSY); ENODEV
                                   on a board whose GIC is a GICv2 (gic="v2m"), as on the qemu board
    GRP_ADDR DIST / REDIST         u64 at attr.addr: 64 KiB aligned (EINVAL), once (EEXIST),
                                   inside the IPA space (E2BIG); REDIST must not overlap DIST
    GRP_NR_IRQS                    u32: 64..1023, a multiple of 32 (EINVAL); before init (EBUSY)
    GRP_CTRL CTRL_INIT             vgic_init: 224 SPIs unless NR_IRQS said otherwise
    (first KVM_RUN)                ENXIO without both addresses, EINVAL if they overlap, EBUSY
                                   without CTRL_INIT; any of them kills the VM (kvm_vm_dead: EIO)
    GRP_DIST_REGS / REDIST_REGS    u32 at attr.addr, attr = mpidr << 32 | offset: registers as
                                   QEMU saves and restores them (EBUSY before init); an offset with
                                   no register reads 0 and ignores writes, as the qemu board's 6.1
                                   answered for every offset probed (HAS_DEVICE_ATTR says ENXIO
                                   for those, from the register table: not checked on a kernel)
Other groups are ENXIO; other ioctls on the device fd are ENOTTY (the vGIC has no ioctl op).
User accesses to the registers behave as the guest's (KVM has special uaccess for a few, e.g. the
pending latch of level interrupts, which the sim does not separate).
"""
import errno
import struct

from vfiolab import uapi_kvm as K
from vfiolab.hw.a64 import Vgic3

from .errors import kernel_error
from .files import File
from .kvm import copy_from_user, copy_to_user
from .userbuf import user_pointer

ADDR_UNDEF = 2**64 - 1                  # VGIC_ADDR_UNDEF
DEFAULT_NR_SPIS = 256 - 32              # VGIC_NR_IRQS_LEGACY - VGIC_NR_PRIVATE_IRQS
VGIC_MAX_RESERVED = 1023
ALIGN = 0x10000
# Distributor offsets that hold a register (vgic_v3_dist_registers); others are ENXIO.
DIST_RANGES = [(0x0000, 0x0014), (0x0040, 0x0044), (0x0048, 0x004C), (0x0050, 0x0054), (0x0058, 0x005C),
               (0x0080, 0x0D80), (0x0E00, 0x0F00), (0x0F00, 0x0F04), (0x0F10, 0x0F30),
               (0x6000, 0x8000), (0xFFD0, 0x10000)]
DIST_READ_ONLY = {0x0004: "GICD_TYPER", 0x0008: "GICD_IIDR"}
# Redistributor: RD frame CTLR..WAKER and the ID registers; SGI frame's banked registers.
REDIST_RANGES = [(0x0000, 0x0018), (0xFFD0, 0x10000), (0x10080, 0x10084), (0x10100, 0x10104),
                 (0x10180, 0x10184), (0x10200, 0x10204), (0x10280, 0x10284), (0x10300, 0x10304),
                 (0x10380, 0x10384), (0x10400, 0x10420), (0x10C00, 0x10C08), (0x10D00, 0x10D04),
                 (0x10E00, 0x10E04)]


def create_device(vm, buf):
    """kvm_ioctl_create_device."""
    dev_type, _fd, flags = struct.unpack("<III", buf.read(0, 12))
    if dev_type != K.KVM_DEV_TYPE_ARM_VGIC_V3:
        raise kernel_error(errno.ENODEV, f"KVM_CREATE_DEVICE: the sim offers device type "
                           f"{K.KVM_DEV_TYPE_ARM_VGIC_V3} (vGICv3) only, not {dev_type} (a real kernel "
                           "offers the vGICv2 on a GICv2 host and the ITS on a GICv3 host with one)")
    if vm.board.gic == "v2m":
        raise kernel_error(errno.ENODEV, "KVM_CREATE_DEVICE: this board's GIC is a GICv2 (gic=\"v2m\"): "
                           "KVM has no vGICv3 to offer on it (boot the board with gic=\"its\")")
    if flags & 1:                       # KVM_CREATE_DEVICE_TEST: would it work?
        return 0
    if vm.vgic is not None:
        raise kernel_error(errno.EEXIST, "KVM_CREATE_DEVICE: this VM has its vGIC already (kvm_vgic_create)")
    if any(vcpu.has_run for vcpu in vm.vcpus):
        raise kernel_error(errno.EBUSY, "KVM_CREATE_DEVICE: a vCPU has run already (kvm_vgic_create)")
    device = VgicV3Device(vm)
    vm.vgic = device
    vm.get()
    fd = vm.board.install(device)
    buf.put_u32(4, fd)
    return 0


class VgicV3Device(File):
    name = "kvm-arm-vgic-v3"

    def __init__(self, vm):
        self.vm = vm
        self.dist_base = ADDR_UNDEF
        self.redist_base = ADDR_UNDEF
        self.requested_nr_spis = 0
        self.gic = None                 # the C model, made by CTRL_INIT
        self.ready = False              # vgic_ready: mapped at the first KVM_RUN

    @property
    def initialized(self):
        return self.gic is not None

    @property
    def nr_spis(self):
        return self.gic.nr_spis if self.gic else 0

    def release(self):
        self.vm.put()

    def ioctl(self, request, arg):
        self.vm.check_alive()
        handlers = {K.KVM_SET_DEVICE_ATTR: self.set_attr, K.KVM_GET_DEVICE_ATTR: self.get_attr,
                    K.KVM_HAS_DEVICE_ATTR: self.has_attr}
        if request not in handlers:
            raise kernel_error(errno.ENOTTY, f"the vGIC device has no ioctl {request:#x}")
        buf = user_pointer(arg, "KVM_*_DEVICE_ATTR")
        flags, group, attr, addr = struct.unpack("<IIQQ", buf.read(0, 24))
        if flags:
            raise kernel_error(errno.EINVAL, "kvm_device_attr.flags must be 0")
        return handlers[request](group, attr, addr)

    # --- SET --------------------------------------------------------------------------------
    def set_attr(self, group, attr, addr):
        if group == K.KVM_DEV_ARM_VGIC_GRP_ADDR:
            value = struct.unpack("<Q", copy_from_user(self.vm.board, addr, 8, "KVM_DEV_ARM_VGIC_GRP_ADDR"))[0]
            return self.set_address(attr, value)
        if group == K.KVM_DEV_ARM_VGIC_GRP_NR_IRQS:
            value = struct.unpack("<I", copy_from_user(self.vm.board, addr, 4, "KVM_DEV_ARM_VGIC_GRP_NR_IRQS"))[0]
            if value < 64 or value > VGIC_MAX_RESERVED or value & 31:
                raise kernel_error(errno.EINVAL, f"NR_IRQS {value}: 64..1023 and a multiple of 32")
            if self.initialized or self.requested_nr_spis:
                raise kernel_error(errno.EBUSY, "NR_IRQS is set once, before CTRL_INIT")
            self.requested_nr_spis = value - 32
            return 0
        if group == K.KVM_DEV_ARM_VGIC_GRP_CTRL:
            if attr != K.KVM_DEV_ARM_VGIC_CTRL_INIT:
                raise kernel_error(errno.ENXIO, f"GRP_CTRL attr {attr}: the sim knows CTRL_INIT (0)")
            return self.init()
        if group in (K.KVM_DEV_ARM_VGIC_GRP_DIST_REGS, K.KVM_DEV_ARM_VGIC_GRP_REDIST_REGS):
            return self.regs_access(group, attr, addr, write=True)
        raise kernel_error(errno.ENXIO, f"the vGICv3 has no attribute group {group} here")

    def set_address(self, kind, value):
        """kvm_vgic_addr -> vgic_check_iorange / vgic_v3_alloc_redist_region."""
        if kind == K.KVM_VGIC_V3_ADDR_TYPE_DIST:
            current, size = self.dist_base, K.KVM_VGIC_V3_DIST_SIZE
        elif kind == K.KVM_VGIC_V3_ADDR_TYPE_REDIST:
            current, size = self.redist_base, K.KVM_VGIC_V3_REDIST_SIZE * len(self.vm.vcpus)
            if current == ADDR_UNDEF and self.dist_base != ADDR_UNDEF and \
                    value < self.dist_base + K.KVM_VGIC_V3_DIST_SIZE and self.dist_base < value + size:
                raise kernel_error(errno.EINVAL, "the redistributor would overlap the distributor")
        else:
            raise kernel_error(errno.ENXIO, f"GRP_ADDR type {kind}: DIST is 2, REDIST 3 (REDIST_REGION "
                               "is not modelled)")
        if current != ADDR_UNDEF:
            raise kernel_error(errno.EEXIST, "this address is set already")
        if value % ALIGN:
            raise kernel_error(errno.EINVAL, f"{value:#x} is not 64 KiB aligned")
        if value + size > 1 << self.vm.ipa_bits:
            raise kernel_error(errno.E2BIG, f"{value:#x} is outside the VM's {self.vm.ipa_bits}-bit IPA space")
        if kind == K.KVM_VGIC_V3_ADDR_TYPE_DIST:
            self.dist_base = value
        else:
            self.redist_base = value
        return 0

    def init(self):
        """vgic_init (a second CTRL_INIT is a no-op)."""
        if self.initialized:
            return 0
        self.gic = Vgic3(self.requested_nr_spis or DEFAULT_NR_SPIS)
        for vcpu in self.vm.vcpus:
            vcpu.attach_vgic()
        return 0

    def map_resources(self):
        """kvm_vgic_map_resources at a vCPU's first KVM_RUN (vgic_v3_map_resources). A failure
        kills the VM (kvm_vm_dead): seen on the qemu board's 6.1 kernel, every later ioctl is EIO."""
        if self.ready:
            return
        try:
            self._check_resources()
        except OSError as e:
            self.vm.dead = f"its first KVM_RUN failed: {e.strerror}"
            raise
        self.ready = True

    def _check_resources(self):
        if self.redist_base == ADDR_UNDEF:
            raise kernel_error(errno.ENXIO, "KVM_RUN: the vGIC's redistributor address is not set")
        if self.dist_base == ADDR_UNDEF:
            raise kernel_error(errno.ENXIO, "KVM_RUN: the vGIC's distributor address is not set")
        redist_size = K.KVM_VGIC_V3_REDIST_SIZE * len(self.vm.vcpus)
        if self.redist_base < self.dist_base + K.KVM_VGIC_V3_DIST_SIZE and self.dist_base < self.redist_base + redist_size:
            raise kernel_error(errno.EINVAL, "KVM_RUN: the vGIC's distributor and redistributor overlap")
        if not self.initialized:
            raise kernel_error(errno.EBUSY, "KVM_RUN: the vGICv3 must be initialised first "
                               "(KVM_DEV_ARM_VGIC_CTRL_INIT)")

    # --- GET / HAS --------------------------------------------------------------------------
    def get_attr(self, group, attr, addr):
        board = self.vm.board
        if group == K.KVM_DEV_ARM_VGIC_GRP_ADDR:
            if attr == K.KVM_VGIC_V3_ADDR_TYPE_DIST:
                value = self.dist_base
            elif attr == K.KVM_VGIC_V3_ADDR_TYPE_REDIST:
                value = self.redist_base
            else:
                raise kernel_error(errno.ENXIO, f"GRP_ADDR type {attr}")
            copy_to_user(board, addr, struct.pack("<Q", value), "KVM_DEV_ARM_VGIC_GRP_ADDR")
            return 0
        if group == K.KVM_DEV_ARM_VGIC_GRP_NR_IRQS:
            nr = (self.nr_spis if self.initialized else self.requested_nr_spis) + 32
            copy_to_user(board, addr, struct.pack("<I", nr), "KVM_DEV_ARM_VGIC_GRP_NR_IRQS")
            return 0
        if group in (K.KVM_DEV_ARM_VGIC_GRP_DIST_REGS, K.KVM_DEV_ARM_VGIC_GRP_REDIST_REGS):
            return self.regs_access(group, attr, addr, write=False)
        raise kernel_error(errno.ENXIO, f"the vGICv3 has no attribute group {group} here")

    def has_attr(self, group, attr, addr):
        if group == K.KVM_DEV_ARM_VGIC_GRP_ADDR and attr in (K.KVM_VGIC_V3_ADDR_TYPE_DIST,
                                                             K.KVM_VGIC_V3_ADDR_TYPE_REDIST):
            return 0
        if group == K.KVM_DEV_ARM_VGIC_GRP_NR_IRQS:
            return 0
        if group == K.KVM_DEV_ARM_VGIC_GRP_CTRL and attr == K.KVM_DEV_ARM_VGIC_CTRL_INIT:
            return 0
        if group in (K.KVM_DEV_ARM_VGIC_GRP_DIST_REGS, K.KVM_DEV_ARM_VGIC_GRP_REDIST_REGS):
            self._register_offset(group, attr, known_only=True)
            return 0
        raise kernel_error(errno.ENXIO, f"the vGICv3 has no attribute group {group} / attr {attr:#x}")

    # --- register access (vgic_v3_attr_regs_access) ----------------------------------------
    def _register_offset(self, group, attr, known_only=False):
        mpidr = (attr & K.KVM_DEV_ARM_VGIC_V3_MPIDR_MASK) >> K.KVM_DEV_ARM_VGIC_V3_MPIDR_SHIFT
        offset = attr & K.KVM_DEV_ARM_VGIC_OFFSET_MASK
        if group == K.KVM_DEV_ARM_VGIC_GRP_REDIST_REGS and (mpidr != 0 or not self.vm.vcpus):
            raise kernel_error(errno.EINVAL, f"REDIST_REGS: no vCPU has MPIDR affinity {mpidr:#x}")
        ranges = DIST_RANGES if group == K.KVM_DEV_ARM_VGIC_GRP_DIST_REGS else REDIST_RANGES
        if known_only and (offset % 4 or not any(lo <= offset < hi for lo, hi in ranges)):
            raise kernel_error(errno.ENXIO, f"no 32-bit register at offset {offset:#x}")
        return offset

    def regs_access(self, group, attr, addr, write):
        offset = self._register_offset(group, attr)
        size = K.KVM_VGIC_V3_DIST_SIZE if group == K.KVM_DEV_ARM_VGIC_GRP_DIST_REGS else K.KVM_VGIC_V3_REDIST_SIZE
        board = self.vm.board
        value = struct.unpack("<I", copy_from_user(board, addr, 4, "vGIC register attr"))[0] if write else 0
        if not self.initialized:
            raise kernel_error(errno.EBUSY, "vGIC registers are reachable after CTRL_INIT")
        dist = group == K.KVM_DEV_ARM_VGIC_GRP_DIST_REGS
        if offset % 4 or offset + 4 > size:          # no register: read as zero, writes ignored
            if not write:
                copy_to_user(board, addr, bytes(4), "vGIC register attr")
            return 0
        if write:
            if dist and offset in DIST_READ_ONLY:
                if value != self.gic.dist_read(offset):
                    raise kernel_error(errno.EINVAL, f"{DIST_READ_ONLY[offset]} cannot be changed")
                return 0
            (self.gic.dist_write if dist else self.gic.redist_write)(offset, value)
            return 0
        value = (self.gic.dist_read if dist else self.gic.redist_read)(offset)
        copy_to_user(board, addr, struct.pack("<I", value & 0xFFFFFFFF), "vGIC register attr")
        return 0
