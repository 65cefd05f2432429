"""Lab 02's observers and public checks (learners receive this file; the notebook runs it).

Observers read what the device really did: the DMA mappings in the PL330's container (the sim's
type1 IOMMU), the PL330's registers and the VFIO IRQ state, the destination buffer and which of its
bytes the PL330 itself wrote (a copy made by the CPU does not count); and they run
your microcode generators on fresh PL330 engines (vfiolab.hw.pl330.PL330) and report what each
program did to memory, registers and cycles.
"""
from vfiolab.grading import check, expect, expect_bytes, expect_equal, observe, real_board

PL330 = "2c0a0000.dma"
CODE_IOVA, SRC_IOVA, DST_IOVA = 0x10000, 0x100000, 0x200000
CODE_SIZE, BUF_SIZE = 0x1000, 0x10000
EVENT, EVENT_IRQ = 0, 1                # event 0 raises IRQ index 1 (index 0 is the abort line)
READ, WRITE = 1, 2                     # VFIO_DMA_MAP_FLAG_READ / _WRITE

# Where each exercise writes in the destination buffer (offsets from DST_IOVA).
DST_EX3, DST_EX4, DST_EX5, DST_AGAIN = 0x2000, 0x6000, 0x8000, 0xC000
EX4_SEGMENTS = [(0x0000, DST_EX4 + 0x000, 100), (0x1003, DST_EX4 + 0x100, 1000),
                (0x2000, DST_EX4 + 0x600, 0x800)]   # (source offset, destination offset, length)
EX5_START, EX5_LENGTH, EX5_AREA = DST_EX5 + 3, 1000, 0x800   # zero 1000 bytes inside 0x800 of 0xFF

# The fresh engines' memory: microcode at ENGINE_CODE, sources near ENGINE_SRC, copies near ENGINE_DST.
ENGINE_MEMORY, ENGINE_CODE, ENGINE_SRC, ENGINE_DST = 16 << 20, 0x1000, 0x100000, 0x800000
GUARD = 64


def source_pattern(n, seed=0):
    """What the notebook writes into the source buffer (and the fresh engines' sources)."""
    # (i * 7 + 3 + seed) & 0xFF repeats every 256 bytes: tile one period (a byte-by-byte generator
    # over the 1 MiB case was a quarter of the lab's observing time, and the grader observes twice)
    period = bytes((i * 7 + 3 + seed) & 0xFF for i in range(256))
    return (period * (n // 256 + 1))[:n]


# (src, dst, length) for memcpy_microcode; the first three are judged here, all of them hidden.
MEMCPY_CASES = [
    (ENGINE_SRC, ENGINE_DST, 4096), (ENGINE_SRC, ENGINE_DST, 1000), (ENGINE_SRC, ENGINE_DST, 65536),
    (ENGINE_SRC, ENGINE_DST, 1), (ENGINE_SRC + 4, ENGINE_DST, 13), (ENGINE_SRC, ENGINE_DST + 8, 4097),
    (ENGINE_SRC, ENGINE_DST, (1 << 20) + 5),
    (ENGINE_SRC + 1, ENGINE_DST + 3, 7), (ENGINE_SRC + 3, ENGINE_DST + 5, 255),
    (ENGINE_SRC + 2, ENGINE_DST + 6, 65539),
]
PUBLIC_MEMCPY = 3
SG_CASES = [
    [(ENGINE_SRC + 1, ENGINE_DST + 0x1001, 3), (ENGINE_SRC + 0x100, ENGINE_DST + 7, 100),
     (ENGINE_SRC + 0x207, ENGINE_DST + 0x3000, 4099)],
    [(ENGINE_SRC + 0x10000 * i + i, ENGINE_DST + 0x10000 * i, 300 + 77 * i) for i in range(12)],
    [(ENGINE_SRC, ENGINE_DST, 70000)],
]
FILL_CASES = [(ENGINE_DST, 4096), (ENGINE_DST + 3, 1), (ENGINE_DST + 5, 999), (ENGINE_DST + 8, 70001)]

# Exercise 6, rect_microcode(src, dst, width, rows, src_stride, dst_stride): the first case is
# judged here, all of them hidden. src, dst and both strides are multiples of 8; width <= 32768.
RECT_CASES = [
    (ENGINE_SRC, ENGINE_DST, 1003, 300, 1536, 1032),
    (ENGINE_SRC, ENGINE_DST, 5, 3, 8, 16),
    (ENGINE_SRC + 8, ENGINE_DST, 128, 1000, 128, 128),
    (ENGINE_SRC, ENGINE_DST + 0x40, 4103, 2, 8192, 4104),
    (ENGINE_SRC, ENGINE_DST, 1, 257, 8, 8),
    (ENGINE_SRC + 0x100, ENGINE_DST + 8, 2048, 513, 2048, 2056),
]
RECT_MAX_BYTES = 512                   # the program must loop: one block of code per row is too big


def rect_beats(width, rows):
    """Beats the copy cannot do without: 64-bit beats for each row's whole words, one byte-wide
    beat per byte of its tail (one beat per cycle on the bus)."""
    return rows * (width // 8 + width % 8)


def rect_cycle_budget(width, rows):
    return rect_beats(width, rows) * 21 // 20 + 64        # 5% over the bus, and a few to start


# --- helpers the observers share -----------------------------------------------------------------
def _engine(board):
    return board.model(PL330).engine


def _run_fresh(program, fill, cycles):
    """Run `program` on channel 0 of a fresh PL330 after writing fill [(addr, bytes)]. The engine's
    fast path gives the same memory, registers and cycle count as stepping, only sooner."""
    from vfiolab.hw.pl330 import INTEN, PL330 as Engine
    program = bytes(program)
    if not program:
        raise ValueError("the generator returned no microcode")
    if len(program) > ENGINE_SRC - ENGINE_CODE:
        raise ValueError(f"the microcode is {len(program)} bytes: that is far too long")
    dma = Engine(memory_size=ENGINE_MEMORY, events=8)
    dma.writel(INTEN, 1 << EVENT)
    for addr, data in fill:
        dma.mem_write(addr, data)
    dma.mem_write(ENGINE_CODE, program)
    dma.start(0, ENGINE_CODE)
    ran = dma.run(max_cycles=cycles, fast=True)
    t = dma.thread(0)
    return dma, {"state": t.state_name, "faults": t.fault_names, "cycles": ran,
                 "event": dma.readl(0x024) >> EVENT & 1, "pc": t.pc, "size": len(program)}


def _why(e):
    if isinstance(e, NotImplementedError):
        return "it is not written yet (NotImplementedError)"
    return f"{type(e).__name__}: {e}"


def _mnemonics(program):
    from vfiolab.hw.pl330 import disassemble
    return [line.split(":", 1)[1].split()[0] for line in disassemble(bytes(program)).splitlines()]


def _first_difference(a, b):
    n = min(len(a), len(b))
    if a[:n] == b[:n]:          # compared at C speed first: most copies are right
        return None
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), None)


def _copy_case(program_of, segments):
    """Run the program for `segments` [(src, dst, length)]: did each copy land, inside its bounds?"""
    try:
        program = bytes(program_of())
        fill, end = [], 0
        for n, (src, dst, length) in enumerate(segments):
            fill.append((src, source_pattern(length, seed=n)))
        for src, dst, length in segments:
            fill.append((dst - GUARD, b"\xA5" * GUARD))
            fill.append((dst + length, b"\xA5" * GUARD))
            end = max(end, length)
        total = sum(length for _, _, length in segments)
        dma, out = _run_fresh(program, fill, 16 * total + 100_000)
        out["copied"], out["inside"] = True, True
        for n, (src, dst, length) in enumerate(segments):
            got = dma.mem_read(dst, length)
            diff = _first_difference(got, source_pattern(length, seed=n))
            if diff is not None:
                out["copied"] = False
                out.setdefault("first_wrong", [n, diff])
            if dma.mem_read(dst - GUARD, GUARD) + dma.mem_read(dst + length, GUARD) != b"\xA5" * 2 * GUARD:
                out["inside"] = False
        out["mnemonics"] = sorted(set(_mnemonics(program)))
        out["sev_count"] = _mnemonics(program).count("DMASEV")
        out["ends"] = _mnemonics(program)[-2:]
        return out
    except Exception as e:
        return {"error": _why(e)}


# --- observers ----------------------------------------------------------------------------------
@observe("mappings")
def observe_mappings(ns):
    """The DMA mappings of the PL330's container: [[iova, size, prot]] (prot: 1 read, 2 write)."""
    from vfiolab.widgets.iommu import mappings_of
    return mappings_of(real_board(ns), PL330)


@observe("memcpy")
def observe_memcpy(ns):
    from vfiolab.hw.pl330 import memcpy_program
    gen = ns["memcpy_microcode"]
    cases = [_copy_case(lambda: gen(src, dst, n), [(src, dst, n)]) for src, dst, n in MEMCPY_CASES]
    src, dst, n = MEMCPY_CASES[0]
    try:
        cases[0]["library"] = bytes(gen(src, dst, n)) == memcpy_program(src, dst, n)
    except Exception:
        pass
    return cases


@observe("ex3")
def observe_ex3(ns):
    board = real_board(ns)
    dst = bytes(memoryview(ns["dst_buf"]).cast("B")[DST_EX3:DST_EX3 + 0x2000])
    engine = _engine(board)
    efd = ns["efd"]
    return {"dst": dst, "ris": engine.readl(0x024), "fsrc": engine.readl(0x034),
            "masked": board.vfio_irq_masked(PL330, EVENT_IRQ),
            "eventfd_unread": bool(board.poll([efd], 0))}


# Destination areas whose bytes the PL330 must have written itself: (name, IOVA, length).
DEVICE_AREAS = ([("ex3", DST_IOVA + DST_EX3, 0x2000)]
                + [(f"ex4 segment {i}", DST_IOVA + d, n) for i, (_, d, n) in enumerate(EX4_SEGMENTS)]
                + [("ex5", DST_IOVA + EX5_START, EX5_LENGTH)])


def _first_unwritten(written, start, length):
    """The first IOVA of [start, start + length) outside every (iova, size) in written, or None."""
    at = start
    for iova, size in written:                  # sorted and merged
        if iova <= at < iova + size:
            at = iova + size
    return at if at < start + length else None


@observe("device_wrote")
def observe_device_wrote(ns):
    """For each area, the first byte the PL330 did not write (None: it wrote them all)."""
    written = real_board(ns).dma_writes(PL330)
    return {name: _first_unwritten(written, iova, n) for name, iova, n in DEVICE_AREAS}


@observe("ex4_board")
def observe_ex4_board(ns):
    return bytes(memoryview(ns["dst_buf"]).cast("B")[DST_EX4:DST_EX4 + 0x1000])


@observe("ex4_cases")
def observe_ex4_cases(ns):
    gen = ns["sg_microcode"]
    return [_copy_case(lambda: gen(segments), segments) for segments in SG_CASES]


@observe("ex5_board")
def observe_ex5_board(ns):
    return bytes(memoryview(ns["dst_buf"]).cast("B")[DST_EX5:DST_EX5 + EX5_AREA])


@observe("ex5_cases")
def observe_ex5_cases(ns):
    gen = ns["fill_microcode"]
    out = []
    for dst, n in FILL_CASES:
        try:
            program = bytes(gen(dst, n))
            dma, res = _run_fresh(program, [(dst - GUARD, b"\xFF" * (n + 2 * GUARD))], 16 * n + 100_000)
            res["zeroed"] = dma.mem_read(dst, n) == bytes(n)
            res["inside"] = dma.mem_read(dst - GUARD, GUARD) + dma.mem_read(dst + n, GUARD) == b"\xFF" * 2 * GUARD
            res["mnemonics"] = sorted(set(_mnemonics(program)))
            out.append(res)
        except Exception as e:
            out.append({"error": _why(e)})
    return out


def _rect_case(gen, src, dst, width, rows, src_stride, dst_stride):
    """Run rect_microcode for one rectangle: every row copied, every other byte of the
    destination area (the gaps between rows, GUARD bytes around it) untouched?"""
    try:
        program = bytes(gen(src, dst, width, rows, src_stride, dst_stride))
        source = source_pattern(rows * src_stride)
        span = rows * dst_stride + 2 * GUARD
        dma, out = _run_fresh(program, [(src, source), (dst - GUARD, b"\xA5" * span)],
                              64 * rect_beats(width, rows) + 100_000)
        area = dma.mem_read(dst - GUARD, span)
        want = bytearray(b"\xA5" * span)
        for r in range(rows):
            at = GUARD + r * dst_stride
            want[at:at + width] = source[r * src_stride:r * src_stride + width]
        out["copied"] = out["inside"] = True
        for r in range(rows):
            at = GUARD + r * dst_stride
            diff = _first_difference(area[at:at + width], want[at:at + width])
            if diff is not None:
                out["copied"] = False
                out["first_wrong"] = [r, diff]
                break
        out["inside"] = area == bytes(want) or not out["copied"]
        out["mnemonics"] = sorted(set(_mnemonics(program)))
        return out
    except Exception as e:
        return {"error": _why(e)}


@observe("rect")
def observe_rect(ns):
    gen = ns["rect_microcode"]
    return [_rect_case(gen, *case) for case in RECT_CASES]


@observe("again")
def observe_again(ns):
    """Last: your memcpy_start / memcpy_wait once more, on a size and alignment of our choice."""
    board = real_board(ns)
    ns["memcpy_start"](SRC_IOVA + 0x123, DST_IOVA + DST_AGAIN + 5, 777)
    if not board.poll([ns["efd"]], 1000):       # a wait that reads a silent eventfd would hang
        return {"copied": False, "masked": None, "ris": 0, "why": "no interrupt came"}
    ns["memcpy_wait"]()
    got = bytes(memoryview(ns["dst_buf"]).cast("B")[DST_AGAIN + 5:DST_AGAIN + 5 + 777])
    return {"copied": got == source_pattern(BUF_SIZE)[0x123:0x123 + 777],
            "masked": board.vfio_irq_masked(PL330, EVENT_IRQ), "ris": _engine(board).readl(0x024)}


# --- public checks ------------------------------------------------------------------------------
def _mapping(seen, iova, name):
    for start, size, prot in seen["mappings"] or []:
        if start == iova:
            return size, prot
    raise AssertionError(f"nothing is mapped at IOVA 0x{iova:x} (the {name}); mapped: "
                         + (", ".join(f"0x{s:x}" for s, _, _ in seen["mappings"]) or "nothing"))


BUFFERS = [(CODE_IOVA, CODE_SIZE, "microcode"), (SRC_IOVA, BUF_SIZE, "source"),
           (DST_IOVA, BUF_SIZE, "destination")]


@check("ex1-mapped", points=2)
def mapped(seen):
    """The microcode, source and destination buffers are mapped at their IOVAs, whole."""
    for iova, size, name in BUFFERS:
        got, _ = _mapping(seen, iova, name)
        expect_equal(got, size, f"size of the {name} mapping at 0x{iova:x}")


@check("ex1-device-can", points=1)
def device_can(seen):
    """The device may read the microcode and the source, and write the destination."""
    for iova, need, name in [(CODE_IOVA, READ, "microcode"), (SRC_IOVA, READ, "source"),
                             (DST_IOVA, WRITE, "destination")]:
        _, prot = _mapping(seen, iova, name)
        expect(prot & need, f"the {name} mapping lacks VFIO_DMA_MAP_FLAG_"
               f"{'READ' if need == READ else 'WRITE'}: the PL330 must "
               f"{'read' if need == READ else 'write'} it")


def _case_hint(case, what, inside=False):
    if "error" in case:
        return f"{what}: your generator failed: {case['error']}"
    if case["faults"]:
        return f"{what}: channel 0 faulted ({', '.join(case['faults'])}) at PC 0x{case['pc']:x}"
    if case["state"] != "stopped":
        return f"{what}: channel 0 is still '{case['state']}' after {case['cycles']} cycles (no DMAEND?)"
    if not case["copied"]:
        piece, offset = case.get("first_wrong", [0, 0])
        return (f"{what}: the destination is wrong" + (f" in segment {piece}" if piece else "")
                + f", first at byte {offset}")
    if inside and not case["inside"]:
        return f"{what}: bytes just before or after the destination changed"
    return None


def judge_memcpy(seen, indexes, inside=False):
    for i in indexes:
        src, dst, n = MEMCPY_CASES[i]
        hint = _case_hint(seen["memcpy"][i], f"memcpy_microcode(0x{src:x}, 0x{dst:x}, {n})", inside)
        expect(hint is None, hint)


@check("ex2-aligned", points=3)
def memcpy_aligned(seen):
    """memcpy_microcode copies 4096, 1000 and 65536 bytes between 8-byte aligned addresses."""
    judge_memcpy(seen, range(PUBLIC_MEMCPY))
    expect(not seen["memcpy"][0].get("library"), "that is vfiolab's memcpy_program, byte for byte: "
           "write the microcode yourself")


@check("ex3-copies", points=2)
def two_copies(seen):
    """Both 4 KiB copies of the test cell reached the destination, written by the PL330."""
    expect_bytes(seen["ex3"]["dst"], source_pattern(BUF_SIZE)[0:0x2000],
                 f"destination 0x{DST_IOVA + DST_EX3:x}..+0x2000")
    by_the_device(seen, "ex3")


def copies_landed(seen):
    expect(seen["ex3"]["dst"] == source_pattern(BUF_SIZE)[0:0x2000], "first make both copies of "
           "the test cell land (ex3-copies)")


@check("ex3-event-cleared", points=1)
def event_cleared(seen):
    """memcpy_wait cleared the event (INTCLR): INT_EVENT_RIS bit 0 is clear."""
    copies_landed(seen)
    expect(not seen["ex3"]["ris"] & 1 << EVENT, "INT_EVENT_RIS still has event 0 set after the two "
           "copies: memcpy_wait must write 1 << EVENT to INTCLR once the interrupt came (and unmask "
           "the line, or the second wait never sees its interrupt)")


def by_the_device(seen, *names):
    """Fail unless the PL330 wrote the areas itself (right bytes put there by the CPU do not count)."""
    for name in names:
        missing = seen["device_wrote"][name]
        expect(missing is None, f"the right bytes are in place, but the PL330 never wrote the one at "
               f"IOVA 0x{missing or 0:x} ({name}): the copy must be the device's DMA, not the CPU's")


def _sg_expected():
    src = source_pattern(BUF_SIZE)
    out = bytearray(0x1000)
    for s, d, n in EX4_SEGMENTS:
        out[d - DST_EX4:d - DST_EX4 + n] = src[s:s + n]
    return bytes(out)


@check("ex4-board", points=2)
def sg_board(seen):
    """The scatter-gather program made the PL330 put every segment where it belongs on the board."""
    expect_bytes(seen["ex4_board"], _sg_expected(), f"destination 0x{DST_IOVA + DST_EX4:x}..+0x1000")
    by_the_device(seen, *(f"ex4 segment {i}" for i in range(len(EX4_SEGMENTS))))


def _fill_expected():
    area = bytearray(b"\xFF" * EX5_AREA)
    area[EX5_START - DST_EX5:EX5_START - DST_EX5 + EX5_LENGTH] = bytes(EX5_LENGTH)
    return bytes(area)


@check("ex5-board", points=2)
def fill_board(seen):
    """fill_microcode made the PL330 zero exactly 1000 bytes on the board, starting 3 bytes in."""
    expect_bytes(seen["ex5_board"], _fill_expected(), f"destination 0x{DST_IOVA + DST_EX5:x}..+0x800")
    by_the_device(seen, "ex5")


def rect_hint(case, args):
    """None when the rectangle landed inside its bounds, else what went wrong."""
    src, dst, width, rows, src_stride, dst_stride = args
    what = (f"rect_microcode(0x{src:x}, 0x{dst:x}, width={width}, rows={rows}, "
            f"src_stride={src_stride}, dst_stride={dst_stride})")
    if "error" in case:
        return f"{what}: your generator failed: {case['error']}"
    if case["faults"]:
        return f"{what}: channel 0 faulted ({', '.join(case['faults'])}) at PC 0x{case['pc']:x}"
    if case["state"] != "stopped":
        return f"{what}: channel 0 is still '{case['state']}' after {case['cycles']} cycles (no DMAEND?)"
    if not case["copied"]:
        row, offset = case["first_wrong"]
        return f"{what}: row {row} is wrong, first at its byte {offset}"
    if not case["inside"]:
        return (f"{what}: bytes between the rows or around the rectangle changed: each row is "
                f"`width` bytes, the rest of its stride is not yours")
    return None


@check("ex6-rect", points=1)
def rect_correct(seen):
    """rect_microcode copies a 1003 x 300 rectangle between strides 1536 and 1032, and nothing else."""
    hint = rect_hint(seen["rect"][0], RECT_CASES[0])
    expect(hint is None, hint)


@check("ex6-compact", points=1)
def rect_compact(seen):
    """rect_microcode's program for that rectangle is at most 512 bytes (it loops over the rows)."""
    case = seen["rect"][0]
    expect("error" not in case, f"your generator failed: {case.get('error')}")
    expect(case["size"] <= RECT_MAX_BYTES, f"the program is {case['size']} bytes for 300 rows: "
           f"at most {RECT_MAX_BYTES}. Loop over the rows (DMALP) and move SAR and DAR on to the "
           "next row inside the loop (DMAADDH), instead of one DMAMOV SAR/DAR per row")


@check("ex6-bus-speed", points=1)
def rect_bus_speed(seen):
    """That copy runs within 5% of the bus: at most rect_cycle_budget(1003, 300) cycles."""
    case, (_, _, width, rows, _, _) = seen["rect"][0], RECT_CASES[0]
    hint = rect_hint(case, RECT_CASES[0])
    expect(hint is None, f"first make the copy correct: {hint}")
    budget = rect_cycle_budget(width, rows)
    expect(case["cycles"] <= budget, f"{case['cycles']} cycles; the copy needs "
           f"{rect_beats(width, rows)} beats, one a cycle, so {budget} is the most allowed. "
           "Barriers (DMARMB, DMAWMB) make loads and stores take turns; a burst of 16 beats "
           "moves 16 times more per instruction than a burst of 1")
