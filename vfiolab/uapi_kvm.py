"""KVM's user API for arm64: the numbers and structs of <linux/kvm.h> and arm64's <asm/kvm.h>.

The part of KVM that lab 03 drives (a VM, one vCPU, memory slots, the vGICv3 device, irqfd and
resamplefd, KVM_IRQ_LINE, KVM_RUN and its kvm_run page). One source of truth for every board;
tests/test_uapi_kvm.py compiles a probe against the arm64 headers (linux-libc-dev-arm64-cross) and
checks every number, size and offset here.
"""
import ctypes

# include/uapi/asm-generic/ioctl.h (arm64 uses the generic encoding): dir 2 bits, size 14, type 8, nr 8.
_IOC_NONE, _IOC_WRITE, _IOC_READ = 0, 1, 2


def _IOC(direction, type_, nr, size):
    return direction << 30 | size << 16 | type_ << 8 | nr


def _IO(type_, nr):
    return _IOC(_IOC_NONE, type_, nr, 0)


def _IOR(type_, nr, size):
    return _IOC(_IOC_READ, type_, nr, size)


def _IOW(type_, nr, size):
    return _IOC(_IOC_WRITE, type_, nr, size)


def _IOWR(type_, nr, size):
    return _IOC(_IOC_READ | _IOC_WRITE, type_, nr, size)

KVMIO = 0xAE
KVM_API_VERSION = 12


class kvm_userspace_memory_region(ctypes.Structure):
    _fields_ = [("slot", ctypes.c_uint32), ("flags", ctypes.c_uint32),
                ("guest_phys_addr", ctypes.c_uint64), ("memory_size", ctypes.c_uint64),
                ("userspace_addr", ctypes.c_uint64)]


class kvm_irq_level(ctypes.Structure):
    _fields_ = [("irq", ctypes.c_uint32), ("level", ctypes.c_uint32)]


class kvm_irqfd(ctypes.Structure):
    _fields_ = [("fd", ctypes.c_uint32), ("gsi", ctypes.c_uint32), ("flags", ctypes.c_uint32),
                ("resamplefd", ctypes.c_uint32), ("pad", ctypes.c_uint8 * 16)]


class kvm_one_reg(ctypes.Structure):
    _fields_ = [("id", ctypes.c_uint64), ("addr", ctypes.c_uint64)]


class kvm_vcpu_init(ctypes.Structure):
    _fields_ = [("target", ctypes.c_uint32), ("features", ctypes.c_uint32 * 7)]


class kvm_create_device(ctypes.Structure):
    _fields_ = [("type", ctypes.c_uint32), ("fd", ctypes.c_uint32), ("flags", ctypes.c_uint32)]


class kvm_device_attr(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint32), ("group", ctypes.c_uint32), ("attr", ctypes.c_uint64),
                ("addr", ctypes.c_uint64)]


# --- struct kvm_run: the header, the exits lab 03 meets, the tail --------------------------------
class kvm_run_mmio(ctypes.Structure):
    _fields_ = [("phys_addr", ctypes.c_uint64), ("data", ctypes.c_uint8 * 8), ("len", ctypes.c_uint32),
                ("is_write", ctypes.c_uint8)]


class kvm_run_internal(ctypes.Structure):
    _fields_ = [("suberror", ctypes.c_uint32), ("ndata", ctypes.c_uint32), ("data", ctypes.c_uint64 * 16)]


class kvm_run_arm_nisv(ctypes.Structure):
    _fields_ = [("esr_iss", ctypes.c_uint64), ("fault_ipa", ctypes.c_uint64)]


class kvm_run_system_event(ctypes.Structure):
    _fields_ = [("type", ctypes.c_uint32), ("ndata", ctypes.c_uint32), ("data", ctypes.c_uint64 * 16)]


class kvm_run_exit(ctypes.Union):
    _fields_ = [("mmio", kvm_run_mmio), ("internal", kvm_run_internal), ("arm_nisv", kvm_run_arm_nisv),
                ("system_event", kvm_run_system_event), ("padding", ctypes.c_char * 256)]


class kvm_run(ctypes.Structure):
    _anonymous_ = ("exit",)
    _fields_ = [("request_interrupt_window", ctypes.c_uint8), ("immediate_exit", ctypes.c_uint8),
                ("padding1", ctypes.c_uint8 * 6), ("exit_reason", ctypes.c_uint32),
                ("ready_for_interrupt_injection", ctypes.c_uint8), ("if_flag", ctypes.c_uint8),
                ("flags", ctypes.c_uint16), ("cr8", ctypes.c_uint64), ("apic_base", ctypes.c_uint64),
                ("exit", kvm_run_exit), ("kvm_valid_regs", ctypes.c_uint64),
                ("kvm_dirty_regs", ctypes.c_uint64), ("s", ctypes.c_char * 2048)]


# --- ioctls --------------------------------------------------------------------------------------
KVM_GET_API_VERSION = _IO(KVMIO, 0x00)
KVM_CREATE_VM = _IO(KVMIO, 0x01)
KVM_CHECK_EXTENSION = _IO(KVMIO, 0x03)
KVM_GET_VCPU_MMAP_SIZE = _IO(KVMIO, 0x04)
KVM_CREATE_VCPU = _IO(KVMIO, 0x41)
KVM_SET_USER_MEMORY_REGION = _IOW(KVMIO, 0x46, ctypes.sizeof(kvm_userspace_memory_region))
KVM_IRQ_LINE = _IOW(KVMIO, 0x61, ctypes.sizeof(kvm_irq_level))
KVM_IRQFD = _IOW(KVMIO, 0x76, ctypes.sizeof(kvm_irqfd))
KVM_RUN = _IO(KVMIO, 0x80)
KVM_GET_ONE_REG = _IOW(KVMIO, 0xAB, ctypes.sizeof(kvm_one_reg))
KVM_SET_ONE_REG = _IOW(KVMIO, 0xAC, ctypes.sizeof(kvm_one_reg))
KVM_ARM_VCPU_INIT = _IOW(KVMIO, 0xAE, ctypes.sizeof(kvm_vcpu_init))
KVM_ARM_PREFERRED_TARGET = _IOR(KVMIO, 0xAF, ctypes.sizeof(kvm_vcpu_init))
KVM_CREATE_DEVICE = _IOWR(KVMIO, 0xE0, ctypes.sizeof(kvm_create_device))
KVM_SET_DEVICE_ATTR = _IOW(KVMIO, 0xE1, ctypes.sizeof(kvm_device_attr))
KVM_GET_DEVICE_ATTR = _IOW(KVMIO, 0xE2, ctypes.sizeof(kvm_device_attr))
KVM_HAS_DEVICE_ATTR = _IOW(KVMIO, 0xE3, ctypes.sizeof(kvm_device_attr))

# --- capabilities (KVM_CHECK_EXTENSION) ------------------------------------------------------------
KVM_CAP_IRQCHIP = 0
KVM_CAP_USER_MEMORY = 3
KVM_CAP_NR_VCPUS = 9
KVM_CAP_NR_MEMSLOTS = 10
KVM_CAP_IRQ_ROUTING = 25
KVM_CAP_IRQFD = 32
KVM_CAP_MAX_VCPUS = 66
KVM_CAP_ONE_REG = 70
KVM_CAP_IRQFD_RESAMPLE = 82
KVM_CAP_ARM_PSCI = 87
KVM_CAP_DEVICE_CTRL = 89
KVM_CAP_ARM_PSCI_0_2 = 102
KVM_CAP_ARM_VM_IPA_SIZE = 165

# --- flags and exit reasons ------------------------------------------------------------------------
KVM_MEM_LOG_DIRTY_PAGES = 1 << 0
KVM_MEM_READONLY = 1 << 1
KVM_IRQFD_FLAG_DEASSIGN = 1 << 0
KVM_IRQFD_FLAG_RESAMPLE = 1 << 1
KVM_EXIT_UNKNOWN = 0
KVM_EXIT_MMIO = 6
KVM_EXIT_FAIL_ENTRY = 9
KVM_EXIT_INTR = 10
KVM_EXIT_INTERNAL_ERROR = 17
KVM_EXIT_SYSTEM_EVENT = 24
KVM_EXIT_ARM_NISV = 28
KVM_INTERNAL_ERROR_EMULATION = 1
KVM_COALESCED_MMIO_PAGE_OFFSET = 1     # arm64: the kvm_run mmap is this many pages + 1

# --- arm64 (asm/kvm.h) -----------------------------------------------------------------------------
KVM_ARM_TARGET_CORTEX_A57 = 2
KVM_ARM_TARGET_GENERIC_V8 = 5
KVM_ARM_VCPU_POWER_OFF = 0
KVM_ARM_VCPU_EL1_32BIT = 1
KVM_ARM_VCPU_PSCI_0_2 = 2
KVM_ARM_VCPU_PMU_V3 = 3
KVM_ARM_IRQ_VCPU2_SHIFT = 28
KVM_ARM_IRQ_VCPU2_MASK = 0xF
KVM_ARM_IRQ_TYPE_SHIFT = 24
KVM_ARM_IRQ_TYPE_MASK = 0xF
KVM_ARM_IRQ_VCPU_SHIFT = 16
KVM_ARM_IRQ_VCPU_MASK = 0xFF
KVM_ARM_IRQ_NUM_SHIFT = 0
KVM_ARM_IRQ_NUM_MASK = 0xFFFF
KVM_ARM_IRQ_TYPE_CPU = 0
KVM_ARM_IRQ_TYPE_SPI = 1
KVM_ARM_IRQ_TYPE_PPI = 2
KVM_DEV_TYPE_ARM_VGIC_V2 = 5
KVM_DEV_TYPE_ARM_VGIC_V3 = 7
KVM_DEV_TYPE_ARM_VGIC_ITS = 8
KVM_VGIC_V3_ADDR_TYPE_DIST = 2
KVM_VGIC_V3_ADDR_TYPE_REDIST = 3
KVM_VGIC_V3_ADDR_TYPE_REDIST_REGION = 5
KVM_VGIC_V3_DIST_SIZE = 0x10000
KVM_VGIC_V3_REDIST_SIZE = 2 * 0x10000
KVM_DEV_ARM_VGIC_GRP_ADDR = 0
KVM_DEV_ARM_VGIC_GRP_DIST_REGS = 1
KVM_DEV_ARM_VGIC_GRP_NR_IRQS = 3
KVM_DEV_ARM_VGIC_GRP_CTRL = 4
KVM_DEV_ARM_VGIC_GRP_REDIST_REGS = 5
KVM_DEV_ARM_VGIC_GRP_CPU_SYSREGS = 6
KVM_DEV_ARM_VGIC_GRP_LEVEL_INFO = 7
KVM_DEV_ARM_VGIC_CTRL_INIT = 0
KVM_DEV_ARM_VGIC_V3_MPIDR_SHIFT = 32
KVM_DEV_ARM_VGIC_V3_MPIDR_MASK = 0xFFFFFFFF << 32
KVM_DEV_ARM_VGIC_OFFSET_SHIFT = 0
KVM_DEV_ARM_VGIC_OFFSET_MASK = 0xFFFFFFFF

# ONE_REG ids: KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE | (offset in struct kvm_regs) / 4
KVM_REG_ARM64 = 0x6000000000000000
KVM_REG_SIZE_U32 = 0x0020000000000000
KVM_REG_SIZE_U64 = 0x0030000000000000
KVM_REG_ARM_COPROC_SHIFT = 16
KVM_REG_ARM_CORE = 0x0010 << KVM_REG_ARM_COPROC_SHIFT
KVM_REG_ARM64_SYSREG = 0x0013 << KVM_REG_ARM_COPROC_SHIFT


class user_pt_regs(ctypes.Structure):
    _fields_ = [("regs", ctypes.c_uint64 * 31), ("sp", ctypes.c_uint64), ("pc", ctypes.c_uint64),
                ("pstate", ctypes.c_uint64)]


class kvm_regs_head(ctypes.Structure):
    """The start of arm64's struct kvm_regs (the part ONE_REG core ids lab 03 uses live in)."""
    _fields_ = [("regs", user_pt_regs), ("sp_el1", ctypes.c_uint64), ("elr_el1", ctypes.c_uint64),
                ("spsr", ctypes.c_uint64 * 5)]


def core_reg(offset):
    """KVM_REG_ARM_CORE_REG: the 64-bit core register at `offset` bytes into struct kvm_regs."""
    return KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE | (offset // 4)


def x_reg(n):
    if not 0 <= n <= 30:
        raise ValueError(f"x{n}: arm64 has x0-x30")
    return core_reg(user_pt_regs.regs.offset + 8 * n)


REG_SP = core_reg(user_pt_regs.sp.offset)
REG_PC = core_reg(user_pt_regs.pc.offset)
REG_PSTATE = core_reg(user_pt_regs.pstate.offset)
REG_SP_EL1 = core_reg(kvm_regs_head.sp_el1.offset)
REG_ELR_EL1 = core_reg(kvm_regs_head.elr_el1.offset)
REG_SPSR_EL1 = core_reg(kvm_regs_head.spsr.offset)     # spsr[KVM_SPSR_EL1], index 0


def irq_line(irq_type, number, vcpu=0):
    """KVM_IRQ_LINE's irq field: type << 24 | vcpu << 16 | number (vcpu's high bits at 28)."""
    return ((irq_type & KVM_ARM_IRQ_TYPE_MASK) << KVM_ARM_IRQ_TYPE_SHIFT
            | (vcpu & KVM_ARM_IRQ_VCPU_MASK) << KVM_ARM_IRQ_VCPU_SHIFT
            | ((vcpu >> 8) & KVM_ARM_IRQ_VCPU2_MASK) << KVM_ARM_IRQ_VCPU2_SHIFT
            | (number & KVM_ARM_IRQ_NUM_MASK))


def vgic_v3_attr(offset, mpidr=0):
    """KVM_DEV_ARM_VGIC_GRP_DIST_REGS / REDIST_REGS attr: the vCPU's MPIDR and the register offset."""
    return (mpidr << KVM_DEV_ARM_VGIC_V3_MPIDR_SHIFT) & KVM_DEV_ARM_VGIC_V3_MPIDR_MASK | (offset & 0xFFFFFFFF)


def header_constants():
    """Every name here that is a macro in the headers (the probe prints each)."""
    skip = {"REG_SP", "REG_PC", "REG_PSTATE", "REG_SP_EL1", "REG_ELR_EL1", "REG_SPSR_EL1"}
    return [n for n, v in globals().items()
            if n.startswith("KVM") and isinstance(v, int) and n not in skip]


def header_structs():
    return {"kvm_userspace_memory_region": kvm_userspace_memory_region, "kvm_irq_level": kvm_irq_level,
            "kvm_irqfd": kvm_irqfd, "kvm_one_reg": kvm_one_reg, "kvm_vcpu_init": kvm_vcpu_init,
            "kvm_create_device": kvm_create_device, "kvm_device_attr": kvm_device_attr,
            "kvm_run": kvm_run, "user_pt_regs": user_pt_regs}
