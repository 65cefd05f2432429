"""Python faces of the AArch64 interpreter and the vGICv3 (vfiolab/csrc/aarch64.h, vgic3.h).

    gic = Vgic3(nr_spis=224)
    cpu = A64Cpu()
    ram = cpu.add_ram(0x40000000, 0x10000)           # guest RAM, host memory the cpu owns
    ram[0:len(code)] = code
    cpu.attach_vgic(gic, dist=0x08000000, redist=0x080A0000)
    cpu.pc = 0x40000000
    exit = cpu.run(budget=10000)                     # Exit(reason="mmio", addr=..., ...)

The sim board's KVM (vfiolab/board/sim/kvm*.py) is built on these; tests and notebooks may use
them directly to watch a guest step by step.
"""
from dataclasses import dataclass

from vfiolab._hw import ffi, lib

REASONS = {lib.VFL_A64_EXIT_BUDGET: "budget", lib.VFL_A64_EXIT_MMIO: "mmio",
           lib.VFL_A64_EXIT_UNDEF: "undef", lib.VFL_A64_EXIT_FETCH: "fetch",
           lib.VFL_A64_EXIT_WFI: "wfi", lib.VFL_A64_EXIT_EOI: "eoi",
           lib.VFL_A64_EXIT_BAD_MODE: "bad_mode", lib.VFL_A64_EXIT_NISV: "nisv"}
NAMED_REGS = {"sp_el0": lib.VFL_A64_SP_EL0, "pc": lib.VFL_A64_PC, "pstate": lib.VFL_A64_PSTATE,
              "sp_el1": lib.VFL_A64_SP_EL1, "elr_el1": lib.VFL_A64_ELR_EL1,
              "spsr_el1": lib.VFL_A64_SPSR_EL1, "vbar_el1": lib.VFL_A64_VBAR_EL1,
              "esr_el1": lib.VFL_A64_ESR_EL1, "far_el1": lib.VFL_A64_FAR_EL1,
              "tpidr_el1": lib.VFL_A64_TPIDR_EL1}
ICC = {"iar1": lib.VFL_ICC_IAR1, "eoir1": lib.VFL_ICC_EOIR1, "hppir1": lib.VFL_ICC_HPPIR1,
       "pmr": lib.VFL_ICC_PMR, "rpr": lib.VFL_ICC_RPR, "igrpen1": lib.VFL_ICC_IGRPEN1,
       "sre": lib.VFL_ICC_SRE, "ctlr": lib.VFL_ICC_CTLR, "dir": lib.VFL_ICC_DIR, "bpr1": lib.VFL_ICC_BPR1}
SPI_BASE = 32
GICD_SIZE, GICR_SIZE = 0x10000, 0x20000


@dataclass(frozen=True)
class Exit:
    reason: str          # budget, mmio, undef, fetch, wfi, eoi, bad_mode, nisv
    pc: int
    insn: int = 0
    addr: int = 0
    data: int = 0
    length: int = 0
    is_write: bool = False


@dataclass(frozen=True)
class IrqState:
    intid: int
    enabled: bool
    pending: bool
    active: bool
    level: bool          # level-triggered (else edge)
    line: bool
    latch: bool
    priority: int
    group: int
    route: int


class Vgic3:
    """KVM's vGICv3 for one vCPU."""

    def __init__(self, nr_spis=224):
        if not isinstance(nr_spis, int) or nr_spis < 32 or nr_spis > 988 or nr_spis % 32:
            raise ValueError(f"nr_spis must be a multiple of 32 in 32..988, not {nr_spis!r}")
        self._ptr = ffi.gc(lib.vfl_vgic3_new(nr_spis), lib.vfl_vgic3_free)
        self.nr_spis = nr_spis

    def reset(self):
        lib.vfl_vgic3_reset(self._ptr)

    @staticmethod
    def _check_access(offset, length, size):
        if length not in (1, 2, 4, 8):
            raise ValueError(f"access width must be 1, 2, 4 or 8 bytes, not {length!r}")
        if not 0 <= offset < size:
            raise ValueError(f"offset {offset:#x} is outside the {size:#x}-byte frame")

    def dist_read(self, offset, length=4):
        self._check_access(offset, length, GICD_SIZE)
        return lib.vfl_vgic3_dist_read(self._ptr, offset, length)

    def dist_write(self, offset, value, length=4):
        self._check_access(offset, length, GICD_SIZE)
        lib.vfl_vgic3_dist_write(self._ptr, offset, length, value & (2**64 - 1))

    def redist_read(self, offset, length=4):
        self._check_access(offset, length, GICR_SIZE)
        return lib.vfl_vgic3_redist_read(self._ptr, offset, length)

    def redist_write(self, offset, value, length=4):
        self._check_access(offset, length, GICR_SIZE)
        lib.vfl_vgic3_redist_write(self._ptr, offset, length, value & (2**64 - 1))

    def set_line(self, intid, level):
        """kvm_vgic_inject_irq: drive INTID's input (an edge interrupt latches on True)."""
        if lib.vfl_vgic3_set_line(self._ptr, intid, 1 if level else 0) < 0:
            raise ValueError(f"INTID {intid} is not an SGI, PPI or one of the {self.nr_spis} SPIs")

    def state(self, intid):
        out = ffi.new("struct vfl_vgic3_irq *")
        if lib.vfl_vgic3_irq_state(self._ptr, intid, out) < 0:
            raise ValueError(f"INTID {intid} is not an SGI, PPI or one of the {self.nr_spis} SPIs")
        return IrqState(out.intid, bool(out.enabled), bool(out.pending), bool(out.active),
                        bool(out.level), bool(out.line), bool(out.latch), out.priority, out.group, out.route)

    def icc_read(self, name):
        value = ffi.new("uint64_t *")
        if lib.vfl_vgic3_icc_read(self._ptr, ICC[name], value) < 0:
            raise ValueError(f"ICC_{name.upper()}_EL1 cannot be read")
        return value[0]

    def icc_write(self, name, value):
        if lib.vfl_vgic3_icc_write(self._ptr, ICC[name], value) < 0:
            raise ValueError(f"ICC_{name.upper()}_EL1 cannot be written")

    @property
    def signalled(self):
        return bool(lib.vfl_vgic3_irq_signalled(self._ptr))

    def take_eois(self):
        """INTIDs of level SPIs deactivated since the last call, oldest first."""
        out, intid = [], ffi.new("uint32_t *")
        while lib.vfl_vgic3_take_eoi(self._ptr, intid):
            out.append(intid[0])
        return out


class A64Cpu:
    """One vCPU of the interpreter."""

    def __init__(self):
        self._ptr = ffi.gc(lib.vfl_a64_new(), lib.vfl_a64_free)
        self._exit = ffi.new("struct vfl_a64_exit *")
        self._ram = {}            # slot -> (gpa, buffer) kept alive while mapped
        self.gic = None

    def reset(self):
        lib.vfl_a64_reset(self._ptr)

    def map_ram(self, slot, gpa, buffer):
        """Guest RAM slot `slot` at gpa, backed by `buffer` (writable, kept referenced); a
        zero-length buffer (or None) deletes the slot."""
        if buffer is None or len(buffer) == 0:
            lib.vfl_a64_set_ram(self._ptr, slot, 0, 0, ffi.NULL)
            self._ram.pop(slot, None)
            return
        host = ffi.from_buffer("uint8_t[]", buffer, require_writable=True)
        if lib.vfl_a64_set_ram(self._ptr, slot, gpa, len(buffer), host) < 0:
            raise ValueError(f"slot {slot} (0..31) or range {gpa:#x}+{len(buffer):#x} is invalid")
        self._ram[slot] = (gpa, buffer, host)

    def add_ram(self, gpa, size, slot=None):
        """New zeroed guest RAM at gpa; returns its bytearray."""
        slot = len(self._ram) if slot is None else slot
        buffer = bytearray(size)
        self.map_ram(slot, gpa, buffer)
        return buffer

    def attach_vgic(self, gic, dist, redist):
        self.gic = gic
        lib.vfl_a64_attach_vgic(self._ptr, gic._ptr if gic else ffi.NULL, dist, redist)

    def reg(self, which):
        return lib.vfl_a64_get_reg(self._ptr, self._reg_number(which))

    def set_reg(self, which, value):
        lib.vfl_a64_set_reg(self._ptr, self._reg_number(which), value & (2**64 - 1))

    @staticmethod
    def _reg_number(which):
        if isinstance(which, int) and 0 <= which <= 30:
            return which
        if isinstance(which, str) and which.startswith("x") and which[1:].isdigit() and int(which[1:]) <= 30:
            return int(which[1:])
        if which in NAMED_REGS:
            return NAMED_REGS[which]
        raise ValueError(f"no register {which!r}: x0-x30 or one of {', '.join(NAMED_REGS)}")

    @property
    def pc(self):
        return self.reg("pc")

    @pc.setter
    def pc(self, value):
        self.set_reg("pc", value)

    @property
    def steps(self):
        return lib.vfl_a64_steps(self._ptr)

    def set_mmio_data(self, data):
        lib.vfl_a64_set_mmio_data(self._ptr, data & (2**64 - 1))

    def run(self, budget=100_000):
        """Run at most `budget` instructions; the Exit that stopped it."""
        if not isinstance(budget, int) or budget < 0:
            raise ValueError(f"budget must be a non-negative int, not {budget!r}")
        e = self._exit
        lib.vfl_a64_run(self._ptr, budget, e)
        return Exit(REASONS[e.reason], e.pc, e.insn, e.addr, e.data, e.len, bool(e.is_write))


