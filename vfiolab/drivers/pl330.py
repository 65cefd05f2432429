"""A user-space driver for the ARM PL330 (DMA-330) through vfio-platform or vfio-amba.

The PL330 runs microcode from memory it reaches through the IOMMU. memcpy_start writes Linux-style
memcpy microcode into the driver's DMA region (with or without DMARMB/DMAWMB as Linux chooses from
the revision in the peripheral ID), then starts channel 0 with DMAGO through the debug interface
(the manager thread is not running a program of ours); the microcode ends with DMASEV, which
raises IRQ `event` when INTEN has the bit. memcpy_wait waits for that IRQ's eventfd, clears the
event with INTCLR and unmasks the (level, automasked) line, as vfio_platform_irq.c expects.

The shape is that of the Linux VFIO selftests' driver ops (tools/testing/selftests/vfio/lib,
struct vfio_pci_driver_ops), and where it differs, on purpose:
- selftests: memcpy_start(device, src, dst, size, count) starts `count` copies of `size` bytes and
  promises the device raises *no* interrupt; memcpy_wait polls the device for completion and
  returns 0, or non-zero on error; interrupts are a separate op, send_msi, that makes the device
  send one MSI (the tests check MSIs apart from copies).
- here: memcpy_start(src, dst, size, count=1) takes the count too, but its microcode ends with
  DMASEV, so every memcpy_start raises the event interrupt; memcpy_wait waits for that interrupt
  on the eventfd (poll) and raises DmaError on a fault or a timeout instead of returning non-zero.
  The PL330 has no MSI: its events are wired lines, so there is no send_msi. Lab 02 is about the
  interrupt path (eventfd, INTCLR, UNMASK), which a polled wait would skip.
"""
from ..hw import pl330 as hw
from . import DmaError

PRIMECELL_ID = 0xB105F00D
PL330_PART_NUMBER = 0x330


def read_ids(regs, size):
    """(PrimeCell ID, peripheral ID) from the last eight ID words of the register region:
    each 32-bit word carries one byte in its low eight bits (REFERENCE section 2)."""
    def id_from(first):
        return sum((regs.read32(first + 4 * i) & 0xFF) << (8 * i) for i in range(4))
    return id_from(size - 0x10), id_from(size - 0x20)


class PL330Driver:
    name = "pl330"
    max_memcpy_count = 16
    max_memcpy_size = 1 << 26

    def __init__(self, device, channel=0, event=0, irq_index=None):
        self.device, self.channel, self.event = device, channel, event
        # The DT node lists the abort line first, then one interrupt per event (the sim DT's order), so
        # event n is IRQ index 1 + n; a node with a single interrupt has them combined (index 0).
        self.irq_index = irq_index
        self.regs = self.irq = self.abort_irq = self.region = self.periph_id = None

    def probe(self):
        if self.device.kind not in ("platform", "amba") or self.device.num_regions < 1:
            return False
        region = self.device.region(0)
        if not region.mmappable or region.size < 0x1000:
            return False
        regs = region.mmap()
        primecell, periph = read_ids(regs, 0x1000)
        if primecell != PRIMECELL_ID or periph & 0xFFF != PL330_PART_NUMBER:
            return False
        self.regs, self.periph_id = regs, periph
        return True

    def init(self, region):
        if self.regs is None and not self.probe():
            raise DmaError(f"{self.device.name} is not a PL330 (PrimeCell/peripheral IDs do not match)")
        self.region = region
        if self.irq_index is None:
            self.irq_index = 1 + self.event if self.device.num_irqs > 1 else 0
        self.irq = self.device.irq(self.irq_index)
        self.irq.enable()
        if self.irq_index != 0:
            # The abort line (index 0) rises when a thread faults: listening to it too means a
            # fault is reported at once instead of after the event's timeout.
            self.abort_irq = self.device.irq(0)
            self.abort_irq.enable()
        self.regs.write32(hw.INTCLR, 1 << self.event)
        self.regs.write32(hw.INTEN, self.regs.read32(hw.INTEN) | 1 << self.event)

    def remove(self):
        if self.regs is not None:
            self.regs.write32(hw.INTEN, self.regs.read32(hw.INTEN) & ~(1 << self.event))
        for irq in (self.irq, self.abort_irq):
            if irq is not None:
                irq.disable()
        self.irq = self.abort_irq = None

    def kill(self):
        """Recover from a fault: DMAKILL the channel (through the debug interface), then unmask
        the abort line, which the fault left masked."""
        self._wait_debug_idle()
        inst0, inst1 = hw.debug_instruction(bytes([0x01]), channel=self.channel)  # DMAKILL
        self.regs.write32(hw.DBGINST0, inst0)
        self.regs.write32(hw.DBGINST1, inst1)
        self.regs.write32(hw.DBGCMD, 0)
        if self.abort_irq is not None and self.abort_irq.automasked:
            self.abort_irq.unmask()

    def _wait_debug_idle(self):
        for _ in range(1000):
            if not self.regs.read32(hw.DBGSTATUS) & 1:
                return
        raise DmaError("the PL330 debug interface stays busy (DBGSTATUS bit 0 set)")

    def start_program(self, program_iova):
        """DMAGO channel, program_iova through DBGINST0/1 and DBGCMD (the TRM's way to start a thread)."""
        self._wait_debug_idle()
        # Like Linux's pl330 driver: a non-secure DMAGO only when the manager boots non-secure
        # (CR0 bit 2, mgr_ns_at_rst); a non-secure thread may not use secure events (event error).
        nonsecure = bool(self.regs.read32(hw.CR0) & (1 << 2))
        go = bytes([0xA2 if nonsecure else 0xA0, self.channel]) + program_iova.to_bytes(4, "little")
        inst0, inst1 = hw.debug_instruction(go)
        self.regs.write32(hw.DBGINST0, inst0)
        self.regs.write32(hw.DBGINST1, inst1)
        self.regs.write32(hw.DBGCMD, 0)

    def _require_init(self):
        if self.irq is None:
            raise DmaError("the driver is not initialised: call init(region) first")

    def memcpy_start(self, src, dst, size, count=1):
        """Start `count` copies of `size` bytes from IOVA src to IOVA dst (one after the other, as
        the selftests' count) and return at once. Unlike the selftests' memcpy_start, the
        device raises the event interrupt when the last copy is done."""
        self._require_init()
        if not 0 < size <= self.max_memcpy_size or not 0 < count <= self.max_memcpy_count:
            raise ValueError(f"size must be 1..{self.max_memcpy_size} and count 1..{self.max_memcpy_count}")
        copies = [hw.memcpy_program(src, dst, size, event=None, periph_id=self.periph_id)[:-1]
                  for _ in range(count)]                                     # drop DMAEND
        program = b"".join(copies) + hw.assemble(f"DMASEV E{self.event}\nDMAEND")
        if len(program) > self.region.size:
            raise DmaError(f"microcode ({len(program)} bytes) does not fit the driver region ({self.region.size})")
        self.region.view()[:len(program)] = program
        self.start_program(self.region.iova)

    def fault(self):
        """A description of the channel's fault, or None."""
        if not self.regs.read32(hw.FSRC) & (1 << self.channel):
            return None
        ftr = self.regs.read32(hw.FTR(self.channel))
        names = [name for bit, name in hw.FAULT_NAMES.items() if ftr & (1 << bit)]
        pc = self.regs.read32(hw.CPC(self.channel))
        return f"channel {self.channel} faulted at PC 0x{pc:08x}: {', '.join(names) or hex(ftr)}"

    def _wait_stopped(self, reads=1000):
        """The DMASEV that raises the interrupt runs once the last DMAST is issued, not written:
        the channel's DMAEND then waits for its bursts (Completing). Like Linux's _start, wait
        for the channel to stop before calling the copy done. The interrupt is left unread, so
        a call after a DmaError here still sees it."""
        for _ in range(reads):
            state = self.regs.read32(hw.CSR(self.channel)) & 0xF
            if state != 9:                          # 9: completing
                return
        raise DmaError(f"the interrupt came, but channel {self.channel} is still completing "
                       f"(its last bursts are not written) after {reads} CSR reads")

    def memcpy_wait(self, timeout_ms=1000):
        """Wait for the copies' interrupt (the selftests' memcpy_wait polls the device instead)
        and for the channel to finish its last bursts, then clear the event and unmask the line.
        A fault or no interrupt within timeout_ms raises DmaError saying which (the selftests'
        returns non-zero)."""
        self._require_init()
        board = self.device.board
        fds = [self.irq.eventfd] + ([self.abort_irq.eventfd] if self.abort_irq else [])
        ready = board.poll(fds, timeout_ms)
        if self.irq.eventfd in ready and not self.fault():
            self._wait_stopped()
        fired = self.irq.eventfd in ready and self.irq.wait(0)
        if self.abort_irq and self.abort_irq.eventfd in ready:
            self.abort_irq.wait(0)  # the line stays masked (automasked) until kill() recovers
        fault = self.fault()
        if fault:
            raise DmaError(fault)
        if not fired:
            state = self.regs.read32(hw.CSR(self.channel)) & 0xF
            raise DmaError(f"no interrupt within {timeout_ms} ms; channel {self.channel} is "
                           f"{hw.STATE_NAMES.get(state, hex(state))}")
        self.regs.write32(hw.INTCLR, 1 << self.event)
        if self.irq.automasked:
            self.irq.unmask()
