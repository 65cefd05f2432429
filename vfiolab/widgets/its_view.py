"""ITS view: the GICv3 ITS as its driver sees it: registers, command queue, tables, translations.

What to look at: the kernel writes 32-byte commands into the queue and moves GITS_CWRITER; the ITS
runs them and moves GITS_CREADR after them (equal: nothing left to run). MAPD gives a DeviceID an
ITT in the device table, MAPC a collection a redistributor, MAPTI an (DeviceID, EventID) an LPI and
a collection. "Where a write lands" follows a write of `value` to GITS_TRANSLATER by the device with
that DeviceID through the same tables the ITS reads: device table -> ITT -> LPI -> collection ->
redistributor, or says where it is dropped and why. The DeviceID comes from the bus, never from the
data: a device can only reach the LPIs in its own ITT.

A thin view: everything is read from the ITS's registers (GITS_*, GICR_PROPBASER) and the memory
its tables and queue live in (the kernel allocated them: its.mem_read reads that RAM), never from
the sim kernel's bookkeeping. The table entry layouts are this ITS's (QEMU's, which the sim's C
model follows: the architecture leaves DTE, ITE and CTE formats to the implementation).
"""
import html
import re
from collections import namedtuple

from ..hw.gic import (GICR_CTLR, GICR_PENDBASER, GICR_PROPBASER, GITS_BASER, GITS_CBASER,
                      GITS_CREADR, GITS_CTLR, GITS_CWRITER, GITS_TYPER, LPI_BASE, decode_command)
from .live import LiveView, refresh_button
from .memory import AMBER, BOX, GREEN, GREY, MONO, RED, table

COMMAND_SIZE = 32
ITE_SIZE, DTE_SIZE, CTE_SIZE = 12, 8, 8
ID_BITS = 16                    # GITS_TYPER's Devbits, IDbits and CIDbits on this ITS (16 each)
TABLE_TYPES = {0: "unimplemented", 1: "Devices", 2: "vPEs", 4: "Interrupt Collections"}
PAGE_SIZES = {0: 0x1000, 1: 0x4000, 2: 0x10000, 3: 0x10000}

Landing = namedtuple("Landing", "steps lpi target dropped")
Landing.__doc__ = ("Where a write to GITS_TRANSLATER lands: steps [(table, what it holds)], the LPI "
                   "and redistributor it reaches, or dropped: why the ITS drops it (else None).")


def _mask(hi, lo):
    return ((1 << (hi - lo + 1)) - 1) << lo


# --- registers ----------------------------------------------------------------------------------
def decode_baser(value):
    """GITS_BASER<n>: {valid, indirect, type, entry_size, page_size, pages, base, ids}."""
    page = PAGE_SIZES[value >> 8 & 3]
    if page == 0x10000:      # 64K pages: PA[51:48] sit in bits [15:12]
        base = value & _mask(47, 16) | (value >> 12 & 0xF) << 48
    else:
        base = value & _mask(47, 12 if page == 0x1000 else 14)
    entry = (value >> 48 & 0x1F) + 1
    pages = (value & 0xFF) + 1
    return {"valid": bool(value >> 63), "indirect": bool(value >> 62 & 1),
            "type": TABLE_TYPES.get(value >> 56 & 7, f"type {value >> 56 & 7}"), "entry_size": entry,
            "page_size": page, "pages": pages, "base": base,
            "ids": min(pages * page // entry, 1 << ID_BITS)}


def decode_cbaser(value):
    """GITS_CBASER: {valid, base, size} of the command queue."""
    return {"valid": bool(value >> 63), "base": value & _mask(51, 12), "size": ((value & 0xFF) + 1) * 0x1000}


def registers(its):
    """{name: value} of the ITS registers the view shows, as the driver reads them."""
    return {"GITS_CTLR": its.readl(GITS_CTLR), "GITS_TYPER": its.readq(GITS_TYPER),
            "GITS_CBASER": its.readq(GITS_CBASER), "GITS_CWRITER": its.readq(GITS_CWRITER),
            "GITS_CREADR": its.readq(GITS_CREADR), "GITS_BASER0": its.readq(GITS_BASER(0)),
            "GITS_BASER1": its.readq(GITS_BASER(1))}


def describe_register(name, value):
    if name == "GITS_CTLR":
        return ("Enabled" if value & 1 else "disabled") + (", Quiescent" if value >> 31 & 1 else "")
    if name == "GITS_TYPER":
        return (f"Physical, ITT entry {(value >> 4 & 0xF) + 1} bytes, {(value >> 8 & 0x1F) + 1} EventID "
                f"bits, {(value >> 13 & 0x1F) + 1} DeviceID bits, PTA {value >> 19 & 1}")
    if name == "GITS_CBASER":
        q = decode_cbaser(value)
        return f"{'valid' if q['valid'] else 'not valid'}, queue at 0x{q['base']:x}, {q['size'] // 1024} KiB"
    if name in ("GITS_CWRITER", "GITS_CREADR"):
        text = f"offset 0x{value & _mask(19, 5):x} (slot {(value & _mask(19, 5)) // COMMAND_SIZE})"
        return text + (", Stalled" if name == "GITS_CREADR" and value & 1 else "")
    t = decode_baser(value)
    if not t["valid"]:
        return f"not valid ({t['type']})"
    return (f"{t['type']}: {'indirect' if t['indirect'] else 'flat'}, {t['entry_size']}-byte entries, "
            f"{t['pages']} x {t['page_size'] // 1024}K pages at 0x{t['base']:x}: IDs 0..{t['ids'] - 1}")


# --- command queue ------------------------------------------------------------------------------
def describe_command(name, f):
    """A command's fields in words."""
    valid = lambda: "" if f.get("valid") else " (V=0: unmap)"
    if name == "MAPD":
        if not f["valid"]:
            return f"DeviceID {f['device_id']}: unmap (V=0)"
        return f"DeviceID {f['device_id']}: ITT at 0x{f['itt']:x}, {1 << f['size'] + 1} EventIDs (size {f['size']})"
    if name == "MAPC":
        return f"collection {f['icid']} -> redistributor {f['rdbase']}" + valid()
    if name == "MAPTI":
        return f"DeviceID {f['device_id']} EventID {f['event_id']} -> LPI {f['intid']}, collection {f['icid']}"
    if name == "MAPI":
        return f"DeviceID {f['device_id']} EventID {f['event_id']} -> LPI {f['event_id']}, collection {f['icid']}"
    if name == "SYNC":
        return f"wait until redistributor {f['rdbase']} has seen the commands before"
    if name == "INV":
        return f"DeviceID {f['device_id']} EventID {f['event_id']}: re-read its LPI's configuration"
    if name == "INVALL":
        return f"collection {f['icid']}: re-read every LPI's configuration"
    if name == "DISCARD":
        return f"DeviceID {f['device_id']} EventID {f['event_id']}: unmap (its LPI goes)"
    if name in ("INT", "CLEAR"):
        return f"DeviceID {f['device_id']} EventID {f['event_id']}: {'raise' if name == 'INT' else 'clear'} its LPI"
    if name == "MOVI":
        return f"DeviceID {f['device_id']} EventID {f['event_id']} -> collection {f['icid']}"
    if name == "MOVALL":
        return f"redistributor {f['rdbase']}'s LPIs -> redistributor {f['rdbase2']}"
    return "not a command this ITS knows"


def command_queue(its):
    """The queue as the ITS sees it: {base, size, creadr, cwriter, slots: [(offset, state, name,
    fields)]} with state "run" (before CREADR), "queued" (CREADR..CWRITER: not run yet) or "empty"
    (never written) for every slot, oldest command first (the queue is a ring)."""
    q = decode_cbaser(its.readq(GITS_CBASER))
    creadr, cwriter = its.readq(GITS_CREADR) & _mask(19, 5), its.readq(GITS_CWRITER) & _mask(19, 5)
    raw = its.mem_read(q["base"], q["size"]) if q["valid"] else bytes(q["size"])
    slots = []
    # Ring order: from CWRITER (the oldest slot once the ring has wrapped) round to CWRITER.
    for i in range(q["size"] // COMMAND_SIZE):
        at = (cwriter + i * COMMAND_SIZE) % q["size"]
        data = raw[at:at + COMMAND_SIZE]
        queued = (at - creadr) % q["size"] < (cwriter - creadr) % q["size"]
        if not any(data):
            slots.append((at, "queued" if queued else "empty", None, {}))
            continue
        name, fields = decode_command(data)
        slots.append((at, "queued" if queued else "run", name, fields))
    return {"base": q["base"], "size": q["size"], "creadr": creadr, "cwriter": cwriter, "slots": slots}


def commands(its):
    """[(name, fields)] of the commands in the queue, oldest first (what the kernel sent)."""
    return [(name, fields) for _, state, name, fields in command_queue(its)["slots"] if state != "empty"]


# --- tables -------------------------------------------------------------------------------------
_NONZERO = re.compile(rb"[^\x00]")


def _entries(its, baser, size):
    """[(index, entry)] of the non-zero entries of the table GITS_BASER `baser` describes (the
    tables are sparse: finding their non-zero bytes in C keeps a refresh fast)."""
    t = decode_baser(its.readq(baser))
    if not t["valid"]:
        return []
    raw = its.mem_read(t["base"], t["ids"] * size)
    found, out = set(), []
    for m in _NONZERO.finditer(raw):
        index = m.start() // size
        if index not in found:
            found.add(index)
            out.append((index, int.from_bytes(raw[index * size:index * size + size], "little")))
    return out


def device_table(its):
    """[(DeviceID, ITT address, EventIDs)] of the valid DTEs (V[0], Size[5:1], ITT_addr[49:6])."""
    return [(dev, (v >> 6 & ((1 << 44) - 1)) << 8, 1 << ((v >> 1 & 0x1F) + 1))
            for dev, v in _entries(its, GITS_BASER(0), DTE_SIZE) if v & 1]


def collection_table(its):
    """[(ICID, redistributor)] of the valid CTEs (V[0], RDbase[16:1])."""
    return [(icid, v >> 1 & 0xFFFF) for icid, v in _entries(its, GITS_BASER(1), CTE_SIZE) if v & 1]


def read_ite(its, itt, event):
    """(LPI, ICID) of ITE `event` of the ITT at `itt` (valid and physical: bits 0 and 1), or None."""
    word = int.from_bytes(its.mem_read(itt + ITE_SIZE * event, 8), "little")
    if word & 3 != 3:
        return None
    return word >> 2 & 0xFFFFFF, word >> 32 & 0xFFFF


def itt_entries(its, itt, events):
    """[(EventID, LPI, ICID)] of the valid ITEs of an ITT."""
    out = []
    for event in range(events):
        ite = read_ite(its, itt, event)
        if ite is not None:
            out.append((event,) + ite)
    return out


def lpi_config(its, cpu, lpi):
    """LPI `lpi`'s configuration byte in redistributor `cpu`'s property table (GICR_PROPBASER),
    or None when that redistributor has no usable LPI tables or the LPI is out of their range."""
    if cpu >= its.num_cpus or not its.gicr_readl(cpu, GICR_CTLR) & 1:
        return None
    prop, pend = its.gicr_readq(cpu, GICR_PROPBASER), its.gicr_readq(cpu, GICR_PENDBASER)
    if not prop or not pend:
        return None
    idbits = min(prop & 0x1F, ID_BITS - 1)
    if not LPI_BASE <= lpi < 1 << idbits + 1:
        return None
    return its.mem_read((prop & _mask(51, 12)) + lpi - LPI_BASE, 1)[0]


def describe_config(byte):
    return f"priority 0x{byte & 0xFC:02x}, {'enabled' if byte & 1 else 'disabled'}"


def where_it_lands(its, device_id, value):
    """Follow a write of `value` (the EventID) to GITS_TRANSLATER by the master with `device_id`
    through the tables, as the ITS does. Reads only; raises nothing."""
    steps = []

    def drop(why):
        return Landing(steps, None, None, why)
    event = value & 0xFFFFFFFF
    if not its.readl(GITS_CTLR) & 1:
        return drop("the ITS is disabled (GITS_CTLR.Enabled is 0)")
    dt = decode_baser(its.readq(GITS_BASER(0)))
    if not dt["valid"]:
        return drop("no device table (GITS_BASER0 is not valid)")
    if not 0 <= device_id < dt["ids"]:
        return drop(f"DeviceID {device_id:#x} is beyond the device table (DeviceIDs 0..{dt['ids'] - 1})")
    at = dt["base"] + DTE_SIZE * device_id
    dte = int.from_bytes(its.mem_read(at, DTE_SIZE), "little")
    if not dte & 1:
        return drop(f"no device table entry for DeviceID {device_id} (DTE at 0x{at:x} is not valid: "
                    "no MAPD gave this device an ITT)")
    itt, events = (dte >> 6 & ((1 << 44) - 1)) << 8, 1 << ((dte >> 1 & 0x1F) + 1)
    steps.append(("device table", f"DTE[{device_id}] at 0x{at:x}: ITT at 0x{itt:x}, EventIDs 0..{events - 1}"))
    if event >= events:
        return drop(f"EventID {event} is beyond DeviceID {device_id}'s ITT (EventIDs 0..{events - 1})")
    ite = read_ite(its, itt, event)
    if ite is None:
        return drop(f"no ITT entry for EventID {event} (ITE at 0x{itt + ITE_SIZE * event:x} is not "
                    "valid: no MAPTI mapped it)")
    lpi, icid = ite
    steps.append(("ITT", f"ITE[{event}] at 0x{itt + ITE_SIZE * event:x}: LPI {lpi}, collection {icid}"))
    ct = decode_baser(its.readq(GITS_BASER(1)))
    cte = (int.from_bytes(its.mem_read(ct["base"] + CTE_SIZE * icid, CTE_SIZE), "little")
           if ct["valid"] and icid < ct["ids"] else 0)
    if not cte & 1:
        return drop(f"collection {icid} is not mapped (no MAPC)")
    target = cte >> 1 & 0xFFFF
    if target >= its.num_cpus:
        return drop(f"collection {icid}'s redistributor {target} does not exist")
    steps.append(("collection table", f"CTE[{icid}]: redistributor {target} (CPU {target})"))
    config = lpi_config(its, target, lpi)
    if config is None:
        return drop(f"redistributor {target} cannot hold LPI {lpi} (no LPI tables, or beyond their range)")
    steps.append(("LPI", f"LPI {lpi}: {describe_config(config)} in redistributor {target}'s property table"
                  + ("" if config & 1 else ": made pending, but the CPU does not take it")))
    return Landing(steps, lpi, target, None)


def device_ids(board):
    """{DeviceID: PCI device name} as the kernel knows them (the requester ID through msi-map);
    {} on a board that does not say."""
    find = getattr(board, "device", None)
    out = {}
    if find is None:
        return out
    for name in board.listdir("/sys/bus/pci/devices"):
        device = find(name)
        if device is not None and getattr(device, "msi_device_id", None) is not None:
            out[device.msi_device_id] = name
    return out


def its_of(board):
    """The board's ITS (vfiolab.hw.gic.ITS), or None when it has none the view can read."""
    interrupts = getattr(board, "interrupts", None)
    return getattr(interrupts, "its", None)


class ItsView(LiveView):
    """The ITS of `board`: registers, command queue, device and collection tables, the ITT of one
    device, and where a write of `value` by DeviceID `device_id` lands. device: a PCI device name
    whose DeviceID is chosen first."""

    def __init__(self, board, device=None, value=0, rows=16, title="GICv3 ITS", live=True):
        import ipywidgets as w
        self.board, self.rows, self.title = board, rows, title
        self.its = its_of(board)
        self.names = device_ids(board) if self.its is not None else {}
        chosen = next((dev for dev, name in self.names.items() if name == device), None)
        if self.its is not None and device is not None and chosen is None:
            known = ", ".join(f"{name} (DeviceID {dev})" for dev, name in sorted(self.names.items()))
            raise LookupError(f"no PCI device {device!r} with an ITS DeviceID on this board: it has {known}")
        self.html = w.HTML()
        self.itt_html, self.landing_html = w.HTML(), w.HTML()
        self.refresh_button = refresh_button(self, "read the ITS's registers, queue and tables again")
        self.itt_device = w.Dropdown(description="ITT of", layout=w.Layout(width="320px"))
        self.itt_device.observe(lambda _: self._draw_itt(), names="value")
        self.device_id = w.BoundedIntText(value=chosen if chosen is not None else 0, min=0,
                                          max=0xFFFFFFFF, description="DeviceID",
                                          layout=w.Layout(width="190px"))
        self.value = w.BoundedIntText(value=value, min=0, max=0xFFFFFFFF, description="writes",
                                      layout=w.Layout(width="190px"))
        for box in (self.device_id, self.value):
            box.observe(lambda _: self._draw_landing(), names="value")
        self.widget = w.VBox([w.HBox([self.refresh_button]), self.html,
                              w.HBox([self.itt_device]), self.itt_html,
                              w.HTML("<b>Where a write to GITS_TRANSLATER lands</b>"),
                              w.HBox([self.device_id, self.value]), self.landing_html])
        self.widget.add_class("vfiolab-its")     # a stable selector for the browser tests
        self._chosen = chosen
        self.refresh()
        if live:
            self.watch()

    def same_view(self, other):
        return self.title == other.title

    # --- drawing ------------------------------------------------------------------------------
    def _name(self, dev):
        return f" ({self.names[dev]})" if dev in self.names else ""

    def _queue_html(self, q):
        slots = q["slots"]            # in ring order from CWRITER: the newest commands come last
        # The part of the ring worth drawing: the newest commands, then CWRITER's slot and a few
        # after it (free, or the oldest commands once the ring has wrapped).
        newest = [s for s in slots[-self.rows:] if s[1] != "empty"]
        shown = newest + slots[:4]
        colour = {"run": GREEN, "queued": AMBER, "empty": GREY}
        boxes = []
        for at, state, name, _ in shown:
            marks = [m for m, off in (("CREADR", q["creadr"]), ("CWRITER", q["cwriter"])) if off == at]
            label = html.escape(name or "")
            boxes.append(
                f"<span title='0x{at:x}: {state}' style='display:inline-block;vertical-align:top;"
                f"width:54px;margin:0 2px 2px 0;text-align:center'><span style='display:block;"
                f"background:{colour[state]};color:{'#fff' if state == 'run' else '#24292f'};"
                f"font-size:11px;height:18px;line-height:18px;border-radius:2px'>{label or '&nbsp;'}</span>"
                f"<span style='display:block;font-size:10px;color:#57606a'>0x{at:x}</span>"
                + "".join(f"<span style='display:block;font-size:10px;font-weight:bold;color:{RED};"
                          "white-space:nowrap'>"
                          f"&#9650; {m}</span>" for m in marks) + "</span>")
        rest = len(slots) - len(shown)
        key = "".join(f"<span style='margin-right:12px'><span style='display:inline-block;width:10px;"
                      f"height:10px;background:{c}'></span> {what}</span>"
                      for c, what in ((GREEN, "run by the ITS"), (AMBER, "queued, not run yet"), (GREY, "free")))
        ring = (f"<div style='{MONO};max-width:900px'>{''.join(boxes)}</div><div style='font-size:11px;"
                f"color:#57606a'>{key}" + (f"... and {rest} more slots round the ring back to "
                                           f"0x{shown[0][0]:x}" if rest > 0 else "") + "</div>")
        pending = (q["cwriter"] - q["creadr"]) % q["size"] // COMMAND_SIZE
        state = ("the ITS has run everything the kernel queued" if not pending else
                 f"<b style='color:{AMBER}'>{pending} command(s) queued, not run yet</b>")
        rows = [(f"0x{at:x}", st, name or "", describe_command(name, f) if name else "")
                for at, st, name, f in shown if name]
        return (f"<div style='margin-top:4px'><b>Command queue</b> ({q['size'] // 1024} KiB at "
                f"0x{q['base']:x}, {len(slots)} slots of 32 bytes): CREADR 0x{q['creadr']:x}, CWRITER "
                f"0x{q['cwriter']:x}: {state}</div>{ring}"
                + table(["offset", "state", "command", "what it says"], rows))

    def _tables_html(self):
        dt = device_table(self.its)
        dt_rows = [(str(dev) + self._name(dev), f"0x{itt:x}", str(events)) for dev, itt, events in dt]
        ct_rows = [(str(icid), str(rd)) for icid, rd in collection_table(self.its)]
        dt_html = (table(["DeviceID", "ITT", "EventIDs"], dt_rows) if dt_rows
                   else "<div><i>No valid entry: no device can raise an LPI.</i></div>")
        ct_html = (table(["ICID", "redistributor"], ct_rows) if ct_rows
                   else "<div><i>No collection mapped.</i></div>")
        return (f"<div style='display:flex;gap:24px;flex-wrap:wrap;margin-top:4px'>"
                f"<div><b>Device table</b> (GITS_BASER0: valid DTEs){dt_html}</div>"
                f"<div><b>Collection table</b> (GITS_BASER1){ct_html}</div></div>"), dt

    def html_text(self):
        if self.its is None:
            why = ("this board's GIC has no ITS (a GICv2m board?)" if hasattr(self.board, "interrupts")
                   else "this board's kernel does not let user space read its ITS's registers and tables "
                        "(the sim's board with gic=\"its\" does)")
            return f"<div style='{BOX}'><b>{html.escape(self.title)}</b><div>No ITS to show: {why}.</div></div>"
        regs = registers(self.its)
        reg_rows = [(name, f"0x{value:x}", describe_register(name, value)) for name, value in regs.items()]
        tables, _ = self._tables_html()
        return (f"<div style='{BOX}'><b>{html.escape(self.title)}</b>"
                + table(["register", "value", "meaning"], reg_rows)
                + self._queue_html(command_queue(self.its)) + tables + "</div>")

    def _draw_itt(self):
        dev = self.itt_device.value
        if self.its is None or dev is None:
            self.itt_html.value = ""
            return
        entry = next((e for e in device_table(self.its) if e[0] == dev), None)
        if entry is None:
            self.itt_html.value = f"<div style='{BOX}'>DeviceID {dev} has no device table entry now.</div>"
            return
        _, itt, events = entry
        rows = []
        for event, lpi, icid in itt_entries(self.its, itt, events):
            cpu = dict(collection_table(self.its)).get(icid)
            config = lpi_config(self.its, cpu, lpi) if cpu is not None else None
            rows.append((str(event), str(lpi), str(icid), "" if config is None else describe_config(config)))
        body = (table(["EventID", "LPI", "collection", "LPI configuration"], rows) if rows
                else "<div><i>No valid ITE: every EventID of this device is dropped.</i></div>")
        self.itt_html.value = (f"<div style='{BOX}'><b>ITT of DeviceID {dev}{html.escape(self._name(dev))}</b> at "
                               f"0x{itt:x}: {events} EventIDs, 12-byte ITEs{body}</div>")

    def landing(self):
        return where_it_lands(self.its, self.device_id.value, self.value.value)

    def _draw_landing(self):
        if self.its is None:
            self.landing_html.value = ""
            return
        land = self.landing()
        dev = self.device_id.value
        rows = "".join(f"<div>&rarr; <b>{html.escape(stage)}</b>: {html.escape(what)}</div>"
                       for stage, what in land.steps)
        if land.dropped:
            verdict = f"<div style='color:{RED};font-weight:bold'>dropped: {html.escape(land.dropped)}</div>"
        else:
            verdict = (f"<div style='color:{GREEN};font-weight:bold'>lands on LPI {land.lpi} at "
                       f"redistributor {land.target}</div>")
        self.landing_html.value = (
            f"<div style='{BOX}'><div style='{MONO}'>DeviceID {dev}{html.escape(self._name(dev))} writes "
            f"{self.value.value} (the EventID) to GITS_TRANSLATER</div>{rows}{verdict}</div>")

    def refresh(self, force=True):
        before = (self.html.value, self.itt_html.value, self.landing_html.value)
        self.html.value = self.html_text()
        if self.its is not None:
            options = [(f"DeviceID {dev}{self._name(dev)}", dev) for dev, _, _ in device_table(self.its)]
            keep, ids = self.itt_device.value, [o[1] for o in options]
            if list(self.itt_device.options) != options:
                self.itt_device.options = options       # (resets the choice: put it back below)
            pick = keep if keep in ids else (self._chosen if self._chosen in ids else None)
            pick = pick if pick is not None else (ids[0] if ids else None)
            if self.itt_device.value != pick:
                self.itt_device.value = pick
        self._draw_itt()
        self._draw_landing()
        return before != (self.html.value, self.itt_html.value, self.landing_html.value)

    def still_html(self):
        return self.html_text() + self.itt_html.value + self.landing_html.value

    def text(self):
        """Registers, the queue's commands, the tables and the landing as plain text (for tests)."""
        if self.its is None:
            return "no ITS"
        regs = registers(self.its)
        lines = [f"CREADR 0x{regs['GITS_CREADR']:x} CWRITER 0x{regs['GITS_CWRITER']:x}"]
        lines += [f"{name} {describe_command(name, f)}" for name, f in commands(self.its)]
        lines += [f"DTE {dev}: ITT 0x{itt:x}, {events} events" for dev, itt, events in device_table(self.its)]
        lines += [f"CTE {icid}: redistributor {rd}" for icid, rd in collection_table(self.its)]
        land = self.landing()
        lines.append(f"DeviceID {self.device_id.value} writes {self.value.value}: "
                     + (f"dropped: {land.dropped}" if land.dropped else f"LPI {land.lpi} at redistributor {land.target}"))
        return "\n".join(lines)
