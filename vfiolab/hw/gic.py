"""The GICv3 ITS (with its redistributors' LPI tables) and a GICv2m frame, headless.

    from vfiolab.hw.gic import ITS, GICv2m, its_command
    its = ITS()                                   # flat memory at bus address 0 (1 GiB, lazy)
    its.gicr_writeq(0, GICR_PROPBASER, prop | 15); its.gicr_writeq(0, GICR_PENDBASER, pend)
    its.gicr_writel(0, GICR_CTLR, 1)              # EnableLPIs
    its.writeq(GITS_BASER(0), ...); its.writeq(GITS_CBASER, ...); its.writel(GITS_CTLR, 1)
    its.mem_write(queue, its_command("MAPD", device_id=8, size=4, itt=itt))
    its.writeq(GITS_CWRITER, 32)                  # the ITS runs the queue now
    its.deliver(3, device_id=8)                   # a write of EventID 3 to GITS_TRANSLATER by device 8
    its.take_records()                            # [Record(kind='lpi_pending', intid=8192, ...)]

    v2m = GICv2m(first_spi=80, num_spis=64)
    v2m.writel(MSI_SETSPI_NS, 81); v2m.take_raised()   # [81]

The models are C (vfiolab/csrc/gic_its.c, gic_v2m.c): every table and the command queue are read
and written through the ITS's bus, so on the sim board they sit in simulated memory where a learner
can read them. Register offsets and formats: see the C headers.
"""
from collections import namedtuple

from ._flatbus import U32, U64, FlatBusModel, check_int as _check_int

__all__ = ["ITS", "GICv2m", "its_command", "decode_command", "Record", "COMMANDS",
           "GITS_CTLR", "GITS_IIDR", "GITS_TYPER", "GITS_CBASER", "GITS_CWRITER", "GITS_CREADR",
           "GITS_BASER", "GITS_TRANSLATER", "GICR_CTLR", "GICR_TYPER", "GICR_PROPBASER",
           "GICR_PENDBASER", "MSI_TYPER", "MSI_SETSPI_NS", "MSI_IIDR", "LPI_BASE",
           "DROP_REASONS", "error_name"]

GITS_CTLR, GITS_IIDR, GITS_TYPER = 0x0, 0x4, 0x8
GITS_CBASER, GITS_CWRITER, GITS_CREADR = 0x80, 0x88, 0x90
GITS_TRANSLATER = 0x10040
GICR_CTLR, GICR_TYPER, GICR_PROPBASER, GICR_PENDBASER = 0x0, 0x8, 0x70, 0x78
MSI_TYPER, MSI_SETSPI_NS, MSI_IIDR = 0x008, 0x040, 0xFCC
LPI_BASE = 8192


def GITS_BASER(n): return 0x100 + 8 * n      # noqa: E704


COMMANDS = {"MOVI": 0x01, "INT": 0x03, "CLEAR": 0x04, "SYNC": 0x05, "MAPD": 0x08, "MAPC": 0x09,
            "MAPTI": 0x0A, "MAPI": 0x0B, "INV": 0x0C, "INVALL": 0x0D, "MOVALL": 0x0E,
            "DISCARD": 0x0F}
COMMAND_NAMES = {v: k for k, v in COMMANDS.items()}
# Which fields each command carries (GICv3 architecture, section 6.3; Linux's its_encode_*).
_FIELDS = {"MOVI": ("device_id", "event_id", "icid"), "INT": ("device_id", "event_id"),
           "CLEAR": ("device_id", "event_id"), "SYNC": ("rdbase",),
           "MAPD": ("device_id", "size", "itt", "valid"), "MAPC": ("icid", "rdbase", "valid"),
           "MAPTI": ("device_id", "event_id", "intid", "icid"),
           "MAPI": ("device_id", "event_id", "icid"), "INV": ("device_id", "event_id"),
           "INVALL": ("icid",), "MOVALL": ("rdbase", "rdbase2"),
           "DISCARD": ("device_id", "event_id")}
_LIMITS = {"device_id": 0xFFFFFFFF, "event_id": 0xFFFFFFFF, "intid": 0xFFFFFFFF, "icid": 0xFFFF,
           "size": 0x1F, "rdbase": 0xFFFFFFFFF, "rdbase2": 0xFFFFFFFFF,
           "itt": (1 << 52) - 1, "valid": 1}

Record = namedtuple("Record", "kind code opcode device_id event_id intid cpu where")
RECORD_KINDS = {1: "lpi_pending", 2: "lpi_cleared", 3: "command_error", 4: "stall",
                5: "dropped", 6: "unknown_command"}
DROP_REASONS = {1: "ITS disabled", 2: "DeviceID beyond the device table",
                3: "device not mapped (no MAPD)", 4: "EventID beyond the device's ITT",
                5: "event not mapped (no MAPTI/MAPI)", 6: "collection not mapped (no MAPC)",
                7: "collection's redistributor does not exist", 8: "memory fault reading a table"}
_ERROR_REASONS = {1: "DEVICE_OOR", 2: "SIZE_OOR", 3: "COLLECTION_OOR", 4: "UNMAPPED_DEVICE",
                  5: "ID_OOR", 6: "PHYSICALID_OOR", 7: "UNMAPPED_INTERRUPT",
                  9: "UNMAPPED_COLLECTION"}

def error_name(code):
    """'E_ITS_MAPD_DEVICE_OOR' for 0x010801 (the architecture's command error encoding)."""
    cmd, reason = code >> 8 & 0xFF, code & 0xFF
    name = _ERROR_REASONS.get(reason, f"{reason:#x}")
    if cmd in (COMMANDS["MAPD"],) and reason == 2:
        name = "ITTSIZE_OOR"
    if cmd in (COMMANDS["MAPC"],) and reason == 2:
        name = "PROCNUM_OOR"
    if cmd == COMMANDS["MOVALL"]:
        name = "PROCNUM_OOR"
    return f"E_ITS_{COMMAND_NAMES.get(cmd, hex(cmd))}_{name}"


def _check_size(size):
    if size not in (1, 2, 4, 8):
        raise ValueError(f"access size must be 1, 2, 4 or 8 bytes, not {size!r}")
    return size


def its_command(name, **fields):
    """The 32 bytes of ITS command `name` (e.g. its_command("MAPTI", device_id=8, event_id=0,
    intid=8192, icid=0)). Fields a command does not carry are an error; missing ones are 0."""
    if name not in COMMANDS:
        raise ValueError(f"unknown ITS command {name!r}: one of {', '.join(COMMANDS)}")
    extra = set(fields) - set(_FIELDS[name])
    if extra:
        raise TypeError(f"{name} has no field {', '.join(sorted(extra))} "
                        f"(its fields: {', '.join(_FIELDS[name])})")
    f = {k: _check_int(fields.get(k, 0), f"{name} {k}", _LIMITS[k]) for k in _FIELDS[name]}
    if name == "MAPD" and f["itt"] & 0xFF:
        raise ValueError(f"MAPD itt {f['itt']:#x} must be 256-byte aligned")
    dw = [COMMANDS[name], 0, 0, 0]
    if "device_id" in f:
        dw[0] |= f["device_id"] << 32
    if "event_id" in f:
        dw[1] |= f["event_id"]
    if "intid" in f:
        dw[1] |= f["intid"] << 32
    if "size" in f:
        dw[1] |= f["size"]
    if "itt" in f:
        dw[2] |= f["itt"]
    if "icid" in f:
        dw[2] |= f["icid"]
    if "rdbase" in f:
        dw[2] |= (f["rdbase"] & 0xFFFFFFFFF) << 16
    if "rdbase2" in f:
        dw[3] |= (f["rdbase2"] & 0xFFFFFFFFF) << 16
    if f.get("valid"):
        dw[2] |= 1 << 63
    return b"".join(w.to_bytes(8, "little") for w in dw)


def decode_command(data):
    """(name, {field: value}) of a 32-byte ITS command, as a widget shows the queue."""
    data = bytes(data)
    if len(data) != 32:
        raise ValueError(f"an ITS command is 32 bytes, not {len(data)}")
    dw = [int.from_bytes(data[i:i + 8], "little") for i in range(0, 32, 8)]
    op = dw[0] & 0xFF
    name = COMMAND_NAMES.get(op)
    if name is None:
        return f"unknown 0x{op:02x}", {}
    values = {"device_id": dw[0] >> 32, "event_id": dw[1] & U32, "intid": dw[1] >> 32,
              "size": dw[1] & 0x1F, "itt": dw[2] & ((1 << 52) - 1) & ~0xFF, "icid": dw[2] & 0xFFFF,
              "rdbase": dw[2] >> 16 & 0xFFFFFFFFF, "rdbase2": dw[3] >> 16 & 0xFFFFFFFFF,
              "valid": dw[2] >> 63}
    return name, {k: values[k] for k in _FIELDS[name]}


class ITS(FlatBusModel):
    """A GICv3 ITS with num_cpus redistributors; its tables and command queue are in the memory
    it masters (a flat memory of memory_size bytes at bus address 0, or another `bus`)."""

    def __init__(self, num_cpus=1, memory_size=1 << 30, bus=None):
        num_cpus = _check_int(num_cpus, "num_cpus")
        self._attach_bus(bus, memory_size)
        ffi, lib = self._ffi, self._lib
        its = lib.vfl_its_new(self._bus[0], num_cpus)
        if its == ffi.NULL:
            raise ValueError(f"num_cpus must be 1..{lib.VFL_ITS_MAX_CPUS}, not {num_cpus}")
        self._its = ffi.gc(its, lib.vfl_its_free)
        self.num_cpus = num_cpus

    # ---- ITS frame ----
    def read(self, offset, size):
        return self._lib.vfl_its_read(self._its, _check_int(offset, "offset", U64), _check_size(size))

    def write(self, offset, value, size):
        self._lib.vfl_its_write(self._its, _check_int(offset, "offset", U64),
                                _check_int(value, "value", U64), _check_size(size))

    def readl(self, offset): return self.read(offset, 4)                    # noqa: E704
    def readq(self, offset): return self.read(offset, 8)                    # noqa: E704
    def writel(self, offset, value): self.write(offset, _check_int(value, "value"), 4)  # noqa: E704
    def writeq(self, offset, value): self.write(offset, value, 8)           # noqa: E704

    def deliver(self, event_id, device_id):
        """A bus write of event_id to GITS_TRANSLATER from the master whose DeviceID is
        device_id. Returns the LPI it made pending, or None when the ITS dropped it."""
        intid = self._lib.vfl_its_translate(self._its, _check_int(device_id, "device_id"),
                                            _check_int(event_id, "event_id"))
        return intid or None

    # ---- redistributors ----
    def _cpu(self, cpu):
        cpu = _check_int(cpu, "cpu")
        if cpu >= self.num_cpus:
            raise ValueError(f"cpu {cpu}: this GIC has redistributors 0..{self.num_cpus - 1}")
        return cpu

    def gicr_read(self, cpu, offset, size):
        return self._lib.vfl_gicr_read(self._its, self._cpu(cpu), _check_int(offset, "offset", U64),
                                       _check_size(size))

    def gicr_write(self, cpu, offset, value, size):
        self._lib.vfl_gicr_write(self._its, self._cpu(cpu), _check_int(offset, "offset", U64),
                                 _check_int(value, "value", U64), _check_size(size))

    def gicr_readl(self, cpu, offset): return self.gicr_read(cpu, offset, 4)          # noqa: E704
    def gicr_readq(self, cpu, offset): return self.gicr_read(cpu, offset, 8)          # noqa: E704
    def gicr_writel(self, cpu, offset, value): self.gicr_write(cpu, offset, value, 4)  # noqa: E704
    def gicr_writeq(self, cpu, offset, value): self.gicr_write(cpu, offset, value, 8)  # noqa: E704

    def lpi_pending(self, cpu, intid):
        """Whether LPI intid is pending on cpu (its bit in that redistributor's pending table);
        None when the redistributor has no usable LPI tables or intid is out of their range."""
        v = self._lib.vfl_gicr_lpi_pending(self._its, self._cpu(cpu), _check_int(intid, "intid"))
        return None if v < 0 else bool(v)

    def set_lpi_pending(self, cpu, intid, pending):
        """Set or clear LPI intid's pending bit (what the CPU interface does when it takes it)."""
        return self._lib.vfl_gicr_set_lpi(self._its, self._cpu(cpu), _check_int(intid, "intid"),
                                          1 if pending else 0) >= 0

    # ---- what happened ----
    def take_records(self):
        """Everything the ITS did that software cannot see in a register, oldest first, since the
        last call: LPIs made pending or cleared, command errors, stalls, dropped translations."""
        out = []
        buf = self._ffi.new("struct vfl_its_record[256]")
        while True:
            n = self._lib.vfl_its_take_records(self._its, buf, 256)
            for r in buf[0:n]:
                out.append(Record(RECORD_KINDS.get(r.kind, r.kind), r.code, r.opcode, r.device_id,
                                  r.event_id, r.intid, r.cpu, r.where))
            if n < 256:
                return out

    def stats(self):
        s = self._ffi.new("struct vfl_its_stats *")
        self._lib.vfl_its_stats(self._its, s)
        return {k: getattr(s, k) for k in ("commands", "command_errors", "stalls", "translations",
                                           "dropped", "records_lost")}

    # ---- memory it masters: on_bus(), mem_write(), mem_read() (FlatBusModel) ----


class GICv2m:
    """A GICv2m MSI frame: SPIs first_spi .. first_spi + num_spis - 1."""

    def __init__(self, first_spi=80, num_spis=64):
        from .._hw import ffi, lib
        self._ffi, self._lib = ffi, lib
        first_spi, num_spis = _check_int(first_spi, "first_spi"), _check_int(num_spis, "num_spis")
        v2m = lib.vfl_v2m_new(first_spi, num_spis)
        if v2m == ffi.NULL:
            raise ValueError(f"GICv2m SPIs {first_spi}..{first_spi + num_spis - 1} out of range: "
                             "the first must be 32..1019 and the last at most 1019")
        self._v2m = ffi.gc(v2m, lib.vfl_v2m_free)
        self.first_spi, self.num_spis = first_spi, num_spis
        self.lost = 0

    def read(self, offset, size):
        return self._lib.vfl_v2m_read(self._v2m, _check_int(offset, "offset", U64), _check_size(size))

    def write(self, offset, value, size):
        self._lib.vfl_v2m_write(self._v2m, _check_int(offset, "offset", U64),
                                _check_int(value, "value", U64), _check_size(size))

    def readl(self, offset): return self.read(offset, 4)                    # noqa: E704
    def writel(self, offset, value): self.write(offset, _check_int(value, "value"), 4)  # noqa: E704

    def deliver(self, value, device_id=None, size=4):
        """A bus write of value to MSI_SETSPI_NS. device_id is accepted and ignored: the frame
        never learns who wrote, which is the point."""
        self.write(MSI_SETSPI_NS, value, size)

    def take_raised(self):
        """SPIs (INTIDs) raised since the last call, oldest first."""
        out = []
        buf = self._ffi.new("uint32_t[1024]")
        lost = self._ffi.new("uint64_t *")
        while True:
            n = self._lib.vfl_v2m_take_raised(self._v2m, buf, 1024, lost)
            out.extend(buf[0:n])
            if n < 1024:
                self.lost = lost[0]
                return out

    @property
    def ignored(self):
        """SETSPI writes whose INTID was outside the frame (ignored)."""
        return self._lib.vfl_v2m_ignored(self._v2m)
