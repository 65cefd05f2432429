"""GICv2m frame view: the frame's registers, its SPIs and who owns each, and the last writes to it.

What to look at: MSI_TYPER says which SPIs the frame raises (first SPI, count); a write of an
INTID to MSI_SETSPI_NS raises that SPI, whoever wrote it. The strip has one square per SPI of the
frame, coloured by who owns it: a device's MSI (its MSI capability holds the doorbell address and
that SPI as data) or a wired line in the same range (the SMMU's, on QEMU's virt). The last writes
show value -> SPI: the frame raised another device's SPI for the writer without knowing who wrote
(the writer column is what the SMMU knew, from the StreamID; the frame saw only the value).

A thin view: MSI_TYPER and MSI_IIDR are the frame's registers, owners come from /proc/interrupts
(wired lines: hwirq = INTID) and each PCI function's MSI capability in sysfs config (MSI vectors),
as on any Linux; the last writes come from the sim board's irqchip (no register keeps them).
"""
import html
import struct

from ..hw.gic import MSI_IIDR, MSI_SETSPI_NS, MSI_TYPER
from .interrupts import owner_of, parse_proc_interrupts
from .live import LiveView, refresh_button
from .memory import BOX, GREY, MONO, RED, table

PALETTE = ("#0969da", "#8250df", "#bf3989", "#1a7f37", "#9a6700", "#cf222e", "#0a3069", "#6e7781")
PCI_CAP_MSI = 0x05


def msi_capability(board, name):
    """(enabled, address, data, vectors) of PCI function `name`'s MSI capability, read from its
    config space in sysfs (the address and data the kernel programmed), or None without one."""
    fd = board.open(f"/sys/bus/pci/devices/{name}/config", 0)
    try:
        config = board.read(fd, 256, 0)
    finally:
        board.close(fd)
    if len(config) < 64 or not struct.unpack_from("<H", config, 6)[0] & 0x10:   # no capability list
        return None
    at, seen = config[0x34] & 0xFC, set()
    while at and at not in seen and at + 16 <= len(config):
        seen.add(at)
        if config[at] == PCI_CAP_MSI:
            control = struct.unpack_from("<H", config, at + 2)[0]
            lo = struct.unpack_from("<I", config, at + 4)[0]
            if control & 0x80:                                   # 64-bit address
                hi, data = struct.unpack_from("<IH", config, at + 8)
            else:
                hi, data = 0, struct.unpack_from("<H", config, at + 8)[0]
            return bool(control & 1), hi << 32 | lo, data, 1 << (control >> 4 & 7)
        at = config[at + 1] & 0xFC
    return None


def frame_of(board):
    """The board's GICv2m irqchip (registers: .v2m; .phys_base, .writes), or None."""
    chip = getattr(getattr(board, "interrupts", None), "msi_chip", None)
    return chip if getattr(chip, "v2m", None) is not None else None


def spi_owners(board, first, count):
    """{SPI: (owner, handler, how)} for the frame's SPIs: wired lines from /proc/interrupts, MSI
    vectors from the PCI functions whose enabled MSI capability carries that SPI as data."""
    owners = {}
    rows = parse_proc_interrupts(board.sysfs_read("/proc/interrupts"))
    for r in rows:
        if r["chip"].startswith("GIC") and r["hwirq"] is not None and first <= r["hwirq"] < first + count:
            owners[r["hwirq"]] = (owner_of(r["handler"]), r["handler"], "wired line")
    handlers = {r["handler"]: r for r in rows}
    for name in board.listdir("/sys/bus/pci/devices"):
        cap = msi_capability(board, name)
        if cap is None or not cap[0]:
            continue
        _, _, data, vectors = cap
        for i in range(vectors):
            if first <= data + i < first + count:
                handler = next((h for h in handlers if h.endswith(f"({name})") and f"[{i}]" in h), "")
                owners[data + i] = (name, handler, f"MSI vector {i}")
    return owners


class V2mView(LiveView):
    """The GICv2m frame of `board`: MSI_TYPER, the doorbell, the SPI strip, the last writes."""

    def __init__(self, board, title="GICv2m frame", max_writes=8, live=True):
        import ipywidgets as w
        self.board, self.title, self.max_writes = board, title, max_writes
        self.html = w.HTML()
        self.refresh_button = refresh_button(self, "read the frame, the owners of its SPIs and its last writes again")
        self.widget = w.VBox([w.HBox([self.refresh_button]), self.html])
        self.widget.add_class("vfiolab-v2m")     # a stable selector for the browser tests
        self.refresh()
        if live:
            self.watch()

    def same_view(self, other):
        return self.title == other.title

    # --- what it reads ------------------------------------------------------------------------
    def state(self):
        """{typer, first, count, iidr, base, owners, writes} now; None without a frame."""
        chip = frame_of(self.board)
        if chip is None:
            return None
        typer = chip.v2m.readl(MSI_TYPER)
        first, count = typer >> 16 & 0x3FF, typer & 0x3FF
        return {"typer": typer, "first": first, "count": count, "iidr": chip.v2m.readl(MSI_IIDR),
                "base": chip.phys_base, "owners": spi_owners(self.board, first, count),
                "writes": list(chip.writes)}

    # --- drawing ------------------------------------------------------------------------------
    def _strip(self, s):
        colours, legend = {}, []
        for owner, _, _ in s["owners"].values():
            if owner not in colours:
                colours[owner] = PALETTE[len(colours) % len(PALETTE)]
                legend.append(owner)
        last = s["writes"][-1][2] if s["writes"] else None
        cells = []
        for spi in range(s["first"], s["first"] + s["count"]):
            owner = s["owners"].get(spi)
            colour = colours[owner[0]] if owner else GREY
            tip = f"SPI {spi}: " + (f"{owner[0]} ({owner[2]}{', ' + owner[1] if owner[1] else ''})"
                                    if owner else "free")
            ring = f"outline:2px solid {RED};outline-offset:1px;" if spi == last else ""
            cells.append(f"<span title='{html.escape(tip)}' style='display:inline-block;width:25px;"
                         f"height:16px;line-height:16px;margin:0 2px 3px 0;text-align:center;font-size:10px;"
                         f"background:{colour};color:{'#24292f' if owner is None else '#fff'};{ring}'>{spi}</span>")
        keys = "".join(f"<span style='margin-right:12px'><span style='display:inline-block;width:10px;"
                       f"height:10px;background:{colours[o]}'></span> {html.escape(o)}</span>" for o in legend)
        keys += (f"<span style='margin-right:12px'><span style='display:inline-block;width:10px;height:10px;"
                 f"background:{GREY}'></span> free</span>")
        if last is not None:
            keys += (f"<span><span style='display:inline-block;width:10px;height:10px;outline:2px solid "
                     f"{RED}'></span> raised by the last write</span>")
        return (f"<div style='{MONO};max-width:940px;margin-top:4px'>{''.join(cells)}</div>"
                f"<div style='font-size:12px'>{keys}</div>")

    def _writes(self, s):
        if not s["writes"]:
            return "<div><i>No write has reached MSI_SETSPI_NS yet.</i></div>"
        rows = []
        for master, value, spi in s["writes"][-self.max_writes:]:
            if spi is None:
                result = (f"<span style='color:{GREY}'>ignored: INTID {value & 0x3FF} is outside SPIs "
                          f"{s['first']}..{s['first'] + s['count'] - 1}</span>")
            else:
                owner = s["owners"].get(spi)
                whose = html.escape(owner[0]) if owner else "nobody (free)"
                foreign = owner is not None and master is not None and owner[0] != master
                result = (f"SPI {spi}: {whose}'s" + (f" <b style='color:{RED}'>(not the writer's)</b>"
                                                     if foreign else ""))
            writer = (html.escape(master) + " <span style='color:#57606a'>(per the SMMU; the frame "
                      "cannot tell)</span>" if master else "any device (the frame cannot tell)")
            rows.append((f"{value} (0x{value:x})", result, writer))
        more = len(s["writes"]) - len(rows)
        return (table(["value written", "raises", "written by"], rows, escape=False)
                + (f"<div>... and {more} earlier</div>" if more else ""))

    def html_text(self):
        s = self.state()
        if s is None:
            why = ("this board's MSI controller is not a GICv2m frame (an ITS board?)"
                   if hasattr(self.board, "interrupts") else "this board's kernel does not let user "
                   "space read the frame's registers (the sim's board with gic=\"v2m\" does)")
            return f"<div style='{BOX}'><b>{html.escape(self.title)}</b><div>No GICv2m frame to show: {why}.</div></div>"
        regs = [("MSI_TYPER", f"0x{s['typer']:08x}", f"first SPI {s['first']} ([25:16]), {s['count']} SPIs "
                 f"([9:0]): SPIs {s['first']}..{s['first'] + s['count'] - 1}"),
                ("MSI_SETSPI_NS", f"0x{s['base'] + MSI_SETSPI_NS:x}", "the doorbell: write an INTID here "
                 "to raise that SPI (no DeviceID: the data alone chooses)"),
                ("MSI_IIDR", f"0x{s['iidr']:08x}", f"product ID 0x{s['iidr'] >> 20:x}")]
        return (f"<div style='{BOX}'><b>{html.escape(self.title)}</b> at 0x{s['base']:x}"
                + table(["register", "value / address", "meaning"], regs)
                + "<div style='margin-top:4px'><b>SPIs of the frame</b> (hover for the owner)</div>"
                + self._strip(s) + "<div style='margin-top:4px'><b>Last writes to MSI_SETSPI_NS</b></div>"
                + self._writes(s) + "</div>")

    def refresh(self, force=True):
        self.html.value = self.html_text()

    def text(self):
        """MSI_TYPER, the owners of the frame's SPIs and the last writes (for logs and tests)."""
        s = self.state()
        if s is None:
            return "no GICv2m frame"
        lines = [f"MSI_TYPER 0x{s['typer']:08x}: SPIs {s['first']}..{s['first'] + s['count'] - 1}"]
        lines += [f"SPI {spi}: {o[0]} ({o[2]})" for spi, o in sorted(s["owners"].items())]
        lines += [f"write {value} by {master or 'any device'} -> "
                  + (f"SPI {spi}" if spi is not None else "ignored") for master, value, spi in s["writes"]]
        return "\n".join(lines)
