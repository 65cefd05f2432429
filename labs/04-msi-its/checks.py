"""Lab 04's observers and public checks (learners receive this file; the notebook runs it).

Observers judge what the boards really do with your code: msi_hole runs on IOVA ranges; v2m_spi
on MSI_TYPER values of real GICv2m models (vfiolab.hw.gic.GICv2m); forge runs on a fresh GICv2m
board and /proc/interrupts is read before and after; ite_lookup reads the ITT the sim's ITS really
wrote; its_predict is compared with what the ITS does with edu's forged writes; attach runs on
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


def hole_hint(r, what):
    if "error" in r:
        return f"msi_hole({what}) failed: {r['error']}"
    return None


@check("ex1-hole", points=2)
def hole(seen):
    """msi_hole finds the hole in the board's IOVA_RANGE: the reserved MSI window."""
    r = seen["hole"]["holes"][0]
    hint = hole_hint(r, "the board's ranges")
    expect(hint is None, hint)
    expect_equal(tuple(r["value"] or ()), MSI_WINDOW, "msi_hole(the board's IOVA ranges): the first "
                 "IOVA no range covers, and the last before the next range starts")


@check("ex1-doorbell", points=1)
def doorbell(seen):
    """DOORBELL_IOVA is the address the kernel programmed into edu: the window's first page + 0x40."""
    d = seen["hole"]["doorbell"]
    expect(isinstance(d, int), "set DOORBELL_IOVA to the address msi_message(board, EDU) gave (an int)")
    expect_equal(d, MSI_WINDOW[0] + DOORBELL_OFFSET, "DOORBELL_IOVA")


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
        return {"moved": moved, "eventfd": edu.msis(), "edu": edu.action, "spi": spi}
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
    return None


@check("ex3-smmu-fires", points=2)
def smmu_fires(seen):
    """edu's DMA writing the SMMU's SPI to v2m's doorbell raises the SMMU's interrupt."""
    r = seen["forge"]["smmu"]
    hint = forge_hint(r, "the SMMU")
    expect(hint is None, hint)
    expect_equal(r["moved"][SMMU_EVTQ], 1, f"the SMMU's event-queue interrupt count after forge (SPI "
                 f"{r['spi']}): edu's DMA must write the 4 bytes of the SPI to the doorbell IOVA "
                 "(RAM at IOVA -> edu's buffer -> doorbell)")


# --- exercise 5: a hand translation through the ITT --------------------------------------------
@observe("ite")
def observe_ite(ns):
    board = _fresh("its", False)
    try:
        edu = ns["Edu"](board)
        chip = board.interrupts.msi_chip
        mapd = [f for name, f in chip.commands() if name == "MAPD" and f["valid"]][-1]
        itt = board.interrupts.its.mem_read(mapd["itt"], 12 * 2)
        return {"public": _call(ns["ite_lookup"], itt, 0), "truth": chip.mappings(),
                "odd": [_call(ns["ite_lookup"], bytes(t), e) for t, e in ODD_ITTS]}
    except Exception as e:
        return {"public": {"error": _why(e)}}
    finally:
        board.close()


def ite(intid, icid, valid=True):
    """One 12-byte ITE as the model stores it: bit 0 valid, bit 1 physical, INTID [25:2], ICID [47:32]."""
    word = (3 if valid else 0) | intid << 2 | icid << 32
    return word.to_bytes(8, "little") + (1023).to_bytes(4, "little")


ODD_ITTS = [(ite(8192, 0) + ite(8195, 1), 1), (ite(9000, 2) + ite(8200, 0, valid=False), 1),
            (ite(8193, 3), 0)]
ODD_exPECTED = [(8195, 1), None, (8193, 3)]


@check("ex5-edu-lpi", points=2)
def edu_lpi(seen):
    """ite_lookup reads edu's ITE from the ITT the ITS wrote: LPI 8192, collection 0."""
    r = seen["ite"]["public"]
    expect("error" not in r, f"ite_lookup(edu's ITT, 0) failed: {r.get('error')}")
    want = tuple(seen["ite"]["truth"][0][2:4])
    expect_equal(tuple(r["value"] or ()), want, "ite_lookup(edu's ITT, EventID 0) as (LPI, ICID): ITE "
                 "n is 12 bytes at ITT + 12 n, and its first 64-bit word holds valid (bit 0), "
                 "INTID (bits [25:2]) and ICID (bits [47:32])")


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


# --- exercise 4: the EPERM rule -------------------------------------------------------------
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
        return (f"attach {where} returned {r['value']!r}, the kernel gave {want}: attach must open a "
                "container and the group, set the container and VFIO_SET_IOMMU(TYPE1v2), and return "
                "the errno of the call that failed (VfioError.errno), 0 if none did")
    return None


@check("ex4-eperm-on-v2m", points=2)
def eperm_on_v2m(seen):
    """attach returns EPERM on GICv2m without allow_unsafe_interrupts, and 0 on the ITS."""
    for r in seen["attach"][:2]:
        hint = attach_hint(r)
        expect(hint is None, hint)
