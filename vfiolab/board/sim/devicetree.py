"""A small device tree source (.dts) parser: enough of dtc's language for the boards we ship.

Supported: /dts-v1/; // and /* */ comments; nodes `label: name@unit { ... };`; properties with no
value, strings ("a", "b"), cell lists (<0x1 2 &label>, several joined by commas) and byte strings
([00 01]). Labels referenced as phandles get phandle numbers in order of first use, as dtc does.

A property's value is kept as the bytes the flattened tree holds (big-endian cells, NUL-ended
strings), because that is what Linux shows under /sys/firmware/devicetree/base.
"""
import re
import struct

_TOKEN = re.compile(r"""
    (?P<space>\s+|//[^\n]*|/\*.*?\*/)
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<directive>/[a-z0-9-]+/)
  | (?P<ref>&[A-Za-z_][A-Za-z0-9_]*)
  | (?P<label>[A-Za-z_][A-Za-z0-9_]*:)
  | (?P<number>0[xX][0-9a-fA-F]+|\d+)
  | (?P<word>[A-Za-z0-9,._+#?@-]+|/)
  | (?P<punct>[{}<>\[\]=;,()])
""", re.VERBOSE | re.DOTALL)


class DtsError(ValueError):
    """A syntax error in a .dts file, with its line number."""


class Node:
    """One device tree node: name@unit, properties (name -> raw bytes), children in source order."""

    def __init__(self, name, parent=None, label=None):
        self.name = name                 # "dma@2c0a0000", or "" for the root
        self.parent = parent
        self.labels = [label] if label else []
        self.properties = {}             # name -> bytes (FDT encoding)
        self.children = []
        self.phandle = None
        self._refs = {}                  # property name -> pending cell list with labels

    @property
    def path(self):
        if self.parent is None:
            return "/"
        parent = self.parent.path
        return (parent if parent.endswith("/") else parent + "/") + self.name

    @property
    def basename(self):
        """The name without its unit address ("dma" for "dma@2c0a0000"), Linux's %pOFn."""
        return self.name.split("@", 1)[0]

    def strings(self, prop):
        raw = self.properties.get(prop)
        if raw is None:
            return []
        return [s.decode() for s in raw.rstrip(b"\0").split(b"\0")] if raw else []

    def string(self, prop, default=None):
        values = self.strings(prop)
        return values[0] if values else default

    def cells(self, prop):
        raw = self.properties.get(prop)
        if raw is None:
            return None
        return list(struct.unpack(f">{len(raw) // 4}I", raw[:len(raw) // 4 * 4]))

    def cell(self, prop, default=None):
        values = self.cells(prop)
        return values[0] if values else default

    def has(self, prop):
        return prop in self.properties

    @property
    def compatible(self):
        return self.strings("compatible")

    def address_cells(self):
        """#address-cells for this node's children (2 for the root by default, 2 elsewhere too)."""
        return self.cell("#address-cells", 2)

    def size_cells(self):
        return self.cell("#size-cells", 1 if self.parent is not None else 1)

    def reg(self):
        """[(address, size)] from `reg`, using the parent's #address-cells and #size-cells."""
        cells = self.cells("reg") or []
        na, ns = self.parent.address_cells(), self.parent.size_cells()
        step = na + ns
        out = []
        for i in range(0, len(cells) - step + 1, step):
            out.append((_join(cells[i:i + na]), _join(cells[i + na:i + step])))
        return out

    def translate(self, address):
        """of_translate_address: `address` (in this node's parent's bus space, as in `reg`) as a
        CPU address, through the `ranges` of every ancestor bus below the root; None where Linux
        gets OF_BAD_ADDR (a bus without `ranges`, or an address no range covers).

        Each bus is the default (non-PCI) bus here, as for every translation the sim names devices
        by: PCI functions are named by bus/slot/function, not by their `reg`.
        """
        bus = self.parent
        while bus is not None and bus.parent is not None:
            if not bus.has("ranges"):
                return None            # of_translate_one: "no ranges; cannot translate"
            raw = bus.cells("ranges")
            if raw:                     # empty `ranges;` is a 1:1 translation
                na, pna, ns = bus.address_cells(), bus.parent.address_cells(), bus.size_cells()
                step = na + pna + ns
                for i in range(0, len(raw) - step + 1, step):
                    child = _join(raw[i:i + na])
                    parent = _join(raw[i + na:i + na + pna])
                    size = _join(raw[i + na + pna:i + step])
                    if child <= address < child + size:     # of_bus_default_map
                        address = parent + address - child
                        break
                else:
                    return None         # "not found !"
            bus = bus.parent
        return address

    def walk(self):
        yield self
        for child in self.children:
            yield from child.walk()

    def child(self, name):
        for c in self.children:
            if c.name == name:
                return c
        return None

    def __repr__(self):
        return f"<Node {self.path}>"


def _join(cells):
    value = 0
    for c in cells:
        value = (value << 32) | c
    return value


def _tokens(text):
    pos, line = 0, 1
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise DtsError(f"line {line}: cannot read {text[pos:pos + 20]!r}")
        kind = m.lastgroup
        if kind != "space":
            yield kind, m.group(kind), line
        line += m.group(0).count("\n")
        pos = m.end()


class _Parser:
    def __init__(self, text):
        self.tokens = list(_tokens(text))
        self.i = 0

    def peek(self):
        return self.tokens[self.i] if self.i < len(self.tokens) else ("eof", "", -1)

    def take(self, value=None):
        tok = self.peek()
        if tok[0] == "eof" or (value is not None and tok[1] != value):
            raise DtsError(f"line {tok[2]}: expected {value or 'more input'}, found {tok[1]!r}")
        self.i += 1
        return tok

    def parse(self):
        root = None
        while self.peek()[0] != "eof":
            kind, value, line = self.peek()
            if kind == "directive":
                self.take()
                self.take(";")
            elif value == "/":
                self.take()
                if root is None:
                    root = Node("")
                self.body(root)
            else:
                raise DtsError(f"line {line}: unexpected {value!r} at top level")
        if root is None:
            raise DtsError("no root node")
        return root

    def body(self, node):
        self.take("{")
        while self.peek()[1] != "}":
            label = None
            if self.peek()[0] == "label":
                label = self.take()[1][:-1]
            kind, name, line = self.take()
            if kind not in ("word", "number"):
                raise DtsError(f"line {line}: expected a node or property name, found {name!r}")
            if self.peek()[1] == "{":
                child = Node(name, node, label)
                node.children.append(child)
                self.body(child)
            else:
                node.properties[name], refs = self.value()
                if refs:
                    node._refs[name] = refs
                self.take(";")
        self.take("}")
        self.take(";")

    def value(self):
        """(bytes, pending phandle references as [(byte offset, label)])."""
        if self.peek()[1] == ";":
            return b"", []
        self.take("=")
        out, refs = bytearray(), []
        while True:
            kind, value, line = self.take()
            if kind == "string":
                out += bytes(value[1:-1], "utf-8").decode("unicode_escape").encode("latin-1") + b"\0"
            elif value == "<":
                while self.peek()[1] != ">":
                    kind, cell, line = self.take()
                    if kind == "number":
                        number = int(cell, 0)
                        if number >> 32:
                            raise DtsError(f"line {line}: cell {cell} does not fit in 32 bits")
                        out += struct.pack(">I", number)
                    elif kind == "ref":
                        refs.append((len(out), cell[1:]))
                        out += b"\0\0\0\0"
                    else:
                        raise DtsError(f"line {line}: expected a cell, found {cell!r}")
                self.take(">")
            elif value == "[":
                while self.peek()[1] != "]":
                    out += bytes.fromhex(self.take()[1])
                self.take("]")
            else:
                raise DtsError(f"line {line}: expected a value, found {value!r}")
            if self.peek()[1] != ",":
                return bytes(out), refs
            self.take(",")


def parse(text):
    """Parse .dts text into its root Node, with phandles resolved."""
    root = _Parser(text).parse()
    by_label = {label: n for n in root.walk() for label in n.labels}
    next_phandle = 1
    for node in root.walk():
        for prop, refs in node._refs.items():
            raw = bytearray(node.properties[prop])
            for offset, label in refs:
                target = by_label.get(label)
                if target is None:
                    raise DtsError(f"{node.path}: {prop} refers to unknown label &{label}")
                if target.phandle is None:
                    target.phandle = next_phandle
                    next_phandle += 1
                    target.properties["phandle"] = struct.pack(">I", target.phandle)
                raw[offset:offset + 4] = struct.pack(">I", target.phandle)
            node.properties[prop] = bytes(raw)
        node._refs = {}
    root.by_phandle = {n.phandle: n for n in root.walk() if n.phandle is not None}
    root.by_label = by_label
    return root


def load(path):
    with open(path) as f:
        return parse(f.read())
