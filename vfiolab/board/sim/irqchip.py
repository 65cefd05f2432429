"""The sim kernel's MSI irqchip drivers, driving the C ITS and GICv2m models as Linux does.

ItsIrqchip is drivers/irqchip/irq-gic-v3-its.c in miniature (6.1): at boot it allocates the LPI
property and pending tables (its_cpu_init_lpis), a flat device table and a collection table
(its_alloc_tables), a 64 KiB command queue, enables the ITS, and maps CPU 0's collection (MAPC,
INVALL, each followed by SYNC: its_cpu_init_collections). Enabling MSIs on a device runs
its_msi_prepare (MAPD with an ITT for max(2, nvec) events), its_irq_domain_activate (MAPTI + SYNC)
and unmask (the LPI's configuration byte, then INV + SYNC: QEMU's redistributors, like ours, have
no DirectLPI); freeing them DISCARD + SYNC each, then MAPD V=0. Every command goes through the
queue in the ITS's memory, which is where a learner can read it (board.interrupts.its).

V2mIrqchip is irq-gic-v2m.c: an SPI from the frame's range per vector (lowest free first), message
data = that SPI's INTID, address = the frame's MSI_SETSPI_NS.

Both compose (physical doorbell, data); VFIO maps the doorbell page into the device's domain and
the message address becomes that IOVA (iommu_dma_compose_msi_msg).
"""
import errno
import struct
from collections import deque

from vfiolab.hw.gic import (GICR_CTLR, GICR_PENDBASER, GICR_PROPBASER, GITS_BASER, GITS_CBASER,
                            GITS_CREADR, GITS_CTLR, GITS_CWRITER, GITS_TRANSLATER, GITS_TYPER,
                            ITS, LPI_BASE, MSI_SETSPI_NS, GICv2m, decode_command, its_command)

from .errors import kernel_error

# Linux's constants (irq-gic-v3-its.c, arm-gic-v3.h).
ITS_CMD_QUEUE_SZ = 0x10000
ITS_ITT_ALIGN = 256
LPI_PROP_DEFAULT_PRIO, LPI_PROP_GROUP1, LPI_PROP_ENABLED = 0xA0, 0x2, 0x1
LPI_IDBITS = 16                         # INTIDs below 1 << 16 (the GIC's GICD_TYPER.IDbits)
# Where the sim kernel's allocations for the ITS land, past the start of RAM (the qemu board's
# kernel put its tables at RAM + 0x2590000 and on; the exact place is the allocator's choice).
GIC_MEMORY_OFFSET = 0x2590000
GIC_MEMORY_SIZE = 0x1000000


def _ram_base(topology_root):
    for node in topology_root.walk():
        if node.string("device_type") == "memory":
            return node.reg()[0][0]
    return 0x40000000


class _KernelMemory:
    """A bump allocator over the RAM the sim kernel gives the GIC (aligned, zeroed, never freed
    except ITTs, which go back on a free list: kfree)."""

    def __init__(self, base, size):
        self.base, self.end, self.next = base, base + size, base
        self.free_blocks = {}

    def alloc(self, size, align):
        for addr, block in list(self.free_blocks.items()):
            if block >= size and addr % align == 0:
                del self.free_blocks[addr]
                return addr
        addr = -(-self.next // align) * align
        if addr + size > self.end:
            raise kernel_error(errno.ENOMEM, "the GIC's memory is full")
        self.next = addr + size
        return addr

    def free(self, addr, size):
        self.free_blocks[addr] = size


class ItsIrqchip:
    chip_name = "ITS-MSI"
    isolated = True

    def __init__(self, board, node, root):
        self.board = board
        self.phys_base, self.size = node.reg()[0]
        self.doorbell = self.phys_base + GITS_TRANSLATER
        ram = _ram_base(root)
        self.its = ITS(num_cpus=1, memory_size=ram + GIC_MEMORY_OFFSET + GIC_MEMORY_SIZE)
        self.memory = _KernelMemory(ram + GIC_MEMORY_OFFSET, GIC_MEMORY_SIZE)
        self.devices = {}               # DeviceID -> {"itt", "itt_size", "lpis": {event: lpi}}
        self.lpi_owner = {}             # LPI -> (DeviceID, event)
        # What the ITS did that no register shows (dropped writes, command errors, LPIs taken),
        # newest last: a lab reads it to see a forged write dropped.
        self.log = deque(maxlen=1024)
        self._boot()

    # ---- boot: its_probe_one, its_alloc_tables, its_cpu_init_lpis, its_cpu_init_collections ----
    def _boot(self):
        its, mem, log = self.its, self.memory, self.board.log
        log(f"ITS [mem {self.phys_base:#010x}-{self.phys_base + self.size - 1:#010x}]")
        typer = its.readq(GITS_TYPER)
        name = f"ITS@{self.phys_base:#018x}"
        for n, what, bits in ((0, "Devices", (typer >> 13 & 0x1F) + 1),
                              (1, "Interrupt Collections", 16)):
            entry = (its.readq(GITS_BASER(n)) >> 48 & 0x1F) + 1
            ids = 1 << bits if n == 0 else 0x10000 // entry      # one 64K page of collections
            size = max(ids * entry, 0x10000)
            table = mem.alloc(size, 0x10000)
            # 64K pages (psz 64K), inner-shareable write-back (shr 1), flat (Indirect reads 0).
            its.writeq(GITS_BASER(n), 1 << 63 | 7 << 59 | 1 << 10 | 2 << 8 | table | (size // 0x10000 - 1))
            indirect = "indirect" if its.readq(GITS_BASER(n)) >> 62 & 1 else "flat"
            log(f"{name}: allocated {size // entry} {what} @{table:x} ({indirect}, esz {entry}, "
                f"psz 64K, shr 1)")
        self.queue = mem.alloc(ITS_CMD_QUEUE_SZ, 0x10000)
        its.writeq(GITS_CBASER, 1 << 63 | 7 << 59 | 1 << 10 | self.queue | (ITS_CMD_QUEUE_SZ // 0x1000 - 1))
        its.writeq(GITS_CWRITER, 0)
        # One configuration byte per LPI, from INTID 8192 (its_allocate_prop_table), all disabled.
        prop_size = (1 << LPI_IDBITS) - LPI_BASE
        self.prop = mem.alloc(prop_size, 0x10000)
        its.mem_write(self.prop, bytes([LPI_PROP_DEFAULT_PRIO | LPI_PROP_GROUP1]) * prop_size)
        log(f"GICv3: using LPI property table @{self.prop:#018x}")
        self.pend = mem.alloc((1 << LPI_IDBITS) // 8, 0x10000)
        log(f"GICv3: CPU0: using allocated LPI pending table @{self.pend:#018x}")
        its.gicr_writeq(0, GICR_PROPBASER, self.prop | 7 << 7 | 1 << 10 | (LPI_IDBITS - 1))
        its.gicr_writeq(0, GICR_PENDBASER, self.pend | 7 << 7 | 1 << 10)
        its.gicr_writel(0, GICR_CTLR, 1)                          # EnableLPIs
        its.writel(GITS_CTLR, 1)
        self.next_command = self.sent = 0
        self.collection = 0                                       # CPU 0's ICID
        self.send(its_command("MAPC", icid=0, rdbase=0, valid=1), its_command("SYNC", rdbase=0))
        self.send(its_command("INVALL", icid=0), its_command("SYNC", rdbase=0))
        self.its.take_records()

    def send(self, *commands):
        """its_send_single_command: queue at CWRITER, advance it, wait until CREADR catches up."""
        for command in commands:
            self.its.mem_write(self.queue + self.next_command, command)
            self.next_command = (self.next_command + 32) % ITS_CMD_QUEUE_SZ
            self.sent += 1
        self.its.writeq(GITS_CWRITER, self.next_command)
        creadr = self.its.readq(GITS_CREADR)
        if creadr != self.next_command:
            self.board.log(f"ITS queue timeout ({self.next_command} {creadr & ~1})")
            raise kernel_error(errno.ETIMEDOUT, f"the ITS did not run its commands (CREADR {creadr:#x})")

    # ---- MSI domain ops ----
    def msi_supported(self, device):
        if device.msi_device_id is None:
            raise kernel_error(errno.EINVAL, f"{device.name}: no ITS DeviceID (no msi-map entry)")

    def allocate(self, device, nvec):
        """its_msi_prepare + its_irq_domain_alloc/activate + unmask: [(LPI, doorbell, data)]."""
        self.msi_supported(device)
        dev_id = device.msi_device_id
        if dev_id in self.devices:
            raise kernel_error(errno.EBUSY, f"{device.name}: MSIs already allocated")
        nr_ites = max(2, 1 << (nvec - 1).bit_length())
        itt_size = max(nr_ites * 12, ITS_ITT_ALIGN) + ITS_ITT_ALIGN - 1
        itt = self.memory.alloc(itt_size, ITS_ITT_ALIGN)
        self.its.mem_write(itt, bytes(itt_size))
        lpis = self._alloc_lpis(nvec)
        self.devices[dev_id] = {"itt": itt, "itt_size": itt_size, "lpis": {}}
        self.send(its_command("MAPD", device_id=dev_id, size=nr_ites.bit_length() - 2, itt=itt, valid=1))
        out = []
        for event, lpi in enumerate(lpis):
            self.devices[dev_id]["lpis"][event] = lpi
            self.lpi_owner[lpi] = (dev_id, event)
            self.send(its_command("MAPTI", device_id=dev_id, event_id=event, intid=lpi,
                                  icid=self.collection), its_command("SYNC", rdbase=0))
            self._config(lpi, LPI_PROP_DEFAULT_PRIO | LPI_PROP_GROUP1 | LPI_PROP_ENABLED)
            self.send(its_command("INV", device_id=dev_id, event_id=event), its_command("SYNC", rdbase=0))
            out.append((lpi, self.doorbell, event))
        return out

    def free(self, device):
        """its_irq_domain_deactivate (DISCARD) for each event, then its_free_device (MAPD V=0)."""
        dev = self.devices.pop(device.msi_device_id, None)
        if dev is None:
            return
        for event, lpi in dev["lpis"].items():
            self.send(its_command("DISCARD", device_id=device.msi_device_id, event_id=event),
                      its_command("SYNC", rdbase=0))
            self._config(lpi, LPI_PROP_DEFAULT_PRIO | LPI_PROP_GROUP1)
            self.lpi_owner.pop(lpi, None)
        self.send(its_command("MAPD", device_id=device.msi_device_id, size=0, itt=0, valid=0))
        self.memory.free(dev["itt"], dev["itt_size"])

    def _alloc_lpis(self, nvec):
        used = set(self.lpi_owner)
        lpi = LPI_BASE
        while any(lpi + i in used for i in range(nvec)):
            lpi += 1
        if lpi + nvec > 1 << LPI_IDBITS:
            raise kernel_error(errno.ENOSPC, "its_lpi_alloc: no LPIs left")
        return list(range(lpi, lpi + nvec))

    def _config(self, lpi, value):
        self.its.mem_write(self.prop + lpi - LPI_BASE, bytes([value]))

    # ---- looking inside, as a lab does: everything read back from the ITS's memory ----
    def commands(self):
        """The commands sent so far, oldest first, decoded from the queue in memory (the last
        ITS_CMD_QUEUE_SZ / 32 of them once it has wrapped)."""
        end = self.its.readq(GITS_CREADR) & ~1
        wrapped = self.sent > ITS_CMD_QUEUE_SZ // 32
        offsets = ([*range(end, ITS_CMD_QUEUE_SZ, 32)] if wrapped else []) + [*range(0, end, 32)]
        return [decode_command(self.its.mem_read(self.queue + at, 32)) for at in offsets]

    def mappings(self):
        """[(DeviceID, EventID, LPI, collection, CPU)] as the tables in memory say: each valid DTE
        of the device table, each valid ITE of its ITT, the collection's CTE."""
        dt = self.its.readq(GITS_BASER(0)) & ((1 << 48) - 1) & ~0xFFFF
        ct = self.its.readq(GITS_BASER(1)) & ((1 << 48) - 1) & ~0xFFFF
        entries = (self.its.readq(GITS_BASER(0)) & 0xFF) + 1            # 64K pages
        table = self.its.mem_read(dt, entries * 0x10000)
        out = []
        for dev_id, (dte,) in enumerate(struct.iter_unpack("<Q", table)):
            if not dte & 1:
                continue
            itt, events = (dte >> 6 & ((1 << 44) - 1)) << 8, 1 << ((dte >> 1 & 0x1F) + 1)
            for event in range(events):
                ite = int.from_bytes(self.its.mem_read(itt + 12 * event, 8), "little")
                if ite & 3 == 3:
                    icid = ite >> 32 & 0xFFFF
                    cte = int.from_bytes(self.its.mem_read(ct + 8 * icid, 8), "little")
                    out.append((dev_id, event, ite >> 2 & 0xFFFFFF, icid,
                                cte >> 1 & 0xFFFF if cte & 1 else None))
        return out

    # ---- a write reached the doorbell ----
    def ring(self, device, physical, value):
        """GITS_TRANSLATER written by `device`'s DMA: the bus supplies its DeviceID (its PCI
        requester ID through msi-map), the data is only the EventID. [hwirqs taken]."""
        if physical != self.doorbell:
            return []
        device_id = device.msi_device_id if device is not None else None
        if device_id is None:
            # A master without an msi-map entry: the ITS sees no DeviceID it knows of.
            device_id = 0xFFFFFFFF
        self.its.deliver(value & 0xFFFFFFFF, device_id)
        return self._take()

    def _take(self):
        """The CPU takes each pending, enabled LPI (acknowledge = clear its pending bit)."""
        taken = []
        for r in self.its.take_records():
            self.log.append(r)
            if r.kind == "lpi_pending" and r.code & LPI_PROP_ENABLED:
                self.its.set_lpi_pending(r.cpu, r.intid, False)
                taken.append(r.intid)
        return taken


class V2mIrqchip:
    chip_name = "MSI"
    isolated = False

    def __init__(self, board, node, root):
        self.board = board
        self.phys_base, size = node.reg()[0]
        self.doorbell = self.phys_base + MSI_SETSPI_NS
        # arm,msi-base-spi / arm,msi-num-spis override MSI_TYPER (gicv2m_init_one).
        first = node.cell("arm,msi-base-spi", 64)
        count = node.cell("arm,msi-num-spis", 32)
        self.v2m = GICv2m(first_spi=first, num_spis=count)
        self.spis = list(range(first, first + count))
        self.allocated = {}             # SPI -> device name
        # The writes that reached MSI_SETSPI_NS, newest last: (bus master's name or None, value,
        # SPI raised or None). The frame never learns the master; the SMMU's StreamID names it
        # here, so a lab can show that the frame raised the SPI all the same.
        self.writes = deque(maxlen=64)
        board.log(f"GICv2m: range[mem {self.phys_base:#010x}-{self.phys_base + size - 1:#010x}], "
                  f"SPI[{first}:{first + count - 1}]")

    def msi_supported(self, device):
        return None

    def allocate(self, device, nvec):
        """gicv2m_irq_domain_alloc: a power-of-two aligned run of free SPIs (bitmap_find_free_region)."""
        order = 1 << (nvec - 1).bit_length()
        for start in range(0, len(self.spis), order):
            run = self.spis[start:start + order]
            if len(run) == order and not any(s in self.allocated for s in run):
                for s in run:                   # the whole power-of-two region is taken
                    self.allocated[s] = device.name
                return [(s, self.doorbell, s) for s in run[:nvec]]
        raise kernel_error(errno.ENOSPC, "GICv2m frame: no free SPI")

    def free(self, device):
        for spi in [s for s, owner in self.allocated.items() if owner == device.name]:
            del self.allocated[spi]

    def ring(self, device, physical, value):
        """MSI_SETSPI_NS written by anyone: the data is the SPI. [SPIs raised]."""
        if physical != self.doorbell:
            return []
        self.v2m.deliver(value & 0xFFFFFFFF)
        raised = self.v2m.take_raised()
        spi = value & 0x3FF                 # the INTID bits the frame takes (gic_v2m.h)
        self.writes.append((device.name if device is not None else None, value & 0xFFFFFFFF,
                            spi if spi in raised else None))
        return raised
