"""Memory view: a DMA source and destination side by side, differences highlighted.

What to look at: the strip has one square per block of bytes, green where the destination
already holds what the source holds, grey where it does not (yet). Below, the hex rows around the
first difference: source above, destination below, differing bytes in red.

The buffers are read live at each refresh(): pass the buffers themselves (board.alloc memory,
bytearrays) or functions that return bytes (e.g. a standalone engine's mem_read).
"""
import html

BOX = ("font-family:var(--jp-ui-font-family,sans-serif);font-size:13px;border:1px solid #ccc;"
       "border-radius:4px;padding:6px 8px;margin:2px 0")
MONO = "font-family:var(--jp-code-font-family,monospace);font-size:12px"
CELL = "padding:1px 8px;border-bottom:1px solid #eee;text-align:left;vertical-align:top"
GREEN, GREY, RED, AMBER = "#2da44e", "#d0d7de", "#cf222e", "#9a6700"


def table(headers, rows, colour=None, escape=True):
    """An HTML table; cells are escaped text unless escape=False (then they are HTML)."""
    fix = html.escape if escape else (lambda s: s)
    style = f";color:{colour}" if colour else ""
    head = "".join(f"<th style='{CELL};border-bottom:1px solid #999'>{html.escape(h)}</th>"
                   for h in headers)
    body = "".join("<tr>" + "".join(f"<td style='{CELL}{style}'>{fix(str(c))}</td>" for c in row)
                   + "</tr>" for row in rows)
    return f"<table style='border-collapse:collapse;{MONO}'><tr>{head}</tr>{body}</table>"


def _reader(source, offset, length):
    if callable(source):
        return lambda: bytes(source())[:length]
    return lambda: bytes(memoryview(source).cast("B")[offset:offset + length])


def compare(src, dst):
    """(bytes equal, first differing offset or None)."""
    n = min(len(src), len(dst))
    same = sum(a == b for a, b in zip(src, dst))
    first = next((i for i in range(n) if src[i] != dst[i]), None)
    return same, first


class MemoryDiff:
    """src[src_offset:+length] beside dst[dst_offset:+length]; refresh() re-reads both.

    src_iova / dst_iova only label the rows with the addresses the device uses.
    """

    def __init__(self, src, dst, length, src_offset=0, dst_offset=0, src_iova=None,
                 dst_iova=None, blocks=128, rows=4, title="Source and destination"):
        import ipywidgets as w
        self.read_src = _reader(src, src_offset, length)
        self.read_dst = _reader(dst, dst_offset, length)
        self.length, self.rows, self.title = length, rows, title
        self.src_iova = src_offset if src_iova is None else src_iova
        self.dst_iova = dst_offset if dst_iova is None else dst_iova
        self.block = max(1, -(-length // blocks))
        self.html = w.HTML()
        self.widget = w.VBox([self.html])
        self.widget.add_class("vfiolab-memory")   # a stable selector for the browser tests
        self.refresh()

    def _strip(self, src, dst):
        cells = []
        for start in range(0, self.length, self.block):
            ok = src[start:start + self.block] == dst[start:start + self.block]
            cells.append(f"<span title='+0x{start:x}' style='display:inline-block;width:5px;"
                         f"height:12px;margin:0 1px 1px 0;background:{GREEN if ok else GREY}'></span>")
        return f"<div style='line-height:10px;max-width:900px'>{''.join(cells)}</div>"

    def _hex(self, src, dst, first):
        start = 0 if first is None else max(0, first // 16 - 1) * 16   # a row of context
        lines = []
        for row in range(start, min(start + 16 * self.rows, self.length), 16):
            s, d = src[row:row + 16], dst[row:row + 16]
            s_txt = " ".join(f"{b:02x}" for b in s)
            d_txt = " ".join(f"<span style='color:{RED};font-weight:bold'>{b:02x}</span>"
                             if i >= len(s) or b != s[i] else f"{b:02x}" for i, b in enumerate(d))
            lines.append(f"src 0x{self.src_iova + row:08x}: {s_txt}")
            lines.append(f"dst 0x{self.dst_iova + row:08x}: {d_txt}")
        return f"<pre style='{MONO};margin:4px 0'>{chr(10).join(lines)}</pre>"

    def refresh(self):
        src, dst = self.read_src(), self.read_dst()
        same, first = compare(src, dst)
        if first is None:
            verdict = (f"<span style='color:{GREEN};font-weight:bold'>all {self.length} bytes "
                       "match</span>")
        else:
            verdict = (f"<span style='color:{AMBER};font-weight:bold'>the first {first} bytes match; "
                       f"first difference at +0x{first:x}; {self.length - same} of {self.length} "
                       "bytes differ</span>")
        self.html.value = (f"<div style='{BOX}'><b>{html.escape(self.title)}</b> "
                           f"(one square = {self.block} bytes; green: copied) &nbsp; {verdict}"
                           f"{self._strip(src, dst)}{self._hex(src, dst, first)}</div>")

    def still(self):
        """A still picture of the view as it is now (HTML): the live view redraws at each
        refresh() (a linked panel's steps), the still keeps the moment a cell describes."""
        from IPython.display import HTML
        self.refresh()
        return HTML(f"<div style='opacity:0.9'><i>Still picture:</i>{self.html.value}</div>")

    def _ipython_display_(self):
        from IPython.display import display
        display(self.widget)

    def text(self):
        src, dst = self.read_src(), self.read_dst()
        same, first = compare(src, dst)
        if first is None:
            return f"all {self.length} bytes match"
        return (f"the first {first} bytes match; first difference at +{first:#x}; "
                f"{self.length - same} of {self.length} bytes differ")
