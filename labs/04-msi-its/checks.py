"""Lab 04's observers and public checks (learners receive this file; the notebook runs it).

Observers judge what the boards really do with your code: msi_hole runs on IOVA ranges; v2m_spi
on MSI_TYPER values of real GICv2m models (vfiolab.hw.gic.GICv2m); forge runs on a fresh GICv2m
board and /proc/interrupts is read before and after; table_entry, dte_decode, ite_lookup and
translate read the tables the sim's ITS really wrote (and tables of other shapes); its_predict is compared with what the ITS does with edu's forged writes; attach runs on
fresh boards with and without isolated MSIs and allow_unsafe_interrupts.
"""
import errno

from vfiolab.grading import check, expect, expect_equal, observe

MSI_WINDOW = (0x8000000, 0x80FFFFF)     # the virt board's reserved MSI window (iommu_dma_get_msi_page)
DOORBELL_OFFSET = 0x40                  # GITS_TRANSLATER and MSI_SETSPI_NS both sit at 0x040
SMMU_EVTQ = "arm-smmu-v3-evtq"
# IOVA range lists msi_hole is run on: the board's, then (hidden) other layouts.
HOLE_CASES = [[(0, 0x7FFFFFF), (0x8100000, 0xFFFFFFFFFFFF)],
              [(0, 0x3FFFFFFF), (0x40100000, 0xFFFFFFFFFF)],
              [(0x1000, 0x7FFFFFF), (0x8100000, 0x9FFFFFFF), (0xA0100000, 0xFFFFFFFFFF)]]
# (first SPI, number of SPIs, data written): the board's frame first, then (hidden) others.
V2M_CASES = [(80, 64, 80), (80, 64, 143), (64, 32, 70), (80, 64, 79), (80, 64, 144), (300, 8, 0)]
# Values edu's DMA writes to the ITS doorbell: public the first two, hidden the rest.
ITS_VALUES = [0, 1, 5, 106, 8192, 0x10000]


def _why(e):
    if isinstance(e, NotImplementedError):
        return "it is not written yet (NotImplementedError)"
    return f"{type(e).__name__}: {e}"


def _call(fn, *args):
    try:
        return {"value": fn(*args)}
    except Exception as e:
        return {"error": _why(e)}


def _fresh(gic, unsafe):
    import vfiolab
    return vfiolab.open_board("sim", gic=gic, layout="virt", allow_unsafe_interrupts=unsafe)


# --- exercise 1: the doorbell IOVA ------------------------------------------------------------
@observe("hole")
def observe_hole(ns):
    return {"holes": [_call(ns["msi_hole"], case) for case in HOLE_CASES],
            "doorbell": ns.get("DOORBELL_IOVA")}


def _hexes(value):
    if isinstance(value, (list, tuple)) and all(isinstance(v, int) for v in value):
        return "(" + ", ".join(hex(v) for v in value) + ")"
    return repr(value)


def hole_hint(r, case, want):
    """None when msi_hole(case) gave the hole `want`, else what is wrong and what to do."""
    what = "the board's IOVA ranges" if case is HOLE_CASES[0] else "[" + ", ".join(map(_hexes, case)) + "]"
    if "error" in r:
        return f"msi_hole({what}) failed: {r['error']}"
    got = tuple(r["value"]) if isinstance(r["value"], (list, tuple)) else r["value"]
    if got == want:
        return None
    ends = (want[0] - 1, want[1] + 1)
    why = ("those are the last IOVA of one range and the first of the next: the hole is what lies "
           "between them (last + 1 to first - 1)" if got == ends else
           "the hole is (first, last) of the first IOVAs no range covers: the last IOVA of a range + 1 "
           "to the first of the next range - 1")
    return f"msi_hole({what}) gave {_hexes(got)}, the hole is {_hexes(want)}: {why}"


@check("ex1-hole", points=2)
def hole(seen):
    """msi_hole finds the hole in the board's IOVA_RANGE: the reserved MSI window."""
    hint = hole_hint(seen["hole"]["holes"][0], HOLE_CASES[0], MSI_WINDOW)
    expect(hint is None, hint)


@check("ex1-doorbell", points=1)
def doorbell(seen):
    """DOORBELL_IOVA is the address the kernel programmed into edu: the window's first page + 0x40."""
    d = seen["hole"]["doorbell"]
    expect(not isinstance(d, (list, tuple)), f"DOORBELL_IOVA is {_hexes(d)}: msi_message returns "
           "(address, data); DOORBELL_IOVA is the address alone, its [0]")
    expect(isinstance(d, int), "set DOORBELL_IOVA to the address msi_message(board, EDU) gave (an int)")
    want = MSI_WINDOW[0] + DOORBELL_OFFSET
    expect(d == want, f"DOORBELL_IOVA is {d:#x}, edu was programmed with {want:#x}: "
           + ("that is the doorbell's physical address (GITS_TRANSLATER in the ITS's frame); edu sees "
              "IOVAs, and the kernel mapped that page at the start of the MSI window"
              if d == 0x08080000 + 0x10040 else
              "give the address msi_message(its_board, EDU) read from edu's MSI capability"))


# --- exercise 2: v2m's MSI data ---------------------------------------------------------------
def v2m_typer(first, count):
    from vfiolab.hw.gic import GICv2m
    return GICv2m(first_spi=first, num_spis=count).readl(0x008)     # V2M_MSI_TYPER


@observe("v2m")
def observe_v2m(ns):
    fn = ns["v2m_spi"]
    return [dict(_call(fn, v2m_typer(first, count), data), case=(first, count, data))
            for first, count, data in V2M_CASES]


def v2m_expected(first, count, data):
    return data if first <= data < first + count else None


def v2m_hint(r):
    first, count, data = r["case"]
    if "error" in r:
        return f"v2m_spi(MSI_TYPER of a frame with SPIs {first}..{first + count - 1}, {data}) failed: {r['error']}"
    want = v2m_expected(first, count, data)
    if r["value"] != want:
        return (f"v2m_spi(0x{v2m_typer(first, count):08x}, {data}) gave {r['value']!r}: MSI_TYPER is "
                f"base SPI in bits [25:16] and the number of SPIs in [9:0], so this frame raises SPIs "
                f"{first}..{first + count - 1}; the data is the SPI itself, and a value outside the "
                "range raises nothing (None)")
    return None


@check("ex2-decode", points=2)
def v2m_decode(seen):
    """v2m_spi decodes the board's frame: edu's MSI data is the SPI it raises."""
    hint = v2m_hint(seen["v2m"][0])
    expect(hint is None, hint)


# --- exercise 3: the forged cross-device interrupt on v2m ---------------------------------------
def forge_on_v2m(ns, target):
    """A fresh GICv2m board: edu forges an MSI for `target` ("smmu" or "edu"); the counts that moved."""
    board = _fresh("v2m", True)
    try:
        edu = ns["Edu"](board)
        doorbell, own = ns["msi_message"](board, edu.name)
        before = ns["proc_interrupts"](board)
        spi = before[SMMU_EVTQ][2] if target == "smmu" else own
        edu.msis()
        ns["forge"](edu, doorbell, spi)
        after = ns["proc_interrupts"](board)
        moved = {k: after[k][0] - before[k][0] for k in (SMMU_EVTQ, edu.action)}
        # An SMMU fault raises the event-queue interrupt too: a write that missed the doorbell
        # must not pass for one that rang it.
        faults = [(f.iova, f.access) for f in board.iommu_faults()]
        return {"moved": moved, "eventfd": edu.msis(), "edu": edu.action, "spi": spi,
                "faults": faults, "doorbell": doorbell}
    finally:
        board.close()


@observe("forge")
def observe_forge(ns):
    out = {}
    for target in ("smmu", "edu"):
        try:
            out[target] = forge_on_v2m(ns, target)
        except Exception as e:
            out[target] = {"error": _why(e)}
    return out


def forge_hint(r, target):
    if "error" in r:
        return f"forge(edu, doorbell, {target}'s SPI) failed: {r['error']}"
    if r.get("faults"):
        iova, access = r["faults"][0]
        return (f"forge(edu, {r['doorbell']:#x}, {r['spi']}) made edu's DMA fault ({access} at IOVA "
                f"{iova:#x}): the counts moved for the SMMU's fault, not for a doorbell write. Copy from "
                f"IOVA (our page) to E.BUFFER, then from E.BUFFER to the doorbell IOVA {r['doorbell']:#x}")
    return None


FORGE_RULE = ("v2m raises the SPI whose number is the 32-bit little-endian value written to "
              "MSI_SETSPI_NS: put spi.to_bytes(4, 'little') in edu.page, copy IOVA -> E.BUFFER "
              "(to_ram=False), then E.BUFFER -> doorbell (to_ram=True)")


@check("ex3-smmu-fires", points=2)
def smmu_fires(seen):
    """edu's DMA writing the SMMU's SPI to v2m's doorbell raises the SMMU's interrupt."""
    r = seen["forge"]["smmu"]
    hint = forge_hint(r, "the SMMU")
    expect(hint is None, hint)
    moved = r["moved"][SMMU_EVTQ]
    expect(moved == 1, f"the SMMU's event-queue interrupt count moved by {moved} after forge(edu, "
           f"doorbell, {r['spi']}), one write of its SPI moves it by 1: {FORGE_RULE}")


# --- exercise 4: the EPERM rule -------------------------------------------------------------
# The rule as the kernel has it (section 5 of the notebook), checked against the source:
# - 6.1 (the sim's and the qemu board's): vfio_iommu_type1_attach_group's msi_remap =
#   irq_domain_check_msi_remap() || IOMMU_CAP_INTR_REMAP of each device of the group.
# - 6.3 on: !allow_unsafe_interrupts && !iommu_group_has_isolated_msi(group) -> EPERM, the same
#   "No interrupt remapping support" line (vfio/type1: Convert to iommu_group_has_isolated_msi(),
#   of the isolated_msi branch merged in fc3873095a09, pulled for 6.3 in 143c7bc6496c);
#   msi_device_has_isolated_msi() walks the device's MSI domain and its parents for
#   IRQ_DOMAIN_FLAG_ISOLATED_MSI, else arch_is_isolated_msi() (kernel/irq/msi.c).
# - iommufd: the same test in iommufd_device_bind(), its own allow_unsafe_interrupts
#   (drivers/iommu/iommufd/device.c).
ATTACH_CASES = [("v2m", False), ("its", False), ("v2m", True), ("its", True)]


@observe("attach")
def observe_attach(ns):
    out = []
    for gic, unsafe in ATTACH_CASES:
        board = _fresh(gic, unsafe)
        try:
            got = _call(ns["attach"], board, ns["edu_name"](board))
            log = board.dmesg()
            log = log if isinstance(log, str) else "\n".join(log)
            out.append({"case": (gic, unsafe), **got, "refused_line": "No interrupt remapping support" in log,
                        "predicted": _call(ns["attach_allowed"], gic == "its", unsafe)})
        except Exception as e:
            out.append({"case": (gic, unsafe), "error": _why(e)})
        finally:
            board.close()
    return out


def attach_hint(r):
    gic, unsafe = r["case"]
    where = f"on {'the ITS' if gic == 'its' else 'GICv2m'} with allow_unsafe_interrupts={'Y' if unsafe else 'N'}"
    if "error" in r:
        return f"attach {where} failed: {r['error']} (return the errno, 0 when it attaches)"
    want = 0 if gic == "its" or unsafe else errno.EPERM
    if r["value"] != want:
        name = lambda v: errno.errorcode.get(v, repr(v)) if v else repr(v)     # noqa: E731
        return (f"attach {where} returned {name(r['value'])}, the kernel's answer is {name(want)}: "
                "attach must open a container and the group, set the container, then "
                "set_iommu(VFIO_TYPE1v2_IOMMU) (type1's attach is where the kernel refuses), and "
                "return the errno of the call that failed (VfioError.errno), 0 if none did")
    return None


@check("ex4-eperm-on-v2m", points=2)
def eperm_on_v2m(seen):
    """attach returns EPERM on GICv2m without allow_unsafe_interrupts, and 0 on the ITS."""
    for r in seen["attach"][:2]:
        hint = attach_hint(r)
        expect(hint is None, hint)


# --- exercise 5: a hand translation through the ITS's tables -----------------------------------
# Entry layouts are QEMU 7.2's (hw/intc/gicv3_internal.h: FIELD(DTE, VALID, 0, 1), (DTE, SIZE, 1, 5),
# (DTE, ITTADDR, 6, 44); (CTE, VALID, 0, 1), (CTE, RDBASE, 1, 16); ITE_L VALID 0, INTTYPE 1, INTID
# [25:2], ICID [47:32]): the GICv3 architecture leaves flat and level-2 entries IMPLEMENTATION
# DEFINED and fixes only the level-1 entries of a two-level table (Valid [63], PA [51:12]).
# vfiolab/csrc/gic_its.c stores the same bytes; tests/test_gic_qemu.py compares them with QEMU's.
V, INDIRECT = 1 << 63, 1 << 62


def baser(pa, entry_size=8, page=0x10000, pages=1, indirect=False, kind=1, valid=True):
    """A GITS_BASER value: Valid, Indirect, Type [58:56], Entry_Size [52:48], PA, Page_Size [9:8],
    Size [7:0]; with 64K pages PA[51:48] sits in bits [15:12]."""
    psz = {0x1000: 0, 0x4000: 1, 0x10000: 2}[page]
    field = pa & ((1 << 48) - page) | ((pa >> 48 & 0xF) << 12 if page == 0x10000 else 0)
    return ((V if valid else 0) | (INDIRECT if indirect else 0) | kind << 56 | (entry_size - 1) << 48
            | field | psz << 8 | (pages - 1))


def _le(value, n=8):
    return value.to_bytes(n, "little")


def ite(intid, icid, valid=True):
    """One 12-byte ITE as the model stores it: bit 0 valid, bit 1 physical, INTID [25:2], ICID [47:32]."""
    word = (3 if valid else 0) | intid << 2 | icid << 32
    return word.to_bytes(8, "little") + (1023).to_bytes(4, "little")


ODD_ITTS = [(ite(8192, 0) + ite(8195, 1), 1), (ite(9000, 2) + ite(8200, 0, valid=False), 1),
            (ite(8193, 3), 0)]
ODD_EXPECTED = [(8195, 1), None, (8193, 3)]


def memory(pieces):
    """read(addr, n) over {address: bytes}; memory nobody wrote reads as zeros."""
    def read(addr, n):
        out = bytearray(n)
        for base, data in pieces.items():
            lo, hi = max(addr, base), min(addr + n, base + len(data))
            if lo < hi:
                out[lo - addr:hi - addr] = data[lo - base:hi - base]
        return bytes(out)
    return read


# (GITS_BASER, index, memory, the entry's address or None, what the case is): hidden, all of them.
# Level-1 entries: QEMU 7.2's table_entry_addr takes the level-2 page's address as bits [50:0] of
# the entry (l2 & ((1ULL << 51) - 1)), the rule given here bits [51:12]; the addresses below stay
# under 2**32, where both readings agree.
L1 = {0x44000000: _le(V | 0x45000000) + _le(0) + _le(V | 0x46000000)}
TABLE_CASES = [
    (baser(0x41000000, page=0x1000, kind=4), 5, {}, 0x41000028, "flat, 4K pages (a collection table)"),
    (baser(0x42004000, page=0x4000, pages=4), 8191, {}, 0x42004000 + 8191 * 8, "flat, 16K pages, the last entry"),
    (baser(0x42004000, page=0x4000, pages=4), 8192, {}, None, "flat, one entry past (Size + 1) pages"),
    (baser(0x5000040030000), 3, {}, 0x5000040030018, "flat, 64K pages, PA[51:48] in bits [15:12]"),
    (baser(0x43000000, entry_size=16), 3, {}, 0x43000030, "flat, 16-byte entries"),
    (baser(0x44000000, indirect=True), 8, L1, 0x45000040, "two-level: level-1 entry 0 is valid"),
    (baser(0x44000000, indirect=True), 8192 + 3, L1, None, "two-level: level-1 entry 1 is not valid"),
    (baser(0x44000000, indirect=True), 2 * 8192 + 5, L1, 0x46000028, "two-level: level-1 entry 2"),
    (baser(0x41000000, valid=False), 0, {}, None, "GITS_BASER.Valid clear: no table"),
]
# (DTE, (ITT address, EventID bits) or None): hidden.
DTE_CASES = [(1 | 4 << 1 | (0x48000100 >> 8) << 6, (0x48000100, 5)),
             (0x3E | (0x48000100 >> 8) << 6, None),
             (1 | 15 << 1 | (0x812345600 >> 8) << 6, (0x812345600, 16))]


def cte(cpu, valid=True):
    return _le((1 if valid else 0) | cpu << 1)


# A whole walk in memory of our own: DeviceID 3 has 1 EventID bit (events 0-1) and an ITT whose
# events 0-3 are all valid; event 0 is in collection 5 (no CTE), event 1 in collection 1 (CPU 2).
WALK_DT, WALK_CT, WALK_ITT = 0x40000000, 0x40010000, 0x40020000
WALK = {WALK_DT + 8 * 3: _le(1 | 0 << 1 | (WALK_ITT >> 8) << 6),
        WALK_CT: cte(0) + cte(2) + cte(0, valid=False),
        WALK_ITT: b"".join(ite(8200 + e, 5 if e == 0 else 1) for e in range(4))}
# (DeviceID, EventID, (LPI, ICID, CPU) or None, why): hidden.
WALK_CASES = [(3, 1, (8201, 1, 2), "collection 1's CTE says CPU 2"),
              (3, 2, None, "EventID 2 is beyond the DTE's 1 EventID bit (the ITE there is never read)"),
              (4, 0, None, "DeviceID 4 has no valid DTE"),
              (3, 0, None, "the ITE's collection 5 has no valid CTE")]


def _mapd(chip):
    return [f for name, f in chip.commands() if name == "MAPD" and f["valid"]][-1]


@observe("its_tables")
def observe_its_tables(ns):
    board = _fresh("its", False)
    try:
        ns["Edu"](board)
        chip, its = board.interrupts.msi_chip, board.interrupts.its
        mapd = _mapd(chip)
        dev, read = mapd["device_id"], its.mem_read
        baser0, baser1 = its.readq(0x100), its.readq(0x108)
        dte_at = (baser0 & ((1 << 48) - 0x10000)) + 8 * dev          # the sim's table: flat, 64K pages
        dte = int.from_bytes(read(dte_at, 8), "little")
        fns = {name: ns[name] for name in ("table_entry", "dte_decode", "translate")}
        walk = memory(WALK)
        return {"device_id": dev, "baser0": baser0, "dte_at": dte_at, "dte": dte,
                "mapd": (mapd["itt"], mapd["size"] + 1), "truth": chip.mappings(),
                "entry": _call(fns["table_entry"], baser0, dev, read),
                "decoded": _call(fns["dte_decode"], dte),
                "translate": _call(fns["translate"], read, baser0, baser1, dev, 0),
                "tables": [_call(fns["table_entry"], b, i, memory(m)) for b, i, m, _, _ in TABLE_CASES],
                "dtes": [_call(fns["dte_decode"], d) for d, _ in DTE_CASES],
                "walks": [_call(fns["translate"], walk, baser(WALK_DT), baser(WALK_CT, kind=4), d, e)
                          for d, e, _, _ in WALK_CASES]}
    finally:
        board.close()


def _tuple(value):
    return tuple(value) if isinstance(value, (list, tuple)) else value


TABLE_RULE = ("Entry_Size is bits [52:48] + 1 bytes, Page_Size [9:8] (0 4K, 1 16K, 2 64K), Size [7:0] "
              "pages - 1, the table's address bits [47:12] (with 64K pages [47:16], and PA[51:48] in "
              "bits [15:12]); flat (Indirect, bit 62, clear): entry n at address + n x Entry_Size, "
              "None past the table; two-level: the address holds 8-byte level-1 entries, one per "
              "page of entries (Valid bit 63, the page's address in [51:12]), None when not valid")


def table_hint(r, baser_value, index, want, what):
    if "error" in r:
        return f"table_entry(0x{baser_value:016x}, {index}, read) failed: {r['error']}"
    got = r["value"]
    if got != want:
        show = lambda v: "None" if v is None else hex(v) if isinstance(v, int) else repr(v)   # noqa: E731
        return (f"table_entry(0x{baser_value:016x}, {index}, read) gave {show(got)}, the entry is at "
                f"{show(want)} ({what}): {TABLE_RULE}")
    return None


@check("ex5-device-table", points=2)
def device_table(seen):
    """table_entry finds edu's DTE in the device table GITS_BASER0 describes."""
    t = seen["its_tables"]
    hint = table_hint(t["entry"], t["baser0"], t["device_id"], t["dte_at"],
                      "the sim's device table: flat, 64K pages, 8-byte entries")
    expect(hint is None, hint)


DTE_RULE = ("a DTE is 8 bytes: Valid bit 0, EventID bits - 1 in [5:1], the ITT's address >> 8 in "
            "[49:6]; return (ITT address, EventID bits), None when Valid is clear")


def dte_hint(r, dte, want):
    if "error" in r:
        return f"dte_decode(0x{dte:x}) failed: {r['error']}"
    if _tuple(r["value"]) != want:
        return f"dte_decode(0x{dte:x}) gave {r['value']!r}, want {want!r}: {DTE_RULE}"
    return None


@check("ex5-dte", points=1)
def dte_fields(seen):
    """dte_decode reads from edu's DTE the ITT address and size MAPD gave it."""
    t = seen["its_tables"]
    hint = dte_hint(t["decoded"], t["dte"], tuple(t["mapd"]))
    expect(hint is None, hint)


@observe("ite")
def observe_ite(ns):
    board = _fresh("its", False)
    try:
        ns["Edu"](board)
        chip = board.interrupts.msi_chip
        itt = board.interrupts.its.mem_read(_mapd(chip)["itt"], 12 * 2)
        return {"public": _call(ns["ite_lookup"], itt, 0), "truth": chip.mappings(),
                "odd": [_call(ns["ite_lookup"], bytes(t), e) for t, e in ODD_ITTS]}
    except Exception as e:
        return {"public": {"error": _why(e)}}
    finally:
        board.close()


@check("ex5-edu-lpi", points=2)
def edu_lpi(seen):
    """ite_lookup reads edu's ITE from the ITT the ITS wrote: LPI 8192, collection 0."""
    r = seen["ite"]["public"]
    expect("error" not in r, f"ite_lookup(edu's ITT, 0) failed: {r.get('error')}")
    want = tuple(seen["ite"]["truth"][0][2:4])
    expect_equal(tuple(r["value"] or ()), want, "ite_lookup(edu's ITT, EventID 0) as (LPI, ICID): ITE "
                 "n is 12 bytes at ITT + 12 n, and its first 64-bit word holds valid (bit 0), "
                 "INTID (bits [25:2]) and ICID (bits [47:32])")


WALK_RULE = ("translate walks DeviceID -> table_entry(GITS_BASER0) -> DTE (dte_decode) -> EventID "
             "below 2**bits -> ITE at ITT + 12 x EventID (ite_lookup) -> table_entry(GITS_BASER1, "
             "ICID) -> CTE (Valid bit 0, the target CPU in [16:1]); None at the first step that "
             "finds nothing valid")


def walk_hint(r, device_id, event_id, want, why):
    if "error" in r:
        return f"translate(read, BASER0, BASER1, {device_id}, {event_id}) failed: {r['error']}"
    if _tuple(r["value"]) != want:
        return (f"translate(read, BASER0, BASER1, {device_id}, {event_id}) gave {r['value']!r}, want "
                f"{want!r} ({why}): {WALK_RULE}")
    return None


@check("ex5-translate", points=1)
def translate_edu(seen):
    """translate walks edu's (DeviceID, EventID 0) through the tables to (LPI, ICID, CPU), as the ITS does."""
    t = seen["its_tables"]
    hint = walk_hint(t["translate"], t["device_id"], 0, tuple(t["truth"][0][2:5]),
                     "what the ITS's own walk of its tables finds for edu")
    expect(hint is None, hint)


# --- exercise 6: which forged writes the ITS drops ------------------------------------------
@observe("its_forge")
def observe_its_forge(ns):
    board = _fresh("its", False)
    try:
        edu = ns["Edu"](board)
        doorbell, _ = ns["msi_message"](board, edu.name)
        chip = board.interrupts.msi_chip
        mappings = chip.mappings()
        device_id, lpi = mappings[0][0], mappings[0][2]
        out = []
        for written in ITS_VALUES:
            edu.msis()
            edu.page[0:4] = written.to_bytes(4, "little")
            edu.dma(ns["IOVA"], ns["E"].BUFFER, 4, to_ram=False)
            edu.dma(ns["E"].BUFFER, doorbell, 4, to_ram=True)
            row = {"written": written, "real": lpi if edu.msis() else None}
            got = _call(ns["its_predict"], mappings, device_id, written)
            row["error" if "error" in got else "predicted"] = got.get("error", got.get("value"))
            out.append(row)
        return out
    except Exception as e:
        return [{"written": None, "real": None, "error": _why(e)}]
    finally:
        board.close()


def its_rows_hint(rows):
    for r in rows:
        if "error" in r:
            return f"its_predict failed: {r['error']}"
        if r["predicted"] != r["real"]:
            return (f"its_predict(mappings, edu's DeviceID, {r['written']}) gave {r['predicted']!r}, but "
                    f"the ITS {'delivered LPI %d' % r['real'] if r['real'] else 'dropped the write'}: the "
                    "data is only an EventID, looked up in the writer's own ITT (its DeviceID comes "
                    "from the bus, never from the data); no mapping means the write is dropped (None)")
    return None


@check("ex6-own-and-other", points=2)
def its_own_and_other(seen):
    """its_predict says what the ITS does with edu's EventID 0 (its LPI) and EventID 1 (dropped)."""
    hint = its_rows_hint(seen["its_forge"][:2])
    expect(hint is None, hint)
