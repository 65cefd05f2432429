"""IOMMU view: the DMA mappings a device's container holds, and the IOMMU's fault log.

What to look at: each mapping is an IOVA window the device may use, with the permissions MAP_DMA
gave it (R: the device may read, W: it may write); every access outside them is a fault the
IOMMU records instead of letting it reach memory.

Mappings come from the sim board's type1 backend (a real kernel does not list them to user space);
faults from board.iommu_faults() (the sim's SMMU model, or the qemu board's logged SMMU events).
"""
import html

from ..uapi import VFIO_DMA_MAP_FLAG_READ as READ, VFIO_DMA_MAP_FLAG_WRITE as WRITE
from .memory import BOX, table


def mappings_of(board, device):
    """[(iova, size, prot)] of the container `device`'s group is in, in IOVA order; None when the
    board cannot list them (only the sim can: a real kernel keeps them to itself)."""
    if not hasattr(board, "iommu_mappings"):
        return None
    return board.iommu_mappings(device)     # KeyError for a device the board does not have


def perms(prot):
    return ("R" if prot & READ else "-") + ("W" if prot & WRITE else "-")


def faults_of(board):
    """board.iommu_faults() as plain tuples, or None when the board keeps no fault log."""
    fn = getattr(board, "iommu_faults", None)
    return list(fn()) if fn else None


class IommuView:
    """Mappings of `device`'s container and the IOMMU fault log; refresh() re-reads them.

    labels: {iova: "what it holds"} names the mappings (e.g. {0x100000: "source"}).
    """

    def __init__(self, board, device="2c0a0000.dma", labels=None, max_faults=8):
        import ipywidgets as w
        self.board, self.device = board, device
        self.labels = dict(labels or {})
        self.max_faults = max_faults
        self.html = w.HTML()
        self.widget = w.VBox([self.html])
        self.widget.add_class("vfiolab-iommu")   # a stable selector for the browser tests
        self.refresh()

    def label(self, iova, name):
        self.labels[iova] = name
        self.refresh()

    def _mapping_rows(self):
        maps = mappings_of(self.board, self.device)
        if maps is None:
            return "<div>This board's kernel does not list DMA mappings to user space.</div>"
        if not maps:
            return "<div><i>No DMA mappings yet: the device cannot reach any memory.</i></div>"
        rows = [(f"0x{iova:x} - 0x{iova + size - 1:x}", f"{size:#x} ({size} bytes)", perms(prot),
                 self.labels.get(iova, "")) for iova, size, prot in maps]
        return table(["IOVA range", "size", "device may", "holds"], rows)

    def _fault_rows(self):
        faults = faults_of(self.board)
        if faults is None:
            return "<div>This board keeps no IOMMU fault log.</div>"
        if not faults:
            return "<div style='color:#1a7f37'>No IOMMU faults.</div>"
        shown = faults[-self.max_faults:]
        rows = [(str(f.device or f.stream), f"0x{f.iova:x}", str(f.length), f.access, f.reason)
                for f in shown]
        more = len(faults) - len(shown)
        note = f"<div>... and {more} earlier</div>" if more else ""
        return (f"<div style='color:#cf222e;font-weight:bold'>{len(faults)} IOMMU fault(s): the "
                "device tried to reach memory it was not given</div>"
                + table(["device", "IOVA", "bytes", "access", "why"], rows, colour="#cf222e") + note)

    def refresh(self):
        self.html.value = (f"<div style='{BOX}'><b>IOMMU: mappings of {html.escape(self.device)}'s "
                           f"container</b>{self._mapping_rows()}<b>Fault log</b>{self._fault_rows()}</div>")

    def _ipython_display_(self):
        from IPython.display import display
        display(self.widget)

    def text(self):
        """A plain-text summary (for logs and tests)."""
        maps = mappings_of(self.board, self.device) or []
        lines = [f"{iova:#x}+{size:#x} {perms(prot)} {self.labels.get(iova, '')}".rstrip()
                 for iova, size, prot in maps]
        lines += [f"fault: {f.access} {f.iova:#x} ({f.reason})" for f in faults_of(self.board) or []]
        return "\n".join(lines)
