"""IOMMU view: the DMA mappings a device's container holds, and the IOMMU's fault log.

What to look at: each mapping is an IOVA window the device may use, with the permissions MAP_DMA
gave it (R: the device may read, W: it may write); every access outside them is a fault the
IOMMU records instead of letting it reach memory.

Once the device's MSIs are enabled, the kernel maps the interrupt controller's doorbell page into
the same domain, inside the reserved MSI window (iommu_dma_prepare_msi / iommu_dma_get_msi_page):
the view lists it apart, as "MSI doorbell", beside the window (the group's reserved_regions).

Mappings come from the sim board's type1 backend (a real kernel does not list them to user space);
the reserved window from sysfs; faults from board.iommu_faults() (the sim's SMMU model, or the qemu
board's logged SMMU events).
"""
import html

from ..uapi import VFIO_DMA_MAP_FLAG_READ as READ, VFIO_DMA_MAP_FLAG_WRITE as WRITE
from .memory import BOX, MONO, table

DOORBELL = "#8250df"


def mappings_of(board, device):
    """[(iova, size, prot)] of the container `device`'s group is in, in IOVA order; None when the
    board cannot list them (only the sim can: a real kernel keeps them to itself)."""
    if not hasattr(board, "iommu_mappings"):
        return None
    return board.iommu_mappings(device)     # KeyError for a device the board does not have


def doorbells_of(board, device):
    """[(iova, size, doorbell page, prot)] the kernel mapped for `device`'s MSIs; None when the
    board cannot list them (only the sim can)."""
    fn = getattr(board, "iommu_msi_mappings", None)
    return None if fn is None else fn(device)


def reserved_regions(board, device):
    """[(start, end, type)] of `device`'s IOMMU group (/sys/kernel/iommu_groups/N/reserved_regions);
    [] when it has no group."""
    from ..vfio import VfioError, iommu_group_of
    try:
        group = iommu_group_of(board, device)
    except VfioError:
        return []
    out = []
    for line in board.sysfs_read(f"/sys/kernel/iommu_groups/{group}/reserved_regions").splitlines():
        words = line.split()
        if len(words) == 3:
            out.append((int(words[0], 16), int(words[1], 16), words[2]))
    return out


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
        doorbells = doorbells_of(self.board, self.device) or []
        if not maps and not doorbells:
            return "<div><i>No DMA mappings yet: the device cannot reach any memory.</i></div>"
        rows = [(iova, f"0x{iova:x} - 0x{iova + size - 1:x}", f"{size:#x} ({size} bytes)", perms(prot),
                 html.escape(self.labels.get(iova, ""))) for iova, size, prot in maps]
        rows += [(iova, f"0x{iova:x} - 0x{iova + size - 1:x}", f"{size:#x} ({size} bytes)", perms(prot),
                  f"<b style='color:{DOORBELL}'>MSI doorbell</b> &rarr; GIC page 0x{page:x} "
                  "(the kernel's, for MSIs)")
                 for iova, size, page, prot in doorbells]
        return table(["IOVA range", "size", "device may", "holds"], [r[1:] for r in sorted(rows)],
                     escape=False)

    def _reserved(self):
        regions = reserved_regions(self.board, self.device)
        if not regions:
            return ""
        parts = [f"0x{start:x} - 0x{end:x} {html.escape(kind)}" + (
                 ": the MSI window (doorbells go here; MAP_DMA here is EINVAL)"
                 if kind == "msi" else "") for start, end, kind in regions]
        return f"<div style='{MONO}'>Reserved IOVA (reserved_regions): {'; '.join(parts)}</div>"

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
                           f"container</b>{self._mapping_rows()}{self._reserved()}<b>Fault log</b>"
                           f"{self._fault_rows()}</div>")

    def _ipython_display_(self):
        from IPython.display import display
        display(self.widget)

    def text(self):
        """A plain-text summary (for logs and tests)."""
        maps = mappings_of(self.board, self.device) or []
        lines = [f"{iova:#x}+{size:#x} {perms(prot)} {self.labels.get(iova, '')}".rstrip()
                 for iova, size, prot in maps]
        lines += [f"{iova:#x}+{size:#x} {perms(prot)} MSI doorbell -> {page:#x}"
                  for iova, size, page, prot in doorbells_of(self.board, self.device) or []]
        lines += [f"reserved {start:#x}-{end:#x} {kind}" for start, end, kind in reserved_regions(self.board, self.device)]
        lines += [f"fault: {f.access} {f.iova:#x} ({f.reason})" for f in faults_of(self.board) or []]
        return "\n".join(lines)
