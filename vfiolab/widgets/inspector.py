"""Device inspector: pick a device, see where it came from and who holds it.

What to look at: the device tree node it was made from and its `compatible`; its resources (`reg`
becomes VFIO's regions, `interrupts` its IRQs; a PCI function has BARs instead); the driver bound
now and driver_override; its IOMMU group, the other devices in that group, whether the group is
viable, and its reserved IOVA regions; the SMMU that translates for it and the stream ID it uses.

Like the bus graph it re-reads the board after each cell you run. All it shows comes from
vfiolab.platform.describe().
"""
import html

from .. import platform as plat
from .live import LiveView
from .memory import BOX, MONO

VIABLE, NOT_VIABLE, MUTED = "#1a7f37", "#cf222e", "#6e7781"


def to_html(info):
    """An HTML table of vfiolab.platform.describe()'s answer."""
    e = html.escape
    rows = [("device", f"<b>{e(info['device'])}</b> on the {e(info['bus'])} bus"),
            ("sysfs", e(info["path"]))]
    if info["of_node"]:
        rows.append(("DT node", e(info["of_node"])))
        rows.append(("compatible", e(", ".join(f'"{c}"' for c in info["compatible"])) or "none"))
        rows.append(("reg<br>(VFIO regions)", "<br>".join(f"{i}: 0x{a:x} (+0x{s:x})"
                                                          for i, (a, s) in enumerate(info["reg"])) or "none"))
        irqs = [plat.describe_interrupt(c) for c in info["interrupts"]]
        rows.append(("interrupts<br>(VFIO IRQs)",
                     "<br>".join(f"{i}: {e(t)}" for i, t in enumerate(irqs)) or "none"))
    else:
        rows.append(("DT node", f"<span style='color:{MUTED}'>none: found by enumeration, not "
                                "described by the firmware</span>"))
    if "pci_id" in info:
        rows.append(("vendor:device", e(info["pci_id"])))
        bars = [f"BAR{i}: 0x{a:x} (+0x{s:x})" for i, (a, s) in enumerate(info["bars"]) if s]
        rows.append(("BARs", "<br>".join(bars) or "none"))
    if "periphid" in info:
        rows.append(("peripheral ID", e(info["periphid"]) + f" <span style='color:{MUTED}'>(sysfs id: "
                     "from the ID registers, or the DT's arm,primecell-periphid; amba drivers match "
                     "it, masked)</span>"))
    driver = info["driver"]
    if driver is None:
        driver_text = f"<span style='color:{MUTED}'>none</span>"
    else:
        kind = "VFIO" if plat.is_vfio_driver(driver) else "host"
        driver_text = f"<b>{e(driver)}</b> ({kind} driver)"
    rows.append(("driver", driver_text))
    rows.append(("driver_override", e(info["driver_override"])))
    if info["group"] is None:
        rows.append(("IOMMU group", f"<span style='color:{MUTED}'>none: no IOMMU translates for "
                                    "this device, so VFIO cannot take it</span>"))
    else:
        colour = VIABLE if info["group_viable"] else NOT_VIABLE
        state = "viable" if info["group_viable"] else "not viable"
        rows.append(("IOMMU group", f"<b>{info['group']}</b>: {e(', '.join(info['group_devices']))} "
                                    f"<span style='color:{colour}'>({state})</span>"))
        rows.append(("reserved IOVA", "<br>".join(f"0x{a:x}-0x{b:x} {e(k)}"
                                                  for a, b, k in info["reserved_regions"]) or "none"))
    if info["smmu"]:
        smmu, stream = info["smmu"]
        rows.append(("SMMU", e(smmu) + (f", stream ID 0x{stream:x}" if stream is not None else "")))
    cell = "padding:2px 10px;border-bottom:1px solid #eee;vertical-align:top;text-align:left;line-height:1.35"
    body = "".join(f"<tr><th style='{cell};color:{MUTED};font-weight:normal'>{k}</th>"
                   f"<td style='{cell}'>{v}</td></tr>" for k, v in rows)
    return f"<table style='border-collapse:collapse;{MONO}'>{body}</table>"


class Inspector(LiveView):
    """Pick a device of `board` from the list; its description follows."""

    def __init__(self, board, device=None, buses=plat.BUSES, auto=True):
        import ipywidgets as w
        self.board = board
        options = [(f"{bus}  {dev}", dev) for bus in buses for dev in plat.devices(board, bus)]
        if not options:
            raise LookupError(f"this board has no device on the {', '.join(buses)} bus(es) to inspect")
        if device is not None and device not in {dev for _, dev in options}:
            raise LookupError(f"no device {device!r} on the {', '.join(buses)} bus(es); this board has "
                              + ", ".join(dev for _, dev in options))
        self.picker = w.Dropdown(options=options, value=device or options[0][1], description="device",
                                 tooltip="pick a device: the table below shows it as the board is now",
                                 layout=w.Layout(width="360px"))
        self.html = w.HTML()
        self.widget = w.VBox([self.picker, self.html], layout=w.Layout(border="1px solid #ccc",
                                                                      padding="4px"))
        self.widget.add_class("vfiolab-inspector")   # a stable selector for the browser tests
        self.picker.observe(lambda change: self.refresh(), names="value")
        self._shown = None
        self._first_device = self.picker.value
        self.refresh()
        if auto:
            self.watch()

    def same_view(self, other):
        return self._first_device == other._first_device

    @property
    def device(self):
        return self.picker.value

    def _key(self):
        """What can change under the device: its driver, its override, its group's drivers."""
        dev = self.picker.value
        group = plat.iommu_group(self.board, dev)
        members = plat.group_devices(self.board, group) if group is not None else [dev]
        return dev, group, plat.driver_override(self.board, dev), [plat.driver_of(self.board, d) for d in members]

    def refresh(self, force=True):
        key = self._key()
        if key == self._shown and not force:
            return
        self._shown = key
        note = (f"<div style='color:{MUTED};font-size:11px;margin-bottom:4px'>live: the {self.board.kind} "
                "board as it is now, read again after every cell you run</div>")
        self.html.value = f"<div style='{BOX}'>{note}{to_html(plat.describe(self.board, self.picker.value))}</div>"
