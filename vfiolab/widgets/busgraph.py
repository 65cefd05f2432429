"""Bus graph: the board's buses, devices, drivers and IOMMU groups as one graphviz picture.

What to look at: each bus is a column on the left (platform, amba, pci); an arrow goes from a bus to
each of its devices, and from a device to the driver bound to it (VFIO drivers in orange, host
drivers in blue, no arrow when no driver holds the device). Devices that share an IOMMU group sit in
one dashed box, green when the group is viable (every device in it bound to VFIO or to no driver),
red when it is not.

The widget redraws by itself after every cell you run, if anything it shows changed (a bind, an
unbind, a new driver_override); refresh() redraws now. snapshot() gives a still picture of one
moment, which keeps showing that moment when the notebook is read later. All it shows comes from
vfiolab.platform (inventory, driver_override, group_viable).
"""
import html
import re

from .. import platform as plat
from .live import LiveView

VFIO_COLOUR, HOST_COLOUR, OVERRIDE_COLOUR = "#d4620f", "#1f5fa8", "#8250df"
VIABLE, NOT_VIABLE = "#1a7f37", "#cf222e"
BUS_COLOUR = {"platform": "#eef3fb", "amba": "#fdf3e7", "pci": "#eefaf0"}


def interesting(row):
    """The default filter: devices an IOMMU translates for, or that a driver holds."""
    return row["group"] is not None or row["driver"] is not None


def _id(*parts):
    """A graphviz node id (":" would mean a port, so it goes)."""
    return "_".join(re.sub(r"[^A-Za-z0-9]", "_", str(p)) for p in parts)


def to_dot(rows, viable, title=""):
    """graphviz source for inventory rows; `viable` maps group number -> bool."""
    import graphviz
    g = graphviz.Digraph(graph_attr={"rankdir": "LR", "fontname": "Helvetica", "fontsize": "11",
                                     "nodesep": "0.12", "ranksep": "0.5", "label": title,
                                     "labelloc": "t"},
                         node_attr={"fontname": "Helvetica", "fontsize": "10", "height": "0.25"},
                         edge_attr={"arrowsize": "0.6"})
    for bus in dict.fromkeys(r["bus"] for r in rows):
        g.node(_id("bus", bus), f"/sys/bus/{bus}", shape="folder", style="filled",
               fillcolor=BUS_COLOUR.get(bus, "white"))
    groups = {}
    for r in rows:
        groups.setdefault(r["group"], []).append(r)
    for group, members in groups.items():
        target = g
        if group is not None:
            colour = VIABLE if viable.get(group) else NOT_VIABLE
            state = "viable" if viable.get(group) else "not viable"
            target = graphviz.Digraph(name=f"cluster_group{group}", graph_attr={
                "label": f"IOMMU group {group} ({state})", "style": "dashed,rounded",
                "color": colour, "fontcolor": colour, "fontsize": "10"})
        for r in members:
            label = r["device"]
            if r["override"]:
                label += f"\ndriver_override={r['override']}"
            target.node(_id("dev", r["device"]), label, shape="box", style="rounded,filled",
                        fillcolor=BUS_COLOUR.get(r["bus"], "white"),
                        color=OVERRIDE_COLOUR if r["override"] else "black")
        if group is not None:
            g.subgraph(target)
    for r in rows:
        g.edge(_id("bus", r["bus"]), _id("dev", r["device"]), color="#999999")
        if r["driver"]:
            colour = VFIO_COLOUR if plat.is_vfio_driver(r["driver"]) else HOST_COLOUR
            g.node(_id("drv", r["bus"], r["driver"]), r["driver"], shape="ellipse", color=colour,
                   fontcolor=colour, penwidth="1.5")
            g.edge(_id("dev", r["device"]), _id("drv", r["bus"], r["driver"]), color=colour)
    return g


class BusGraph(LiveView):
    """A live graph of `board`'s buses. show(row) picks the devices drawn (default: interesting)."""

    def __init__(self, board, buses=plat.BUSES, show=interesting, auto=True, title=None):
        import ipywidgets as w
        self.board, self.buses, self.show = board, tuple(buses), show
        self.title = title if title is not None else f"{getattr(board, 'kind', 'board')} board"
        self.html = w.HTML()
        self.widget = w.VBox([self.html])
        self.widget.add_class("vfiolab-busgraph")   # a stable selector for the browser tests
        self._drawn = None
        self.refresh()
        if auto:
            self.watch()

    def same_view(self, other):
        return (self.buses, self.show, self.title) == (other.buses, other.show, other.title)

    def state(self):
        rows = [r for r in plat.inventory(self.board, self.buses) if self.show(r)]
        for r in rows:
            r["override"] = plat.driver_override(self.board, r["device"])
        viable = {g: plat.group_viable(self.board, g) for g in {r["group"] for r in rows} if g is not None}
        return rows, viable

    def _svg(self, rows, viable, title):
        try:
            svg = to_dot(rows, viable, title).pipe(format="svg").decode()
            return f"<div style='overflow-x:auto'>{svg[svg.find('<svg'):]}</div>"
        except Exception as e:   # graphviz missing: say so instead of failing the cell
            return f"<pre>bus graph unavailable: {html.escape(str(e))}</pre>"

    def refresh(self, force=True):
        rows, viable = self.state()
        key = repr((rows, sorted(viable.items())))
        if key == self._drawn and not force:
            return
        self._drawn = key
        self.html.value = self._svg(rows, viable, self.title + " (live)")

    def snapshot(self, caption=""):
        """A still picture of the graph now: it stays as it is when the board changes later."""
        from IPython.display import HTML
        rows, viable = self.state()
        return HTML(self._svg(rows, viable, f"{self.title}: {caption}" if caption else self.title))
