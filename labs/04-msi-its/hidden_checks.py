"""Lab 04's hidden checks: the instructor's only (vfiolab release leaves this file out)."""
from checks import (DTE_CASES, HOLE_CASES, ODD_EXPECTED, SMMU_EVTQ, TABLE_CASES, WALK_CASES,
                    attach_hint, dte_hint, forge_hint, hole_hint, its_rows_hint, table_hint, v2m_hint,
                    walk_hint)
from vfiolab.grading import check, expect, expect_equal


@check("ex1-other-layouts", points=2, hidden=True)
def other_layouts(seen):
    """msi_hole finds the first hole of other range lists (another window, three ranges)."""
    wants = [(0x40000000, 0x400FFFFF), (0x8000000, 0x80FFFFF)]
    for r, case, want in zip(seen["hole"]["holes"][1:], HOLE_CASES[1:], wants):
        hint = hole_hint(r, case, want)
        expect(hint is None, hint)


@check("ex2-other-frames", points=2, hidden=True)
def other_frames(seen):
    """v2m_spi decodes other frames and says None for data outside the frame's SPIs."""
    for r in seen["v2m"][1:]:
        hint = v2m_hint(r)
        expect(hint is None, hint)


@check("ex3-own-spi", points=1, hidden=True)
def own_spi(seen):
    """forge with edu's own SPI raises edu's own interrupt and nothing else."""
    r = seen["forge"]["edu"]
    hint = forge_hint(r, "edu")
    expect(hint is None, hint)
    expect_equal((r["moved"][r["edu"]], r["moved"][SMMU_EVTQ]), (1, 0),
                 "(edu's count, the SMMU's count) after forging edu's own SPI")
    expect_equal(seen["forge"]["smmu"]["moved"][seen["forge"]["smmu"]["edu"]], 0,
                 "edu's own count after forging the SMMU's SPI (one 4-byte write, one interrupt)")


@check("ex5-other-tables", points=2, hidden=True)
def other_tables(seen):
    """table_entry on tables of other shapes: 4K and 16K pages, PA[51:48], 16-byte entries, two-level
    tables with valid and invalid level-1 entries, past the end, GITS_BASER not valid."""
    for r, (value, index, _, want, what) in zip(seen["its_tables"]["tables"], TABLE_CASES):
        hint = table_hint(r, value, index, want, what)
        expect(hint is None, hint)


@check("ex5-other-entries", points=2, hidden=True)
def other_entries(seen):
    """ite_lookup on other ITTs (another collection, an invalid ITE), dte_decode on other DTEs
    (an invalid one, a high ITT), translate through tables of our own (another CPU, an EventID
    beyond the ITT's size, no DTE, no CTE)."""
    for got, want in zip(seen["ite"].get("odd", []), ODD_EXPECTED):
        expect("error" not in got, f"ite_lookup failed: {got.get('error')}")
        value = tuple(got["value"]) if got["value"] is not None else None
        expect_equal(value, want, "ite_lookup on a second ITT (valid bit clear -> None)")
    tables = seen["its_tables"]
    for r, (dte, want) in zip(tables["dtes"], DTE_CASES):
        hint = dte_hint(r, dte, want)
        expect(hint is None, hint)
    for r, (device_id, event_id, want, why) in zip(tables["walks"], WALK_CASES):
        hint = walk_hint(r, device_id, event_id, want, why)
        expect(hint is None, hint)


@check("ex6-every-forged-write", points=2, hidden=True)
def every_forged_write(seen):
    """its_predict matches the ITS on every value edu forges (EventIDs, SPIs, LPIs as data)."""
    hint = its_rows_hint(seen["its_forge"])
    expect(hint is None, hint)


@check("ex4-unsafe-and-rule", points=2, hidden=True)
def unsafe_and_rule(seen):
    """With allow_unsafe_interrupts both attach; the refusal logs the kernel's line; attach_allowed
    states the rule for all four cases."""
    rows = seen["attach"]
    for r in rows[2:]:
        hint = attach_hint(r)
        expect(hint is None, hint)
    expect(rows[0].get("refused_line"), "the refusal on GICv2m must leave the kernel's 'No interrupt "
           "remapping support' line in dmesg: type1 logs it when it refuses VFIO_SET_IOMMU, so attach "
           "must call set_iommu(VFIO_TYPE1v2_IOMMU) after set_container")
    for r in rows:
        gic, unsafe = r["case"]
        want = gic == "its" or unsafe
        p = r.get("predicted", {})
        expect("error" not in p, f"attach_allowed failed: {p.get('error')}")
        expect_equal(p.get("value"), want, f"attach_allowed(isolated_msi={gic == 'its'}, "
                     f"allow_unsafe={unsafe})")
