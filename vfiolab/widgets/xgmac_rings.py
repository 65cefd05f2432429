"""xgmac view: the Calxeda xgmac's registers, its TX and RX rings, and the frames on its wire.

What to look at: each descriptor's OWN bit says who holds it: "device" (the DMA may use it, and will
write it back) or "cpu" (the driver's again). DMA_STATUS names the interrupt causes and the state of
each DMA process; the main IRQ line is high while DMA_STATUS & DMA_INTR_ENA is not zero, and VFIO
keeps it masked from the moment it fires until someone unmasks it.

A thin view: registers come from the sim board's xgmac model (reading them has no side effect, as
reading DMA_STATUS on hardware has none), descriptors from the driver's own buffer (the memory the
rings live in, as the CPU sees it: reading them through the device's IOMMU could fault), frames
from board.xgmac_wire(name).
"""
import html

from ..hw import xgmac as X
from .live import LiveView, refresh_button
from .memory import BOX, GREEN, GREY, MONO, RED, table

REGISTERS = [("CONTROL", X.CONTROL), ("DMA_CONTROL", X.DMA_CONTROL), ("DMA_INTR_ENA", X.DMA_INTR_ENA),
             ("DMA_STATUS", X.DMA_STATUS), ("DMA_TX_BASE_ADDR", X.DMA_TX_BASE_ADDR),
             ("DMA_RX_BASE_ADDR", X.DMA_RX_BASE_ADDR), ("DMA_CUR_TX_DESC", X.DMA_CUR_TX_DESC),
             ("DMA_CUR_RX_DESC", X.DMA_CUR_RX_DESC)]
CONTROL_BITS = [(X.CONTROL_TE, "TE"), (X.CONTROL_RE, "RE"), (X.CONTROL_LM, "LM")]
DMA_CONTROL_BITS = [(X.DMA_CONTROL_ST, "ST"), (X.DMA_CONTROL_SR, "SR"), (X.DMA_CONTROL_OSF, "OSF")]


def register_values(board, device):
    """{name: value} of the registers the view shows, read from the sim board's model."""
    engine = board.model(device).engine
    return {name: engine.readl(offset) for name, offset in REGISTERS}


def _named(value, bits):
    names = [name for bit, name in bits if value & bit]
    return ", ".join(names) or "none"


def describe_registers(values):
    """[(register, value, meaning)] rows."""
    rows = []
    for name, value in values.items():
        if name == "CONTROL":
            meaning = _named(value, CONTROL_BITS)
        elif name == "DMA_CONTROL":
            meaning = _named(value, DMA_CONTROL_BITS)
        elif name in ("DMA_STATUS", "DMA_INTR_ENA"):
            status = X.decode_status(value)
            meaning = " ".join(status["bits"]) or "none"
            if name == "DMA_STATUS":
                meaning += f"; TX {status['tx']}, RX {status['rx']}"
                if "bus_error" in status:
                    meaning += f"; fatal bus error: {status['bus_error']}"
        else:
            meaning = ""
        rows.append((name, f"0x{value:08x}", meaning))
    return rows


class XgmacView(LiveView):
    """Registers, rings and wire of xgmac `device` on the sim board.

    memory: the buffer the rings live in (board.alloc memory), seen by the device at `iova`;
    tx_ring, rx_ring: the rings' IOVAs; slots: descriptors per ring. Without memory, only the
    registers and the wire are shown."""

    def __init__(self, board, device="fff50000.ethernet", memory=None, iova=0, tx_ring=None,
                 rx_ring=None, slots=4, title=None, live=True):
        import ipywidgets as w
        self.board, self.device = board, device
        self.memory, self.iova, self.slots = memory, iova, slots
        self.tx_ring, self.rx_ring = tx_ring, rx_ring
        self.title = title or f"xgmac {device}"
        self.html = w.HTML()
        self.refresh_button = refresh_button(self, "read the registers, the rings and the wire again")
        self.widget = w.VBox([w.HBox([self.refresh_button]), self.html])
        self.widget.add_class("vfiolab-xgmac")     # a stable selector for the browser tests
        self.refresh()
        if live:
            self.watch()

    def same_view(self, other):
        return (self.device, self.tx_ring, self.rx_ring, self.title) == \
            (other.device, other.tx_ring, other.rx_ring, other.title)

    # --- what it reads ------------------------------------------------------------------------
    def descriptors(self, ring, rx):
        """[Descriptor] of `ring` as they are in memory now."""
        view = memoryview(self.memory).cast("B")
        out = []
        for slot in range(self.slots):
            at = ring - self.iova + slot * X.DESC_SIZE
            out.append(X.Descriptor(bytes(view[at:at + X.DESC_SIZE]), rx=rx))
        return out

    def irq_state(self):
        line = self.board.model(self.device).engine.irq_line
        try:
            masked = self.board.vfio_irq_masked(self.device, 0)
        except LookupError:
            masked = None            # not open through vfio-platform
        return line, masked

    # --- drawing ------------------------------------------------------------------------------
    def _ring_rows(self, ring, rx):
        rows = []
        for slot, d in enumerate(self.descriptors(ring, rx)):
            owner = (f"<b style='color:{GREEN}'>device</b>" if d.own
                     else f"<span style='color:{GREY}'>cpu</span>")
            if rx:
                detail = (f"frame {d.frame_length} bytes" if not d.own and d.frame_length
                          else f"buffer {d.sizes & X.BUFFER_MAX} bytes")
                end = bool(d.sizes & X.RX1_END_RING)
            else:
                detail = f"{d.sizes & X.BUFFER_MAX} bytes" + \
                    ("" if d.flags & (X.TX_FIRST | X.TX_LAST) != (X.TX_FIRST | X.TX_LAST) else ", whole frame")
                end = bool(d.flags & X.TX_END_RING)
            rows.append((str(slot), f"0x{ring + slot * X.DESC_SIZE:x}", owner, f"0x{d.flags:08x}",
                         html.escape(detail), f"0x{d.buf1:x}", "end of ring" if end else ""))
        return table(["slot", "IOVA", "OWN", "word 0", "", "buffer 1", ""], rows, escape=False)

    def _wire(self):
        frames = self.board.xgmac_wire(self.device).frames_sent()
        if not frames:
            return "<div><i>Nothing sent on the wire yet.</i></div>"
        rows = [(str(i), str(len(f)), f[:24].hex(" ") + (" ..." if len(f) > 24 else ""))
                for i, f in list(enumerate(frames))[-4:]]
        return f"<div>{len(frames)} frame(s) on the wire; the last ones:</div>" + \
            table(["#", "bytes", "first bytes"], rows)

    def html_text(self):
        values = register_values(self.board, self.device)
        line, masked = self.irq_state()
        mask = {None: "not open through VFIO", True: f"<b style='color:{RED}'>masked</b>",
                False: "unmasked"}[masked]
        parts = [f"<div style='{BOX}'><b>{html.escape(self.title)}</b>",
                 f"<div style='{MONO}'>main IRQ line: "
                 f"{'<b style=color:' + RED + '>high</b>' if line else 'low'} &middot; VFIO: {mask}</div>",
                 table(["register", "value", "meaning"], describe_registers(values))]
        if self.memory is not None:
            for name, ring, rx in (("TX ring", self.tx_ring, False), ("RX ring", self.rx_ring, True)):
                if ring is not None:
                    parts.append(f"<div style='margin-top:4px'><b>{name}</b></div>" + self._ring_rows(ring, rx))
        parts.append("<div style='margin-top:4px'><b>Wire</b></div>" + self._wire() + "</div>")
        return "".join(parts)

    def refresh(self, force=True):
        self.html.value = self.html_text()

    def text(self):
        """Registers, OWN bits and the wire as plain text (for logs and tests)."""
        values = register_values(self.board, self.device)
        lines = [f"{name} 0x{value:08x}" for name, value in values.items()]
        if self.memory is not None:
            for name, ring, rx in (("tx", self.tx_ring, False), ("rx", self.rx_ring, True)):
                if ring is not None:
                    owns = "".join("D" if d.own else "c" for d in self.descriptors(ring, rx))
                    lines.append(f"{name} OWN {owns}")
        lines.append(f"wire {len(self.board.xgmac_wire(self.device).frames_sent())} frames")
        return "\n".join(lines)

