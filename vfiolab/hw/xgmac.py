"""The Calxeda xgmac, headless: registers at xgmac.c's offsets, its own memory, a wire, a step API.

    from vfiolab.hw.xgmac import Xgmac, tx_descriptor
    mac = Xgmac()                                    # flat bus memory at address 0 (16 MiB, lazy)
    mac.mem_write(0x2000, frame)
    mac.mem_write(0x1000, tx_descriptor(0x2000, len(frame), first=True, last=True, end_ring=True))
    mac.writel(DMA_TX_BASE_ADDR, 0x1000)
    mac.writel(CONTROL, CONTROL_TE); mac.writel(DMA_CONTROL, DMA_CONTROL_ST)
    mac.run()                                        # until both DMAs are idle
    mac.frames_sent()                                # [bytes, ...] taken off the wire

The engine is C (vfiolab/csrc/xgmac.c). Xgmac.on_bus() puts it behind another bus (the sim board's
SMMU); `run(max_steps=N)` handles N descriptors, for widgets that animate the rings.
"""
import struct

from ._flatbus import U64, FlatBusModel, check_int as _check_int

__all__ = ["Xgmac", "tx_descriptor", "rx_descriptor", "decode_status", "Descriptor"]

# MAC and DMA registers (drivers/net/ethernet/calxeda/xgmac.c)
CONTROL, FRAME_FILTER, FLOW_CTRL, VERSION = 0x000, 0x004, 0x018, 0x020
ADDR_HIGH0, ADDR_LOW0 = 0x040, 0x044
DMA_BUS_MODE, DMA_TX_POLL, DMA_RX_POLL = 0xF00, 0xF04, 0xF08
DMA_RX_BASE_ADDR, DMA_TX_BASE_ADDR, DMA_STATUS = 0xF0C, 0xF10, 0xF14
DMA_CONTROL, DMA_INTR_ENA, DMA_MISS_FRAME_CTR = 0xF18, 0xF1C, 0xF20
DMA_CUR_TX_DESC, DMA_CUR_RX_DESC, DMA_CUR_TX_BUF, DMA_CUR_RX_BUF = 0xF48, 0xF4C, 0xF50, 0xF54
DMA_HW_FEATURE = 0xF58

CONTROL_TE, CONTROL_RE, CONTROL_LM, CONTROL_DP = 0x8, 0x4, 0x1000, 0x01000000
BUS_MODE_SFT_RESET = 0x1
DMA_CONTROL_SR, DMA_CONTROL_OSF, DMA_CONTROL_ST = 0x2, 0x4, 0x2000

STATUS_BITS = {0: "TI", 1: "TPS", 2: "TU", 3: "TJT", 4: "OVF", 5: "UNF", 6: "RI", 7: "RU",
               8: "RPS", 9: "RWT", 10: "ETI", 13: "FBI", 14: "ERI", 15: "AIS", 16: "NIS"}
STATUS = {name: 1 << bit for bit, name in STATUS_BITS.items()}
TX_STATES = {0: "stopped", 1: "running", 6: "suspended"}
RX_STATES = {0: "stopped", 1: "running", 3: "waiting for a frame", 4: "suspended"}

DESC_OWN = 1 << 31
TX_INTERRUPT, TX_LAST, TX_FIRST, TX_DISABLE_PAD = 1 << 30, 1 << 29, 1 << 28, 1 << 26
TX_END_RING, TX_CHAINED, TX_ERROR_SUMMARY, TX_JABBER_TIMEOUT = 1 << 21, 1 << 20, 1 << 15, 1 << 1
RX_FIRST, RX_LAST, RX_FRAME_TYPE = 1 << 9, 1 << 8, 1 << 5
RX1_DISABLE_IRQ, RX1_END_RING, RX1_CHAINED = 1 << 31, 1 << 15, 1 << 14
DESC_SIZE = 32
BUFFER_MAX = 0x1FFF

DEFAULT_STEP_LIMIT = 1 << 20


def _sizes(len1, len2):
    for what, n in (("buffer 1 length", len1), ("buffer 2 length", len2)):
        _check_int(n, what, BUFFER_MAX)
    return len1 | len2 << 16


def tx_descriptor(buf1, len1, buf2=0, len2=0, first=True, last=True, interrupt=True,
                  end_ring=False, chained=False, disable_pad=False, own=True):
    """32 bytes of a TX descriptor as Linux's xgmac driver builds it (word0 flags, word1 sizes,
    words 2 and 3 the buffer addresses, the rest zero)."""
    flags = ((DESC_OWN if own else 0) | (TX_INTERRUPT if interrupt else 0) |
             (TX_LAST if last else 0) | (TX_FIRST if first else 0) |
             (TX_DISABLE_PAD if disable_pad else 0) | (TX_END_RING if end_ring else 0) |
             (TX_CHAINED if chained else 0))
    return struct.pack("<4I16x", flags, _sizes(len1, len2), _check_int(buf1, "buffer 1 address"),
                       _check_int(buf2, "buffer 2 address"))


def rx_descriptor(buf1, len1, buf2=0, len2=0, end_ring=False, chained=False, interrupt=True,
                  own=True):
    """32 bytes of an RX descriptor given to the DMA (OWN set, the buffer sizes in word1)."""
    sizes = (_sizes(len1, len2) | (RX1_END_RING if end_ring else 0) |
             (RX1_CHAINED if chained else 0) | (0 if interrupt else RX1_DISABLE_IRQ))
    return struct.pack("<4I16x", DESC_OWN if own else 0, sizes,
                       _check_int(buf1, "buffer 1 address"), _check_int(buf2, "buffer 2 address"))


class Descriptor:
    """A descriptor's four words, decoded (TX or RX)."""

    def __init__(self, raw, rx=False):
        self.flags, self.sizes, self.buf1, self.buf2 = struct.unpack_from("<4I", raw)
        self.rx = rx

    @property
    def own(self):
        return bool(self.flags & DESC_OWN)

    @property
    def frame_length(self):
        """RX: bytes of the frame, FCS included (valid on the last descriptor)."""
        return self.flags >> 16 & 0x3FFF

    def __repr__(self):
        return (f"Descriptor({'rx' if self.rx else 'tx'} flags=0x{self.flags:08x} "
                f"sizes=0x{self.sizes:08x} buf1=0x{self.buf1:x} buf2=0x{self.buf2:x})")


def decode_status(value):
    """DMA_STATUS as names: the set bits, the TX and RX process states and the error bits."""
    names = [name for bit, name in STATUS_BITS.items() if value >> bit & 1]
    ts, rs = value >> 20 & 7, value >> 17 & 7
    out = {"bits": names, "tx": TX_STATES.get(ts, f"state {ts}"),
           "rx": RX_STATES.get(rs, f"state {rs}")}
    if value & STATUS["FBI"]:
        eb = value >> 23 & 7
        out["bus_error"] = ("TX" if eb & 1 else "RX") + " DMA " + \
            ("read" if eb & 2 else "write") + " of a " + ("descriptor" if eb & 4 else "buffer")
    return out


class Xgmac(FlatBusModel):
    """One xgmac: its registers, its two DMAs, the memory it masters and its wire."""

    def __init__(self, mac=b"\x52\x54\x00\x12\x34\x56", memory_size=16 << 20, bus=None):
        mac = bytes(mac)
        if len(mac) != 6:
            raise ValueError(f"a MAC address is 6 bytes, not {len(mac)}")
        self.mac = mac
        self._attach_bus(bus, memory_size)
        ffi, lib = self._ffi, self._lib
        dev = lib.vfl_xgmac_new(mac, self._bus[0])
        if dev == ffi.NULL:
            raise MemoryError("cannot allocate an xgmac")
        self._dev = ffi.gc(dev, lib.vfl_xgmac_free)
        self.max_frame = lib.vfl_xgmac_max_frame()
        self._frame_buf = ffi.new("uint8_t[]", self.max_frame)
        self._irq_handle = None

    # ---- memory the DMAs master: on_bus(), mem_write(), mem_read() (FlatBusModel) ----
    def descriptor(self, addr, rx=False):
        return Descriptor(self.mem_read(addr, DESC_SIZE), rx)

    # ---- registers ----
    def readl(self, offset):
        return self._lib.vfl_xgmac_readl(self._dev, self._offset(offset))

    def writel(self, offset, value):
        self._lib.vfl_xgmac_writel(self._dev, self._offset(offset),
                                   _check_int(value, "register value"))

    @staticmethod
    def _offset(offset):
        offset = _check_int(offset, "register offset", 0xFFC)
        if offset & 3:
            raise ValueError(f"register offset {offset:#x} is not 32-bit aligned")
        return offset

    def status(self):
        return decode_status(self.readl(DMA_STATUS))

    def reset(self):
        """Power-on reset (the wire and the counters start again too)."""
        self._lib.vfl_xgmac_reset(self._dev)

    # ---- running ----
    def run(self, max_steps=None):
        """Handle descriptors until both DMAs are idle, or max_steps of them (None: at most
        DEFAULT_STEP_LIMIT). Returns the steps run. A ring the DMA hands back ends by itself; one
        that re-arms itself (a looped-back frame written over the TX ring's OWN bits) would run
        for ever, as on hardware, so run() is always bounded."""
        limit = DEFAULT_STEP_LIMIT if max_steps is None else _check_int(max_steps, "max_steps", U64)
        return self._lib.vfl_xgmac_run(self._dev, limit)

    @property
    def idle(self):
        return bool(self._lib.vfl_xgmac_idle(self._dev))

    # ---- the wire ----
    def receive(self, frame):
        """A frame arrives from the wire (destination, source, type, payload; no FCS).
        True when the MAC took it, False when it dropped it (receiver off, FIFO full, runt)."""
        frame = bytes(frame)
        rc = self._lib.vfl_xgmac_receive(self._dev, frame, len(frame))
        if rc == -2:
            raise ValueError(f"a {len(frame)}-byte frame is longer than the xgmac takes "
                             f"({self.max_frame} bytes)")
        return rc == 0

    def frames_sent(self):
        """Frames the MAC put on the wire since the last call, oldest first (taken off it)."""
        frames = []
        while True:
            n = self._lib.vfl_xgmac_take_sent(self._dev, self._frame_buf, self.max_frame)
            if n < 0:
                return frames
            frames.append(bytes(self._ffi.buffer(self._frame_buf, n)))

    @property
    def rx_fifo_frames(self):
        return self._lib.vfl_xgmac_rx_fifo_frames(self._dev)

    def counters(self):
        c = self._ffi.new("struct vfl_xgmac_counters *")
        self._lib.vfl_xgmac_counters(self._dev, c)
        return {name: getattr(c, name) for name in ("frames_sent", "frames_looped",
                                                     "frames_received", "frames_dropped",
                                                     "wire_overflow", "steps")}

    # ---- interrupt ----
    @property
    def irq_line(self):
        """The main interrupt, level-triggered: (DMA_STATUS & DMA_INTR_ENA) != 0."""
        return bool(self._lib.vfl_xgmac_irq_line(self._dev))

    def on_irq(self, callback):
        """callback(level) whenever the main interrupt line changes; None to stop."""
        if callback is None:
            self._lib.vfl_xgmac_set_irq_callback(self._dev, self._ffi.NULL, self._ffi.NULL)
            self._irq_handle = None
            return

        @self._ffi.callback("void(void *, int)")
        def trampoline(ctx, level):
            callback(bool(level))

        self._irq_handle = trampoline
        self._lib.vfl_xgmac_set_irq_callback(self._dev, trampoline, self._ffi.NULL)
