"""The PL330 (DMA-330) engine, headless: registers at the TRM's offsets, its own memory, a step API.

    from vfiolab.hw.pl330 import PL330, assemble, disassemble
    dma = PL330()                                  # flat bus memory at address 0 (256 MiB, lazy)
    dma.mem_write(0x1000, assemble("DMAMOV SAR, 0x2000 ..."))
    dma.start(0, 0x1000)                           # DMAGO through DBGINST0/1 and DBGCMD
    dma.run()                                      # until nothing can make progress
    dma.readl(0x100)                               # CSR0

The engine is C (vfiolab/csrc/pl330.c). PL330.on_bus() puts it behind another bus (the sim board's
IOMMU); `run(max_cycles=N)` steps, `run()` also takes the (equally exact) fast path for copy loops.
"""
from collections import namedtuple

from ._flatbus import U64, FlatBusModel, check_int as _check_int
from .pl330_asm import AsmError, assemble, ccr_text, ccr_value, disassemble

__all__ = ["PL330", "assemble", "disassemble", "AsmError", "memcpy_program", "ThreadState",
           "ccr_value", "ccr_text", "debug_instruction", "STATE_NAMES", "FAULT_NAMES",
           "CHANNEL_FAULT_NAMES", "MANAGER_FAULT_NAMES", "PERIPH_ID", "revision"]

# Register offsets (TRM table 3-1).
DSR, DPC, INTEN, INT_EVENT_RIS, INTMIS, INTCLR = 0x000, 0x004, 0x020, 0x024, 0x028, 0x02C
FSRD, FSRC, FTRD = 0x030, 0x034, 0x038
DBGSTATUS, DBGCMD, DBGINST0, DBGINST1 = 0xD00, 0xD04, 0xD08, 0xD0C
CR0, CR1, CR2, CR3, CR4, CRD = 0xE00, 0xE04, 0xE08, 0xE0C, 0xE10, 0xE14


def FTR(n): return 0x040 + 4 * n       # noqa: E704
def CSR(n): return 0x100 + 8 * n       # noqa: E704
def CPC(n): return 0x104 + 8 * n       # noqa: E704
def SAR(n): return 0x400 + 0x20 * n    # noqa: E704
def DAR(n): return 0x404 + 0x20 * n    # noqa: E704
def CCR(n): return 0x408 + 0x20 * n    # noqa: E704
def LC0(n): return 0x40C + 0x20 * n    # noqa: E704
def LC1(n): return 0x410 + 0x20 * n    # noqa: E704


STATE_NAMES = {0: "stopped", 1: "executing", 2: "cache miss", 3: "updating pc",
               4: "waiting for event", 5: "at barrier", 7: "waiting for peripheral", 8: "killing",
               9: "completing", 14: "faulting completing", 15: "faulting"}
# FTR(n), a channel's fault type: bit 4 (DMAGO error in FTRD) is reserved here.
CHANNEL_FAULT_NAMES = {0: "undefined instruction", 1: "operand invalid", 5: "event error",
                       6: "peripheral error", 7: "read/write error", 12: "MFIFO error",
                       13: "store data unavailable", 16: "instruction fetch error",
                       17: "data write error", 18: "data read error", 30: "debug instruction",
                       31: "lockup"}
# FTRD, the manager's fault type.
MANAGER_FAULT_NAMES = {0: "undefined instruction", 1: "operand invalid", 4: "DMAGO error",
                       5: "event error", 16: "instruction fetch error", 30: "debug instruction"}
# Kept for older code: the channel table (decode FTRD with MANAGER_FAULT_NAMES).
FAULT_NAMES = CHANNEL_FAULT_NAMES

ThreadState = namedtuple("ThreadState", "thread state state_name pc sar dar ccr lc0 lc1 fault "
                         "fault_names wakeup nonsecure mfifo_bytes reads_queued writes_queued")

# run() without a limit still stops: a DMALPFE loop with no peripheral runs for ever.
DEFAULT_CYCLE_LIMIT = 1 << 28


def debug_instruction(code, channel=None):
    """(DBGINST0, DBGINST1) for an instruction run through the debug interface: on the manager
    when channel is None, else on that channel thread."""
    b = bytes(code) + bytes(6 - len(code))
    inst0 = b[0] << 16 | b[1] << 24
    if channel is not None:
        inst0 |= 1 | (channel & 7) << 8
    return inst0, int.from_bytes(b[2:6], "little")


class PL330(FlatBusModel):
    """One DMA-330: its register file, its threads, and the memory it masters."""

    def __init__(self, channels=8, peripherals=4, events=16, data_width=64, mfifo_lines=256,
                 read_queue_depth=16, write_queue_depth=16, manager_nonsecure=False,
                 irq_nonsecure=0, periph_nonsecure=0, boot_address=None,
                 memory_size=256 << 20, bus=None):
        for what, value in (("channels", channels), ("peripherals", peripherals),
                            ("events", events), ("data_width", data_width),
                            ("mfifo_lines", mfifo_lines), ("read_queue_depth", read_queue_depth),
                            ("write_queue_depth", write_queue_depth),
                            ("irq_nonsecure", irq_nonsecure),
                            ("periph_nonsecure", periph_nonsecure)):
            _check_int(value, what)
        if boot_address is not None:
            _check_int(boot_address, "boot_address")
        self._attach_bus(bus, memory_size)
        ffi, lib = self._ffi, self._lib
        cfg = ffi.new("struct vfl_pl330_config *")
        lib.vfl_pl330_default_config(cfg)
        cfg.channels, cfg.peripherals, cfg.events = channels, peripherals, events
        cfg.data_width_bits, cfg.mfifo_lines = data_width, mfifo_lines
        cfg.read_queue_depth, cfg.write_queue_depth = read_queue_depth, write_queue_depth
        cfg.manager_nonsecure = bool(manager_nonsecure)
        cfg.irq_nonsecure, cfg.periph_nonsecure = irq_nonsecure, periph_nonsecure
        if boot_address is not None:
            cfg.boot_manager, cfg.boot_address = 1, boot_address
        self.config = cfg
        dma = lib.vfl_pl330_new(cfg, self._bus[0])
        if dma == ffi.NULL:
            raise ValueError("PL330 configuration out of range (channels 1..8, events 1..32, "
                             "peripherals 0..32, data width 32/64/128, queues 1..16)")
        self._dma = ffi.gc(dma, lib.vfl_pl330_free)
        self._irq_handle = None
        self.channels = channels

    # on_bus(), mem_write(), mem_read(), memory_view(): the memory it masters (FlatBusModel)

    # ---- registers ----
    def readl(self, offset):
        return self._lib.vfl_pl330_readl(self._dma, _check_int(offset, "register offset"))

    def writel(self, offset, value):
        self._lib.vfl_pl330_writel(self._dma, _check_int(offset, "register offset"),
                                   _check_int(value, "register value"))

    def reset(self):
        self._lib.vfl_pl330_reset(self._dma)

    # ---- running ----
    def run(self, max_cycles=None, fast=None):
        """Run until nothing can make progress (max_cycles None), or for max_cycles cycles.
        Returns the cycles run. fast (default: only without max_cycles) lets a steadily
        repeating loop (a copy) skip whole periods at once with bulk copies: the same memory,
        registers, faults, events and cycle count as stepping, only quicker; without it every
        cycle is stepped (widgets that animate the engine step a few cycles at a time)."""
        if fast is None:
            fast = max_cycles is None
        if max_cycles is None:
            max_cycles = DEFAULT_CYCLE_LIMIT
        max_cycles = _check_int(max_cycles, "max_cycles", U64)
        return self._lib.vfl_pl330_run(self._dma, max_cycles, 1 if fast else 0)

    def run_stepping(self, max_cycles=DEFAULT_CYCLE_LIMIT):
        """Like run(), but never the fast path (tests compare the two)."""
        return self._lib.vfl_pl330_run(self._dma, _check_int(max_cycles, "max_cycles", U64), 0)

    @property
    def idle(self):
        """True when the last run stopped because every thread is stopped, faulting or waiting."""
        return bool(self._lib.vfl_pl330_idle(self._dma))

    @property
    def cycles(self):
        return self._lib.vfl_pl330_cycles(self._dma)

    @property
    def fast_iterations(self):
        return self._lib.vfl_pl330_fast_iterations(self._dma)

    def debug(self, code, channel=None):
        """Run one instruction (DMAGO, DMAKILL, DMASEV) through the debug interface."""
        inst0, inst1 = debug_instruction(code, channel)
        self.writel(DBGINST0, inst0)
        self.writel(DBGINST1, inst1)
        self.writel(DBGCMD, 0)

    def start(self, channel, pc, nonsecure=False):
        """DMAGO channel at pc, from the manager through the debug interface (as Linux does)."""
        channel, pc = _check_int(channel, "channel", 7), _check_int(pc, "pc")
        self.debug(bytes([0xA2 if nonsecure else 0xA0, channel]) + pc.to_bytes(4, "little"))

    def kill(self, channel=None):
        self.debug(b"\x01", channel)

    # ---- thread state, for widgets ----
    def thread(self, n):
        """State of channel n, or of the manager when n is None or "manager"."""
        index = -1 if n in (None, "manager") else n
        out = self._ffi.new("struct vfl_pl330_thread *")
        if self._lib.vfl_pl330_thread_state(self._dma, index, out) < 0:
            raise IndexError(f"no thread {n!r}")
        table = MANAGER_FAULT_NAMES if index < 0 else CHANNEL_FAULT_NAMES
        faults = [name for bit, name in table.items() if out.fault >> bit & 1]
        return ThreadState("manager" if index < 0 else index, out.state,
                           STATE_NAMES.get(out.state, f"state {out.state}"), out.pc, out.sar,
                           out.dar, out.ccr, out.lc0, out.lc1, out.fault, faults, out.wakeup,
                           bool(out.nonsecure), out.mfifo_bytes, out.reads_queued,
                           out.writes_queued)

    def threads(self):
        return [self.thread("manager")] + [self.thread(i) for i in range(self.channels)]

    # ---- peripherals and interrupts ----
    def request(self, periph, burst=False, last=False):
        """Peripheral `periph` requests a single or burst transfer; False if one is pending."""
        periph = _check_int(periph, "peripheral")
        return self._lib.vfl_pl330_request(self._dma, periph, burst, last) == 0

    @property
    def irq_lines(self):
        """Bit n set: interrupt line n is high (level-triggered: INT_EVENT_RIS[n] & INTEN[n])."""
        return self._lib.vfl_pl330_irq_lines(self._dma)

    @property
    def abort_line(self):
        return bool(self._lib.vfl_pl330_abort_line(self._dma))

    def on_irq(self, callback):
        """callback(irq_lines, abort) whenever the interrupt lines change; None to stop."""
        if callback is None:
            self._lib.vfl_pl330_set_irq_callback(self._dma, self._ffi.NULL, self._ffi.NULL)
            self._irq_handle = None
            return

        @self._ffi.callback("void(void *, uint32_t, int)")
        def trampoline(ctx, lines, abort):
            callback(lines, bool(abort))

        self._irq_handle = trampoline   # cffi callbacks must outlive their registration
        self._lib.vfl_pl330_set_irq_callback(self._dma, trampoline, self._ffi.NULL)


# ------------------------------------------------------------------ Linux-style memcpy microcode

def _log2(n):
    return n.bit_length() - 1


def memcpy_ccr(burst_size, burst_len, cache=0, prot=0):
    """CCR of a memory-to-memory copy: both sides incrementing, the same burst shape."""
    s, b = _log2(burst_size), burst_len - 1
    return (1 | s << 1 | b << 4 | prot << 8 | cache << 11 |
            1 << 14 | s << 15 | b << 18 | prot << 22 | cache << 25)


def linux_burst_shape(src, dst, length, data_width=64, mfifo_lines=256, channels=8):
    """(burst size in bytes, burst length) as Linux's pl330_prep_dma_memcpy picks them: the widest
    beat that src, dst and length are all aligned to, and as many beats as this channel's share
    of the MFIFO holds, at most 16."""
    burst = data_width // 8
    while burst > 1 and (src | dst | length) & (burst - 1):
        burst //= 2
    burst_len = (data_width // 8) * mfifo_lines // channels // burst
    return burst, max(1, min(16, burst_len, length // burst or 1))


# The peripheral ID this engine reports (0xFE0..0xFEC): part 0x330, designer 0x41 (ARM),
# revision 2 (bits [23:20]).
PERIPH_ID = 0x00241330
PERIPH_REV_R1P0 = 1


def revision(periph_id):
    """The PL330's revision: peripheral ID bits [23:20] (Linux's get_revision)."""
    return periph_id >> 20 & 0xF


def memcpy_program(src, dst, length, burst_size=None, burst_len=None, event=0, data_width=64,
                   mfifo_lines=256, channels=8, barriers=None, periph_id=PERIPH_ID):
    """Microcode that copies `length` bytes from src to dst the way Linux's drivers/dma/pl330.c
    builds it: DMAMOV CCR/SAR/DAR, then bursts in loops (LC0 around LC1 when more than 256 are
    needed), then the leftover beats in one shorter burst; then DMASEV event (None: no event) and
    DMAEND. Each burst is DMALD, DMAST; DMALD, DMARMB, DMAST, DMAWMB only on a PL330 older than
    r1p0 (Linux's _ldst_memtomem: the barriers work around r0p0's lock-up). `periph_id` says
    which; this engine's (PERIPH_ID) is revision 2, so no barriers. `barriers` True or
    False overrides it."""
    for what, value in (("src", src), ("dst", dst), ("length", length)):
        _check_int(value, f"memcpy_program: {what}", why=" (the PL330 has 32-bit addresses)")
    if burst_size is None or burst_len is None:
        size, blen = linux_burst_shape(src, dst, length, data_width, mfifo_lines, channels)
        burst_size = burst_size or size
        burst_len = burst_len or blen
    if length % burst_size:
        raise ValueError(f"length {length} is not a multiple of the burst size {burst_size}")
    if barriers is None:
        barriers = revision(periph_id) < PERIPH_REV_R1P0
    body = ["DMALD", "DMARMB", "DMAST", "DMAWMB"] if barriers else ["DMALD", "DMAST"]
    lines = [f"DMAMOV CCR, 0x{memcpy_ccr(burst_size, burst_len):08x}",
             f"DMAMOV SAR, 0x{src:08x}", f"DMAMOV DAR, 0x{dst:08x}"]
    bursts, leftover = divmod(length // burst_size, burst_len)
    while bursts:
        if bursts == 1:
            lines += body
            bursts = 0
            continue
        if bursts >= 256 * 256:
            outer, inner = 256, 256
        elif bursts > 256:
            outer, inner = bursts // 256, 256
        else:
            outer, inner = 0, bursts
        if outer > 1:
            lines.append(f"DMALP LC0, {outer}")
        lines.append(f"DMALP LC1, {inner}")
        lines += body
        lines.append("DMALPEND LC1")
        if outer > 1:
            lines.append("DMALPEND LC0")
        bursts -= max(outer, 1) * inner
    if leftover:
        lines.append(f"DMAMOV CCR, 0x{memcpy_ccr(burst_size, leftover):08x}")
        lines += body
    if event is not None:
        lines.append(f"DMASEV E{event}")
    lines.append("DMAEND")
    return assemble("\n".join(lines))
