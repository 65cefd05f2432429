"""A KVM vCPU on the sim board (arch/arm64/kvm/arm.c, guest.c, reset.c, mmio.c, Linux 6.1), running
on the AArch64 interpreter (vfiolab/csrc/aarch64.c).

    KVM_ARM_VCPU_INIT     target 2 (what the qemu board's cortex-a57 KVM prefers; EINVAL for
                          another), features POWER_OFF and PSCI_0_2 (ENOENT past bit 6, EINVAL for
                          the ones this vCPU lacks: EL1_32BIT, PMU_V3, SVE, pointer auth); resets
                          the vCPU: PSTATE EL1h with DAIF masked, everything else 0
    SET/GET_ONE_REG       core registers x0-x30, sp, pc, pstate, sp_el1, elr_el1, spsr_el1 and the
                          system registers VBAR/ESR/FAR/TPIDR_EL1 (ENOEXEC before VCPU_INIT,
                          ENOENT for a register the sim does not model, EINVAL for a bad size or
                          a PSTATE mode KVM refuses)
    mmap                  offset 0: the kvm_run page (the vCPU fd maps 2 pages, as on arm64)
    KVM_RUN               runs the guest until an exit user space must see:
        KVM_EXIT_MMIO            a load/store outside memory slots and the vGIC's frames; a load's
                                 data is taken from kvm_run.mmio.data at the next KVM_RUN
        ENOSYS                   MMIO by an instruction with writeback (no valid syndrome: the
                                 kernel says "Data abort outside memslots with no valid syndrome")
        EINTR, KVM_EXIT_INTR     kvm_run.immediate_exit set; or the guest waits in WFI with nothing
                                 to wake it (a real vCPU would sleep until an interrupt: the sim's
                                 single thread cannot, so it returns as a signal would); or the
                                 time slice (SLICE instructions) ran out
        KVM_EXIT_INTERNAL_ERROR  (sim only) an instruction the interpreter does not have, a PC
                                 outside memory slots, or a mode it cannot run: suberror
                                 KVM_INTERNAL_ERROR_EMULATION, data[0] = PC, data[1] = the word.
                                 Real KVM would raise an exception inside the guest instead.
Interrupts reach the guest between slices: irqfds are consumed (board.service) and the guest's EOIs
of level SPIs lower resampled lines and signal resamplefds before it goes on.
"""
import ctypes
import errno
import mmap as _mmap
import struct

from vfiolab import uapi_kvm as K
from vfiolab.board.mapping import DmaBuffer, RegisterWindow
from vfiolab.hw.a64 import A64Cpu

from .errors import kernel_error
from .files import File
from .kvm import MAX_VCPUS, VCPU_MMAP_SIZE, copy_from_user, copy_to_user
from .memory import PAGE_SIZE
from .userbuf import user_pointer

TARGET = K.KVM_ARM_TARGET_CORTEX_A57
KVM_MAX_VCPU_IDS = 512
KVM_VCPU_MAX_FEATURES = 7
SUPPORTED_FEATURES = (1 << K.KVM_ARM_VCPU_POWER_OFF) | (1 << K.KVM_ARM_VCPU_PSCI_0_2)
SLICE = 2_000_000                 # instructions per KVM_RUN before it returns EINTR
SERVICE_EVERY = 20_000            # instructions between looks at irqfds and devices
CORE_BASE = K.KVM_REG_ARM64 | K.KVM_REG_ARM_CORE
SIZE_MASK = 0x00F0000000000000
SYSREG_IDS = {K.KVM_REG_ARM64 | K.KVM_REG_SIZE_U64 | K.KVM_REG_ARM64_SYSREG | key: name
              for key, name in ((0xC600, "vbar_el1"), (0xC290, "esr_el1"), (0xC300, "far_el1"),
                                (0xC684, "tpidr_el1"))}
VALID_MODES = {0x0, 0x4, 0x5}     # EL0t, EL1t, EL1h (set_core_reg)


def _core_names():
    names = {}
    for n in range(31):
        names[K.x_reg(n) & ~SIZE_MASK] = f"x{n}"
    for reg, name in ((K.REG_SP, "sp_el0"), (K.REG_PC, "pc"), (K.REG_PSTATE, "pstate"),
                      (K.REG_SP_EL1, "sp_el1"), (K.REG_ELR_EL1, "elr_el1"), (K.REG_SPSR_EL1, "spsr_el1")):
        names[reg & ~SIZE_MASK] = name
    return names


CORE_NAMES = _core_names()
CORE_REGS_WORDS = 0x360 // 4      # sizeof(struct kvm_regs) / 4 on arm64
VREGS_WORD, FPSR_WORD = 0x150 // 4, 0x350 // 4


def core_reg_size(word):
    """core_reg_size_from_offset: the size of the core register at this u32 offset, None when the
    offset is not the start of one."""
    if word < VREGS_WORD:
        size = 8 if word < 82 else None                 # regs, sp, pc, pstate, sp_el1, elr_el1, spsr[5]
        return size if size and word % 2 == 0 else None
    if word < FPSR_WORD:
        return 16 if (word - VREGS_WORD) % 4 == 0 else None
    return 4 if word in (FPSR_WORD, FPSR_WORD + 1) else None


def create_vcpu(vm, vcpu_id):
    """kvm_vm_ioctl_create_vcpu / kvm_arch_vcpu_precreate."""
    if not isinstance(vcpu_id, int) or not 0 <= vcpu_id < KVM_MAX_VCPU_IDS:
        raise kernel_error(errno.EINVAL, f"KVM_CREATE_VCPU: id {vcpu_id!r} is not 0..{KVM_MAX_VCPU_IDS - 1}")
    # The kernel checks max_vcpus first; a real VM allows hundreds, so the sim's limit of one comes
    # after the checks a real kernel would make for a second vCPU.
    if vm.vgic_initialized:
        raise kernel_error(errno.EBUSY, "KVM_CREATE_VCPU: the vGIC is initialised already "
                           "(create vCPUs before KVM_DEV_ARM_VGIC_CTRL_INIT)")
    if vm.created_vcpus >= MAX_VCPUS:
        raise kernel_error(errno.EINVAL, f"KVM_CREATE_VCPU: the sim's VM has {MAX_VCPUS} vCPU at most")
    vcpu = VcpuFile(vm, vcpu_id)
    vm.created_vcpus += 1
    vm.vcpus.append(vcpu)
    vm.get()
    return vm.board.install(vcpu)


class KvmRunMapping(RegisterWindow):
    """The vCPU's kvm_run page as user space maps it: read/write 8..64-bit fields by offset, or
    `.run`, a uapi_kvm.kvm_run over the same bytes."""

    def __init__(self, vcpu, length):
        self.vcpu, self.length = vcpu, length
        self.closed = False

    @property
    def run(self):
        return self.vcpu.run_struct

    def _load(self, width, off):
        return int.from_bytes(self.vcpu.page[off:off + width // 8], "little")

    def _store(self, width, off, value):
        self.vcpu.page[off:off + width // 8] = value.to_bytes(width // 8, "little")

    def close(self):
        self.closed = True

    def __len__(self):
        return self.length


class VcpuFile(File):
    name = "kvm-vcpu"

    def __init__(self, vm, vcpu_id):
        self.vm, self.board, self.vcpu_id = vm, vm.board, vcpu_id
        self.cpu = A64Cpu()
        self.target = None            # set by KVM_ARM_VCPU_INIT
        self.features = 0
        self.has_run = False
        self.mmio_read_pending = None # the length of a load waiting for kvm_run.mmio.data
        self.page = DmaBuffer(VCPU_MMAP_SIZE)
        self.run_struct = K.kvm_run.from_buffer(self.page)
        self.slots = {}               # memslot id -> interpreter slot
        for memslot in vm.memslots.values():
            self.map_memslot(memslot)
        if vm.vgic_initialized:
            self.attach_vgic()

    def release(self):
        self.run_struct = None
        self.vm.put()

    # --- memory and the vGIC ---------------------------------------------------------------
    def map_memslot(self, memslot):
        free = next(i for i in range(32) if i not in self.slots.values())
        self.slots[memslot.slot] = free
        view = (ctypes.c_uint8 * memslot.size).from_address(memslot.host)
        self.cpu.map_ram(free, memslot.gpa, view)

    def unmap_memslot(self, memslot):
        index = self.slots.pop(memslot.slot, None)
        if index is not None:
            self.cpu.map_ram(index, 0, None)

    def attach_vgic(self):
        vgic = self.vm.vgic
        self.cpu.attach_vgic(vgic.gic, vgic.dist_base, vgic.redist_base)

    # --- ioctls -----------------------------------------------------------------------------
    def ioctl(self, request, arg):
        self.vm.check_alive()
        if request == K.KVM_RUN:
            return self.run(arg)
        if request == K.KVM_ARM_VCPU_INIT:
            return self.vcpu_init(user_pointer(arg, "KVM_ARM_VCPU_INIT"))
        if request in (K.KVM_SET_ONE_REG, K.KVM_GET_ONE_REG):
            if self.target is None:
                raise kernel_error(errno.ENOEXEC, "ONE_REG: KVM_ARM_VCPU_INIT the vCPU first")
            reg_id, addr = struct.unpack("<QQ", user_pointer(arg, "ONE_REG").read(0, 16))
            return self.one_reg(reg_id, addr, request == K.KVM_SET_ONE_REG)
        raise kernel_error(errno.EINVAL, f"the vCPU has no ioctl {request:#x} (kvm_arch_vcpu_ioctl)")

    def vcpu_init(self, buf):
        """kvm_vcpu_set_target + kvm_reset_vcpu."""
        target, *words = struct.unpack("<I7I", buf.read(0, 32))
        if target != TARGET:
            raise kernel_error(errno.EINVAL, f"KVM_ARM_VCPU_INIT: target {target}; this host's is {TARGET} "
                               "(ask KVM_ARM_PREFERRED_TARGET)")
        if self.target is not None and target != self.target:
            raise kernel_error(errno.EINVAL, "KVM_ARM_VCPU_INIT: a second init must use the same target")
        features = sum(w << (32 * i) for i, w in enumerate(words))
        if features >> KVM_VCPU_MAX_FEATURES:
            raise kernel_error(errno.ENOENT, f"KVM_ARM_VCPU_INIT: unknown feature bits {features:#x}")
        if self.target is not None and features != self.features:
            raise kernel_error(errno.EINVAL, "KVM_ARM_VCPU_INIT: a second init must use the same features")
        if features & ~SUPPORTED_FEATURES:
            raise kernel_error(errno.EINVAL, f"KVM_ARM_VCPU_INIT: features {features & ~SUPPORTED_FEATURES:#x} "
                               "are not available on the sim's vCPU (it has POWER_OFF and PSCI_0_2)")
        self.target, self.features = target, features
        self.cpu.reset()
        self.mmio_read_pending = None
        return 0

    def one_reg(self, reg_id, addr, write):
        """kvm_arm_set_reg / kvm_arm_get_reg: core registers and a few system registers."""
        size = 1 << ((reg_id & SIZE_MASK) >> 52)
        if reg_id >> 56 != K.KVM_REG_ARM64 >> 56:
            raise kernel_error(errno.EINVAL, f"ONE_REG id {reg_id:#x} is not an arm64 register")
        if (reg_id & 0xFFFF << 16) == K.KVM_REG_ARM_CORE:
            offset = reg_id & 0xFFFF
            if offset >= CORE_REGS_WORDS or offset + size // 4 >= CORE_REGS_WORDS:
                raise kernel_error(errno.ENOENT, f"ONE_REG core offset {offset:#x} is past struct kvm_regs")
            if core_reg_size(offset) != size:          # validate_core_offset
                raise kernel_error(errno.EINVAL, f"ONE_REG core offset {offset:#x}: wrong size {size * 8} "
                                   "or the middle of a register")
            name = CORE_NAMES.get(reg_id & ~SIZE_MASK)
            if name is None:
                raise kernel_error(errno.ENOENT, f"ONE_REG core offset {offset:#x} (FP/SIMD or spsr[1..4]) "
                                   "is not modelled by the sim (a real kernel answers it)")
        elif reg_id in SYSREG_IDS:
            name = SYSREG_IDS[reg_id]
        else:
            raise kernel_error(errno.ENOENT, f"ONE_REG id {reg_id:#x}: the sim models the core registers "
                               "and VBAR/ESR/FAR/TPIDR_EL1")
        if write:
            value = struct.unpack("<Q", copy_from_user(self.board, addr, 8, "ONE_REG addr"))[0]
            if name == "pstate" and value & 0x1F not in VALID_MODES:
                raise kernel_error(errno.EINVAL, f"ONE_REG pstate {value:#x}: mode must be EL0t, EL1t or EL1h")
            self.cpu.set_reg(name, value)
        else:
            copy_to_user(self.board, addr, struct.pack("<Q", self.cpu.reg(name)), "ONE_REG addr")
        return 0

    def mmap(self, length, offset, prot, flags):
        if offset != 0 or length > VCPU_MMAP_SIZE:
            raise kernel_error(errno.EINVAL, f"the vCPU maps {VCPU_MMAP_SIZE:#x} bytes from offset 0 "
                               "(kvm_run, then the coalesced MMIO page)")
        if not flags & _mmap.MAP_SHARED:
            raise kernel_error(errno.EINVAL, "map the kvm_run page MAP_SHARED")
        return KvmRunMapping(self, (length + PAGE_SIZE - 1) // PAGE_SIZE * PAGE_SIZE)

    # --- KVM_RUN ----------------------------------------------------------------------------
    def run(self, arg):
        if arg != 0:
            raise kernel_error(errno.EINVAL, "KVM_RUN takes 0 as its argument")
        if self.target is None:
            raise kernel_error(errno.ENOEXEC, "KVM_RUN: KVM_ARM_VCPU_INIT the vCPU first")
        if self.vm.vgic is not None:
            self.vm.vgic.map_resources()
            if not self.has_run:
                self.attach_vgic()        # the frames' addresses are final now
        run = self.run_struct
        if self.mmio_read_pending is not None:          # kvm_handle_mmio_return
            self.cpu.set_mmio_data(int.from_bytes(bytes(run.mmio.data)[:self.mmio_read_pending], "little"))
            self.mmio_read_pending = None
        self.has_run = True
        if run.immediate_exit:
            return self._interrupted("kvm_run.immediate_exit is set")
        if self.features & (1 << K.KVM_ARM_VCPU_POWER_OFF):
            return self._interrupted("the vCPU is powered off (KVM_ARM_VCPU_POWER_OFF) and nothing "
                                     "in the sim powers it on")
        done = 0
        while done < SLICE:
            self.board.service()
            before = self.cpu.steps
            exit = self.cpu.run(min(SERVICE_EVERY, SLICE - done))
            done += self.cpu.steps - before
            if exit.reason == "budget":
                continue
            if exit.reason == "eoi":
                self.vm.guest_eois(self.cpu.gic.take_eois())
                continue
            if exit.reason == "wfi":
                self.board.service()
                if self.cpu.gic is not None and self.cpu.gic.signalled:
                    continue
                return self._interrupted("the guest waits in WFI and no interrupt is pending: a real "
                                         "vCPU would sleep; raise one and call KVM_RUN again")
            if exit.reason == "mmio":
                return self._mmio_exit(exit)
            if exit.reason == "nisv":
                raise kernel_error(errno.ENOSYS, f"KVM_RUN: MMIO at {exit.addr:#x} by an instruction with "
                                   f"writeback (pc {exit.pc:#x}): no valid syndrome, KVM cannot emulate it")
            return self._internal_error(exit)
        return self._interrupted(f"the sim's time slice ({SLICE} instructions) ran out: call KVM_RUN "
                                 "again, as a VMM does after a signal")

    def _interrupted(self, why):
        self.run_struct.exit_reason = K.KVM_EXIT_INTR
        raise kernel_error(errno.EINTR, f"KVM_RUN: {why}")

    def _mmio_exit(self, exit):
        run = self.run_struct
        run.exit_reason = K.KVM_EXIT_MMIO
        run.mmio.phys_addr = exit.addr
        run.mmio.len = exit.length
        run.mmio.is_write = 1 if exit.is_write else 0
        data = exit.data.to_bytes(8, "little") if exit.is_write else bytes(8)
        ctypes.memmove(run.mmio.data, data, 8)
        if not exit.is_write:
            self.mmio_read_pending = exit.length
        return 0

    def _internal_error(self, exit):
        run = self.run_struct
        run.exit_reason = K.KVM_EXIT_INTERNAL_ERROR
        run.internal.suberror = K.KVM_INTERNAL_ERROR_EMULATION
        run.internal.ndata = 2
        run.internal.data[0] = exit.pc
        run.internal.data[1] = exit.insn
        self.board.log(f"kvm: vcpu {self.vcpu_id}: the sim cannot run {exit.reason} at pc {exit.pc:#x} "
                       f"(word {exit.insn:#010x})")
        return 0
