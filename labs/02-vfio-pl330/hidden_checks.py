"""Lab 02's hidden checks: the instructor's only (vfiolab release leaves this file out)."""
from checks import (CODE_IOVA, DST_IOVA, EVENT, FILL_CASES, MEMCPY_CASES, RECT_CASES,
                    RECT_MAX_BYTES, READ, SG_CASES, SRC_IOVA, WRITE, _case_hint, _mapping,
                    copies_landed, judge_memcpy, rect_cycle_budget, rect_hint)
from vfiolab.grading import check, expect


@check("ex1-least-privilege", points=1, hidden=True)
def least_privilege(seen):
    """Each buffer is mapped with only what the device needs (code, source: R; destination: W)."""
    for iova, want, name in [(CODE_IOVA, READ, "microcode"), (SRC_IOVA, READ, "source"),
                             (DST_IOVA, WRITE, "destination")]:
        _, prot = _mapping(seen, iova, name)
        expect(prot == want, f"the {name} mapping allows {'R' if prot & READ else '-'}"
               f"{'W' if prot & WRITE else '-'}; the PL330 only needs "
               f"{'R' if want == READ else 'W'} there")


@check("ex2-odd-lengths", points=2, hidden=True)
def memcpy_odd_lengths(seen):
    """memcpy_microcode copies 1, 13, 4097 and 1 MiB + 5 bytes."""
    judge_memcpy(seen, [3, 4, 5, 6])


@check("ex2-misaligned", points=2, hidden=True)
def memcpy_misaligned(seen):
    """memcpy_microcode copies between addresses that are not 8-byte aligned."""
    judge_memcpy(seen, [7, 8, 9])


@check("ex2-within-bounds", points=1, hidden=True)
def memcpy_within_bounds(seen):
    """memcpy_microcode never writes before or after its destination."""
    judge_memcpy(seen, range(len(MEMCPY_CASES)), inside=True)


@check("ex3-line-unmasked", points=1, hidden=True)
def line_unmasked(seen):
    """memcpy_wait unmasked the automasked event IRQ (VFIO_IRQ_SET_ACTION_UNMASK)."""
    copies_landed(seen)
    expect(not seen["ex3"]["masked"], "the event IRQ is still masked in VFIO after memcpy_wait: a "
           "level IRQ is automasked when it fires, so the next one never reaches the eventfd")


@check("ex3-eventfd-consumed", points=1, hidden=True)
def eventfd_consumed(seen):
    """memcpy_wait read the eventfd's counter."""
    copies_landed(seen)
    expect(not seen["ex3"]["eventfd_unread"], "the eventfd still holds an unread count: read its "
           "8 bytes after poll, or the next poll returns at once")


@check("ex3-odd-copy", points=2, hidden=True)
def odd_copy(seen):
    """memcpy_start/memcpy_wait copy 777 bytes between unaligned IOVAs and leave the IRQ ready."""
    again = seen["again"]
    expect(again["copied"], "memcpy_start(SRC_IOVA + 0x123, ..., 777) did not copy the bytes"
           + (f" ({again['why']})" if again.get("why") else ""))
    expect(not again["ris"] & 1 << EVENT and not again["masked"], "after that copy the event is "
           "still set or the IRQ still masked")


@check("ex4-cases", points=2, hidden=True)
def sg_cases(seen):
    """sg_microcode copies lists of 1, 3 and 12 segments of odd sizes and alignments."""
    for n, case in enumerate(seen["ex4_cases"]):
        hint = _case_hint(case, f"sg_microcode with {len(SG_CASES[n])} segment(s)", inside=True)
        expect(hint is None, hint)


@check("ex4-one-event", points=1, hidden=True)
def sg_one_event(seen):
    """sg_microcode signals one event, at the very end (DMASEV, DMAEND)."""
    for case in seen["ex4_cases"]:
        expect("error" not in case, case.get("error"))
        expect(case["sev_count"] == 1 and case["ends"] == ["DMASEV", "DMAEND"],
               f"the program has {case['sev_count']} DMASEV and ends with {case['ends']}: one "
               "interrupt for the whole list, after the last segment")


@check("ex5-cases", points=2, hidden=True)
def fill_cases(seen):
    """fill_microcode zeroes 4096, 1, 999 and 70001 bytes at any alignment, and nothing else."""
    for (dst, n), case in zip(FILL_CASES, seen["ex5_cases"]):
        what = f"fill_microcode(0x{dst:x}, {n})"
        expect("error" not in case, f"{what}: {case.get('error')}")
        expect(not case["faults"] and case["state"] == "stopped",
               f"{what}: channel 0 is {case['state']} {case['faults']}")
        expect(case["zeroed"], f"{what}: not every byte is zero")
        expect(case["inside"], f"{what}: bytes outside the range changed")


@check("ex5-stores-only", points=1, hidden=True)
def fill_stores_only(seen):
    """fill_microcode writes with DMASTZ and loads nothing."""
    for case in seen["ex5_cases"]:
        expect("error" not in case, case.get("error"))
        ops = case["mnemonics"]
        expect("DMASTZ" in ops and not any(op.startswith("DMALD") for op in ops),
               f"the program uses {ops}: a fill needs no loads, DMASTZ stores zeros")


@check("ex6-shapes", points=2, hidden=True)
def rect_shapes(seen):
    """rect_microcode copies narrow, wide, contiguous and many-row (> 256) rectangles, compactly."""
    for case, args in zip(seen["rect"][1:], RECT_CASES[1:]):
        hint = rect_hint(case, args)
        expect(hint is None, hint)
        expect(case["size"] <= RECT_MAX_BYTES, f"{case['size']} bytes of microcode for "
               f"{args[3]} rows of {args[2]}: at most {RECT_MAX_BYTES}")


@check("ex6-bus-speed-all", points=1, hidden=True)
def rect_bus_speed_all(seen):
    """The wide rectangles run within 5% of the bus too."""
    for i in (2, 3, 5):
        case, (_, _, width, rows, _, _) = seen["rect"][i], RECT_CASES[i]
        hint = rect_hint(case, RECT_CASES[i])
        expect(hint is None, hint)
        expect(case["cycles"] <= rect_cycle_budget(width, rows),
               f"{width} x {rows}: {case['cycles']} cycles, at most {rect_cycle_budget(width, rows)}")
