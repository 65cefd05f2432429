"""Interrupt view: which device raised what, read from the board's /proc/interrupts.

What to look at: one row per interrupt with a handler: its Linux IRQ number, the chip and hardware
IRQ number (an SPI's INTID on the GIC), the handler and the device it belongs to, its count, and
how much the count moved since the previous reading (the first reading: since the board booted).
Rows whose count moved are highlighted: after
a forged MSI on a GICv2m, the SMMU's line moves while the forging device's own does not.

A thin view: it reads /proc/interrupts as any program on the board can (the sim prints it as Linux
6.1 does; the qemu board's is the real kernel's), nothing else. Refresh reads it again and compares
with the reading before; a live view also reads it after every cell, but redraws only when a count
moved, so the picture keeps the last movement until the next one.
"""
import html
import re

from .live import LiveView, refresh_button
from .memory import AMBER, BOX, CELL, GREY, MONO

HIGHLIGHT = "#fff3bf"
# Handlers of the host's own drivers, and whose they are (a VFIO handler names its device itself).
HOST_HANDLERS = (("arm-smmu-v3", "the SMMUv3 (host driver)"), ("arm-smmu", "the SMMU (host driver)"))


def parse_proc_interrupts(text):
    """[{irq, counts, chip, hwirq, type, handler}] of the numbered lines of /proc/interrupts (the
    IPI and Err lines are the CPUs', not a device's). counts: one per CPU column."""
    lines = text.splitlines()
    if not lines:
        return []
    cpus = len(lines[0].split())
    rows = []
    for line in lines[1:]:
        head, sep, rest = line.partition(":")
        if not sep or not head.strip().isdigit():
            continue
        words = rest.split()
        if len(words) < cpus or not all(w.isdigit() for w in words[:cpus]):
            continue
        counts, words = [int(w) for w in words[:cpus]], words[cpus:]
        chip = words[0] if words else ""
        hwirq = int(words[1]) if len(words) > 1 and words[1].isdigit() else None
        kind = words[2] if hwirq is not None and len(words) > 2 else ""
        handler = " ".join(words[3:] if hwirq is not None else words[1:])
        rows.append({"irq": int(head), "counts": counts, "chip": chip, "hwirq": hwirq,
                     "type": kind, "handler": handler})
    return rows


def owner_of(handler):
    """The device a handler serves: VFIO's handlers carry it in parentheses
    ("vfio-msi[0](0000:00:01.0)"); the host's own drivers' are named after the driver."""
    match = re.search(r"\(([^()]+)\)\s*$", handler)
    if match:
        return match.group(1)
    for prefix, owner in HOST_HANDLERS:
        if handler.startswith(prefix):
            return owner
    return handler or "nobody (no handler)"


class InterruptView(LiveView):
    """/proc/interrupts of `board` with each count's change since the previous reading."""

    def __init__(self, board, title="Interrupts (/proc/interrupts)", live=True):
        import ipywidgets as w
        self.board, self.title = board, title
        self.readings = 0
        self.previous, self.rows = {}, []
        self.html = w.HTML()
        self.refresh_button = refresh_button(self, "read /proc/interrupts again: what moved since the last reading")
        self.widget = w.VBox([w.HBox([self.refresh_button]), self.html])
        self.widget.add_class("vfiolab-interrupts")     # a stable selector for the browser tests
        self.refresh()
        if live:
            self.watch()

    def same_view(self, other):
        return self.title == other.title

    # --- what it reads ------------------------------------------------------------------------
    def read(self):
        return parse_proc_interrupts(self.board.sysfs_read("/proc/interrupts"))

    def refresh(self, force=True):
        """Read /proc/interrupts again. force=False (after a cell): redraw only if a count moved."""
        rows = self.read()
        counts = {r["irq"]: sum(r["counts"]) for r in rows}
        if not force and self.readings and counts == {r["irq"]: r["count"] for r in self.rows}:
            return
        first = not self.readings
        for r in rows:
            r["count"] = counts[r["irq"]]
            # The first reading compares with the board's boot (every count starts at 0 when its
            # line is set up); later ones with the reading before. An IRQ number freed and reused
            # by another handler is a new line.
            before = (0, r["handler"]) if first else self.previous.get(r["irq"], (None, None))
            same_line = before[1] == r["handler"]
            r["delta"] = r["count"] - before[0] if same_line else None
            r["new"] = not same_line
            r["owner"] = owner_of(r["handler"])
        self.previous = {r["irq"]: (r["count"], r["handler"]) for r in rows}
        self.rows, self.readings = rows, self.readings + 1
        self.html.value = self.html_text()

    def moved(self):
        """{handler: change} of the lines whose count moved at the last reading."""
        return {r["handler"]: r["delta"] for r in self.rows if r["delta"]}

    # --- drawing ------------------------------------------------------------------------------
    def _cells(self, r):
        if r["delta"]:
            delta = f"<b style='color:{AMBER}'>+{r['delta']}</b>"
        elif r["new"]:
            delta = f"<b style='color:{AMBER}'>new</b>"
        else:
            delta = f"<span style='color:{GREY}'>{'-' if r['delta'] is None else '+0'}</span>"
        hw = "" if r["hwirq"] is None else str(r["hwirq"])
        return [str(r["irq"]), html.escape(r["chip"]), hw, html.escape(r["type"]),
                html.escape(r["handler"]), html.escape(r["owner"]), str(r["count"]), delta]

    def html_text(self):
        head = ["IRQ", "chip", "hwirq", "type", "handler", "device", "count",
                "since boot" if self.readings <= 1 else "since last"]
        if not self.rows:
            body = "<div><i>No interrupt has a handler yet.</i></div>"
        else:
            th = "".join(f"<th style='{CELL};border-bottom:1px solid #999'>{h}</th>" for h in head)
            trs = []
            for r in self.rows:
                moved = r["delta"] or r["new"]
                attrs = f" class='vfiolab-moved' style='background:{HIGHLIGHT}'" if moved else ""
                trs.append(f"<tr{attrs}>" + "".join(f"<td style='{CELL}'>{c}</td>" for c in self._cells(r))
                           + "</tr>")
            body = f"<table style='border-collapse:collapse;{MONO}'><tr>{th}</tr>{''.join(trs)}</table>"
        moved = [f"{html.escape(r['owner'])} +{r['delta']}" for r in self.rows if r["delta"]]
        since = "since the board booted" if self.readings <= 1 else "since the previous reading"
        note = (f"moved {since}: " + ", ".join(moved)) if moved else f"nothing moved {since}"
        if self.readings <= 1:
            note += " (Refresh, or run a cell, to see what moves next)"
        return (f"<div style='{BOX}'><b>{html.escape(self.title)}</b> &middot; reading "
                f"{self.readings} &middot; {note}{body}</div>")

    def text(self):
        """One line per interrupt (for logs and tests): handler count (+change)."""
        return "\n".join(f"{r['irq']} {r['chip']} {r['hwirq']} {r['handler']}: {r['count']}"
                         + (f" (+{r['delta']})" if r["delta"] is not None else "") for r in self.rows)
