"""IRQ timeline: one interrupt's path, device -> VFIO -> KVM -> guest -> EOI -> unmask, row by row.

What to look at: each row is a moment the notebook (or a button) chose, with what every stage
holds then: the device's line (high until its cause is acked), VFIO's mask (set when the line
fires, cleared by an unmask: an ioctl, an unmask eventfd, or KVM's resamplefd), the counts waiting
unread on the trigger and resample eventfds (KVM's irqfd reads the trigger itself, VFIO's virqfd
reads the resamplefd itself: a count left there is one nobody consumed), the SPI in the vGIC
(pending, active) and what the guest reported (its ICC_IAR1_EL1 read, its ICC_EOIR1_EL1 write).

A thin view: the vGIC state comes through KVM's own device attributes (GICD_ISPENDR/ISACTIVER
via KVM_DEV_ARM_VGIC_GRP_DIST_REGS), the eventfd counts from /proc/self/fdinfo (which shows an
eventfd's counter without reading it), the line and VFIO's mask from the sim board.
"""
import html

from .live import LiveView
from .memory import BOX, GREEN, GREY, RED, table

GICD_ISPENDR, GICD_ISACTIVER = 0x200, 0x300


def eventfd_count(fd):
    """The counter of eventfd `fd` of this process, unread (None when fd is not an eventfd)."""
    if fd is None:
        return None
    try:
        with open(f"/proc/self/fdinfo/{fd}") as f:
            for line in f:
                if line.startswith("eventfd-count:"):
                    return int(line.split()[1], 16)
    except OSError:
        return None
    return None


def _bit(vmm, base, intid):
    return bool(vmm.dist_reg(base + 4 * (intid // 32)) >> (intid % 32) & 1)


class IrqTimeline(LiveView):
    """Samples of one level interrupt's state. sample(label, exit=None) adds a row now; `exit` is
    the vfiolab.hw.kvm.Exit a KVM_RUN returned (the guest's report). actions: {button label:
    (function, tooltip)}; each button runs its function and then samples."""

    def __init__(self, board, device, vmm=None, gsi=5, trigger=None, resample=None, actions=None,
                 title="IRQ timeline", report=None):
        import ipywidgets as w
        self.board, self.device, self.vmm, self.gsi = board, device, vmm, gsi
        self.trigger, self.resample, self.title = trigger, resample, title
        self.report = report                    # the guest's REPORT address (IAR at +0, EOI at +4)
        self.rows = []
        self.html = w.HTML()
        buttons = []
        for label, (fn, tip) in (actions or {}).items():
            b = w.Button(description=label, tooltip=tip, layout=w.Layout(width="auto"))
            b.on_click(lambda _, fn=fn, label=label: self._act(fn, label))
            buttons.append(b)
        clear = w.Button(description="Clear", icon="eraser", tooltip="forget the rows (not the state)",
                         layout=w.Layout(width="90px"))
        clear.on_click(lambda _: self.clear())
        self.widget = w.VBox([w.HBox(buttons + [clear]), self.html])
        self.widget.add_class("vfiolab-irq-timeline")   # a stable selector for the browser tests
        self.refresh()

    def same_view(self, other):
        return (self.device, self.gsi, self.title) == (other.device, other.gsi, other.title)

    def _act(self, fn, label):
        result = fn()
        self.sample(label, result if hasattr(result, "reason") else None)

    # --- what it reads ------------------------------------------------------------------------
    def state(self):
        """{stage: value} now."""
        intid = 32 + self.gsi
        # The device's line and VFIO's mask only the sim can show (a real kernel keeps them to
        # itself): n/a elsewhere; the eventfds and the vGIC are read the same on every board.
        model = getattr(self.board, "model", None)
        out = {"line": bool(model(self.device).engine.irq_line) if model else None}
        try:
            out["masked"] = self.board.vfio_irq_masked(self.device, 0)
        except (AttributeError, LookupError):
            out["masked"] = None
        out["trigger"] = eventfd_count(self.trigger)
        out["resample"] = eventfd_count(self.resample)
        if self.vmm is not None:
            out["pending"] = _bit(self.vmm, GICD_ISPENDR, intid)
            out["active"] = _bit(self.vmm, GICD_ISACTIVER, intid)
        return out

    def guest_report(self, exit):
        if exit is None:
            return ""
        if exit.reason != "mmio":
            return f"KVM_RUN: {exit.reason}" + (" (waiting in WFI)" if exit.reason == "intr" else "")
        if self.report is not None and exit.addr == self.report:
            return f"IAR: took INTID {exit.data}"
        if self.report is not None and exit.addr == self.report + 4:
            return f"EOI of INTID {exit.data} written"
        return f"MMIO {'write' if exit.is_write else 'read'} 0x{exit.addr:x} = 0x{exit.data:x}"

    def sample(self, label, exit=None):
        """Add a row: `label` and the state of every stage now."""
        row = dict(self.state(), label=label, guest=self.guest_report(exit))
        self.rows.append(row)
        self.refresh()
        return row

    def clear(self):
        self.rows = []
        self.refresh()

    # --- drawing ------------------------------------------------------------------------------
    @staticmethod
    def _flag(value, on, off, colour=RED):
        if value is None:
            return f"<span style='color:{GREY}'>n/a</span>"
        return f"<b style='color:{colour}'>{on}</b>" if value else f"<span style='color:{GREY}'>{off}</span>"

    def _cells(self, row):
        count = lambda n: "n/a" if n is None else (f"<b>{n}</b>" if n else "0")
        return [html.escape(row["label"]), self._flag(row["line"], "high", "low"),
                self._flag(row["masked"], "masked", "unmasked"), count(row["trigger"]),
                count(row["resample"]), self._flag(row.get("pending"), "pending", "-", GREEN),
                self._flag(row.get("active"), "active", "-", GREEN), html.escape(row["guest"])]

    def html_text(self):
        head = ["moment", "device line", "VFIO", "trigger efd", "resample efd",
                f"SPI {32 + self.gsi}", "", "guest"]
        body = (table(head, [self._cells(r) for r in self.rows], escape=False) if self.rows
                else "<div><i>No moments sampled yet.</i></div>")
        return f"<div style='{BOX}'><b>{html.escape(self.title)}</b>{body}</div>"

    def refresh(self, force=True):
        self.html.value = self.html_text()

    def text(self):
        """One line per row (for logs and tests)."""
        def word(v, on, off):
            return "n/a" if v is None else (on if v else off)
        return "\n".join(
            f"{r['label']}: line {word(r['line'], 'high', 'low')}, VFIO {word(r['masked'], 'masked', 'unmasked')}, "
            f"trigger {r['trigger']}, resample {r['resample']}, SPI "
            f"{word(r.get('pending'), 'pending', '-')}/{word(r.get('active'), 'active', '-')}"
            + (f", guest: {r['guest']}" if r["guest"] else "") for r in self.rows)
