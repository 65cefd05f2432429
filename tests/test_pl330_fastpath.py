"""The fast path is exact: the same programs run with run() (whole periods of a steadily repeating
loop skipped at once, vfiolab/csrc/pl330.c) and with stepping only end in the same memory,
registers, thread states, faults, events and cycle count."""
import random

import pytest

from vfiolab.hw.pl330 import PL330, assemble, memcpy_program

CODE, MEM = 0x1000, 1 << 20           # 1 MiB of memory: copies can run off its end


def snapshot(dma):
    regs = {off: dma.readl(off) for off in [0x000, 0x004, 0x024, 0x028, 0x030, 0x034, 0x038]}
    return {"memory": dma.mem_read(0, MEM), "threads": dma.threads(), "regs": regs,
            "irq": (dma.irq_lines, dma.abort_line), "cycles": dma.cycles}


def both_ways(setup, **config):
    """Run setup(dma) then the engine, fast and stepping; return both snapshots and the fast
    engine's fast-path iteration count."""
    results = []
    for fast in (True, False):
        dma = PL330(memory_size=MEM, **config)
        setup(dma)
        if fast:
            dma.run()
        else:
            dma.run_stepping()
        results.append((snapshot(dma), dma.fast_iterations, dma.idle))
    (a, iterations, idle_a), (b, _, idle_b) = results
    assert idle_a and idle_b
    for key in a:
        assert a[key] == b[key], f"fast path and stepping differ in {key}"
    return iterations


def program_setup(code, data_seed, channel=0, inten=0, extra=()):
    def setup(dma):
        dma.mem_write(0x10000, random.Random(data_seed).randbytes(MEM - 0x10000))
        dma.writel(0x020, inten)
        for ch, pc, prog in extra:
            dma.mem_write(pc, prog)
            dma.start(ch, pc)
        dma.mem_write(CODE, code)
        dma.start(channel, CODE)
    return setup


def test_linux_memcpy_programs():
    rng = random.Random(1)
    used_fast_path = 0
    for i in range(60):
        src = 0x10000 + rng.randrange(0, 0x40000)
        dst = 0x60000 + rng.randrange(0, 0x40000)
        length = rng.choice((rng.randint(1, 300), rng.randint(1, 40000), rng.randint(1, 200000)))
        size = rng.choice((None, 1, 2, 4, 8))
        if size and (length % size or (src | dst) % size):
            size = None
        code = memcpy_program(src, dst, length, burst_size=size,
                              burst_len=rng.randint(1, 16) if size else None, event=i % 16,
                              barriers=bool(i % 2))
        used_fast_path += both_ways(program_setup(code, i, inten=rng.randrange(1 << 16))) > 0
    assert used_fast_path > 40


def test_copies_running_off_the_end_of_memory():
    rng = random.Random(2)
    used = 0
    for i in range(20):
        src, dst = rng.choice([(0x20000, MEM - rng.randrange(8, 5000, 8)),
                               (MEM - rng.randrange(8, 5000, 8), 0x20000)])
        code = memcpy_program(src, dst, 0x8000, burst_size=8, burst_len=rng.randint(1, 16))
        used += both_ways(program_setup(code, i)) > 0
    assert used >= 15         # the others fault before the copy has run steadily twice


def test_overlapping_copies():
    for i, (src, dst, barriers) in enumerate([(0x20000, 0x20040, True), (0x20040, 0x20000, True),
                                              (0x20000, 0x20008, True), (0x20000, 0x20040, False),
                                              (0x20000, 0x20000, True)]):
        body = "DMALD\nDMARMB\nDMAST\nDMAWMB" if barriers else "DMALD\nDMAST\nDMAWMB"
        code = assemble(f"""
            DMAMOV CCR, SB8 SS64 DB8 DS64
            DMAMOV SAR, 0x{src:x}
            DMAMOV DAR, 0x{dst:x}
            DMALP 200
            {body}
            DMALPEND
            DMAEND""", base=CODE)
        both_ways(program_setup(code, i))


def test_a_copy_over_its_own_code():
    code = assemble("""
        DMAMOV CCR, SB2 SS64 DB2 DS64
        DMAMOV SAR, 0x20000
        DMAMOV DAR, 0x1000
        DMALP 100
        DMALD
        DMARMB
        DMAST
        DMAWMB
        DMALPEND
        DMAEND""", base=CODE)
    both_ways(program_setup(code, 3))


def test_another_channel_waiting_for_the_copys_event():
    waiter = assemble("DMAWFE E2\nDMAMOV SAR, 0x99\nDMASEV E9\nDMAEND", base=0x3000)
    code = memcpy_program(0x20000, 0x80000, 100000, event=2)
    assert both_ways(program_setup(code, 4, inten=1 << 9, extra=[(5, 0x3000, waiter)])) > 0


def test_two_channels_copying_at_once():
    a = memcpy_program(0x20000, 0x80000, 30000, event=0)
    b = memcpy_program(0x40000, 0xA0000, 30000, event=1)
    both_ways(program_setup(a, 5, channel=0, inten=3, extra=[(1, 0x3000, b)]))


def random_ccr_loop(rng):
    ccr = rng.randrange(1 << 32)
    if rng.random() < 0.7:      # mostly shapes the fast path takes: equal bytes, incrementing
        size, blen = rng.choice((0, 1, 2, 3)), rng.randrange(16)
        ccr = (ccr & ~0x7FFFFFFF) | 1 | size << 1 | blen << 4 | 1 << 14 | size << 15 | blen << 18
        ccr &= 0x7FFFFFFF
    body = rng.choice(("DMALD\nDMARMB\nDMAST\nDMAWMB", "DMALD\nDMAST\nDMAWMB",
                       "DMALD\nDMANOP\nDMARMB\nDMAST\nDMANOP\nDMAWMB", "DMALD\nDMAST"))
    return f"""
        DMAMOV CCR, 0x{ccr:08x}
        DMAMOV SAR, 0x{rng.randrange(0x10000, MEM + 0x100):x}
        DMAMOV DAR, 0x{rng.randrange(0x10000, MEM + 0x100):x}
        DMALP LC0, {rng.randint(1, 8)}
        DMALP LC1, {rng.randint(1, 256)}
        {body}
        DMALPEND LC1
        DMALPEND LC0
        DMASEV E{rng.randrange(16)}
        DMAEND"""


def test_random_ccr_values_and_addresses():
    rng = random.Random(6)
    for i in range(250):
        both_ways(program_setup(assemble(random_ccr_loop(rng), base=CODE), i,
                                inten=rng.randrange(1 << 16)))


@pytest.mark.parametrize("mfifo_lines", [2, 16])
def test_small_mfifo(mfifo_lines):
    code = memcpy_program(0x20000, 0x80000, 50000, burst_size=8, burst_len=16)
    both_ways(program_setup(code, 7), mfifo_lines=mfifo_lines)


def holey_bus(log, seed):
    """A bus like the sim board's IOMMU: random 4 KiB pages unmapped, every fault logged."""
    from vfiolab._hw import ffi
    backing = ffi.new("uint8_t[]", MEM)
    holes = set(random.Random(seed).sample(range(16, MEM >> 12), 40))

    @ffi.callback("uint8_t *(void *, uint64_t, uint64_t *, int)")
    def translate(ctx, addr, length, access):
        page = addr >> 12
        if addr >= MEM or page in holes:
            log.append((addr, length[0], access))   # an IOMMU logs all three
            return ffi.NULL
        end = addr + length[0]
        limit = (page + 1) << 12
        while limit < min(end, MEM) and (limit >> 12) not in holes:
            limit += 4096
        length[0] = min(end, limit, MEM) - addr
        return backing + addr

    bus = ffi.new("struct vfl_bus *", {"translate": translate, "ctx": ffi.NULL})
    return bus, translate, backing


def test_faults_reach_the_bus_once_each_way():
    """An IOMMU logs every translation that fails: the fast path must not ask twice, so the
    fault log is the same with and without it."""
    from vfiolab._hw import ffi
    rng = random.Random(8)
    for i in range(40):
        src = rng.randrange(0x10000, MEM - 0x10000, 8)
        dst = rng.randrange(0x10000, MEM - 0x10000, 8)
        length = rng.randrange(8, 0x30000, 8)
        code = memcpy_program(src, dst, length, burst_size=8, burst_len=rng.randint(1, 16),
                              barriers=bool(i % 2), event=1)
        runs = []
        for fast in (True, False):
            log = []
            bus, keep, backing = holey_bus(log, i)
            dma = PL330.on_bus(bus)
            dma.mem_write(0x1000, code)
            data = random.Random(i).randbytes(0x20000)
            for off in range(0x10000, MEM, 0x20000):
                try:
                    dma.mem_write(off, data)
                except ValueError:
                    pass
            log.clear()
            dma.start(0, 0x1000)
            dma.run(fast=fast)
            runs.append((log, dma.threads(), dma.irq_lines, dma.abort_line,
                         bytes(ffi.buffer(backing))))
        assert runs[0][0] == runs[1][0], f"program {i}: fault logs differ"
        assert runs[0][1:] == runs[1][1:], f"program {i}: state differs"


def random_nested_loop(rng, base):
    """Linux's shape and its neighbours: LC0 around LC1 around loads and stores without barriers,
    with DMANOP and DMAADDH inside, random burst shapes (equal bytes each side, or not)."""
    size, blen = rng.choice((0, 1, 2, 3)), rng.randrange(16)
    ccr = 1 | size << 1 | blen << 4 | 1 << 14 | size << 15 | blen << 18
    if rng.random() < 0.2:
        ccr = ccr & ~(0xF << 18) | rng.randrange(16) << 18       # stores move another amount
    inner = rng.choice(("DMALD\nDMAST", "DMALD\nDMANOP\nDMAST", "DMALD\nDMALD\nDMAST\nDMAST",
                        "DMALD\nDMAST\nDMANOP\nDMANOP",
                        f"DMALD\nDMAST\nDMAADDH SAR, {8 * rng.randint(0, 8)}\n"
                        f"DMAADDH DAR, {8 * rng.randint(0, 8)}",
                        "DMALD\nDMARMB\nDMAST\nDMAWMB"))
    between = rng.choice(("", "DMANOP", f"DMAADDH DAR, {8 * rng.randint(1, 4)}"))
    return f"""
        DMAMOV CCR, 0x{ccr:08x}
        DMAMOV SAR, 0x{rng.randrange(0x10000, 0x70000, rng.choice((1, 8))):x}
        DMAMOV DAR, 0x{rng.randrange(0x80000, MEM + 0x100, rng.choice((1, 8))):x}
        DMALP LC0, {rng.randint(1, 12)}
        DMALP LC1, {rng.randint(1, 256)}
        {inner}
        DMALPEND LC1
        {between}
        DMALPEND LC0
        DMASEV E{rng.randrange(16)}
        DMAEND"""


def test_barrier_free_nested_loops_one_channel():
    rng = random.Random(10)
    used = 0
    for i in range(120):
        code = assemble(random_nested_loop(rng, CODE), base=CODE)
        used += both_ways(program_setup(code, i, inten=rng.randrange(1 << 16))) > 0
    assert used > 40


def test_barrier_free_nested_loops_on_several_channels_at_once():
    rng = random.Random(11)
    used = 0
    for i in range(60):
        others = [(ch, 0x3000 + 0x400 * ch, assemble(random_nested_loop(rng, 0x3000 + 0x400 * ch),
                                                    base=0x3000 + 0x400 * ch))
                  for ch in range(1, rng.randint(2, 4))]
        code = assemble(random_nested_loop(rng, CODE), base=CODE)
        used += both_ways(program_setup(code, i, extra=others)) > 0
    assert used > 10


def test_two_channels_running_linux_memcpy_side_by_side():
    a = memcpy_program(0x20000, 0x80000, 60000, event=0, barriers=False)
    b = memcpy_program(0x40000, 0xA0000, 60000, event=1, barriers=False)
    assert both_ways(program_setup(a, 12, channel=0, inten=3, extra=[(1, 0x3000, b)])) > 0


def test_running_in_slices_as_the_board_does():
    """The sim board runs the engine a budget of cycles at a time: the fast path stops exactly at
    the budget, so slices add up to the same run as one stepped run."""
    code = memcpy_program(0x20000, 0x80000, 200000, burst_size=8, burst_len=16, barriers=False)
    sliced, stepped = PL330(memory_size=MEM), PL330(memory_size=MEM)
    for dma in (sliced, stepped):
        program_setup(code, 13)(dma)
    stepped.run_stepping()
    while True:
        before = sliced.cycles
        ran = sliced.run(max_cycles=4999, fast=True)
        assert sliced.cycles - before == ran <= 4999
        if sliced.idle:
            break
    assert sliced.fast_iterations > 0
    assert snapshot(sliced) == snapshot(stepped)


def test_a_fault_mid_loop_stops_where_stepping_does():
    """A barrier-free copy running into an unmapped page: the loop is skipped up to the page and
    stepped into it, so SAR, DAR, PC, loop counters, FTR and the IOMMU's log match stepping."""
    from vfiolab._hw import ffi
    holes = sorted(random.Random(100).sample(range(16, MEM >> 12), 40))
    # A run of at least 8 mapped pages, then a hole: the copy's source, then its destination.
    start = next(h for h, nxt in zip(holes, holes[1:]) if nxt - h > 8 and h > 16) + 1
    end = next(h for h in holes if h > start) << 12
    far = next(h for h, nxt in zip(holes, holes[1:]) if nxt - h > 12 and h > end >> 12) + 1
    for i, (src, dst) in enumerate([(start << 12, far << 12), (far << 12, start << 12)]):
        code = memcpy_program(src, dst, end - (start << 12) + 0x800, burst_size=8, burst_len=16,
                              barriers=False)
        runs = []
        for fast in (True, False):
            log = []
            bus, keep, backing = holey_bus(log, 100)
            dma = PL330.on_bus(bus)
            dma.mem_write(0x1000, code)
            log.clear()
            dma.start(0, 0x1000)
            dma.run(fast=fast)
            runs.append((log, dma.threads(), dma.cycles, dma.fast_iterations > 0,
                         bytes(ffi.buffer(backing))))
        assert runs[0][1][1].fault_names, "the copy should have faulted"
        assert runs[0][3], "the fast path should have run up to the fault"
        assert runs[0][:3] == runs[1][:3] and runs[0][4] == runs[1][4]


def rect_program(src, dst, width, rows, src_stride, dst_stride):
    """A 2D copy as lab 02's exercise 6 wants it: per row 16-beat bursts (DMAMOV CCR), a shorter
    one, the tail bytes, then DMAADDH SAR/DAR to the next row; LC0 counts rows."""
    beats, tail = divmod(width, 8)
    bursts, rest = divmod(beats, 16)
    row = []
    if bursts:
        row += ["DMAMOV CCR, SB16 SS64 DB16 DS64"]
        row += [f"DMALP LC1, {bursts}", "DMALD", "DMAST", "DMALPEND LC1"] if bursts > 1 else \
            ["DMALD", "DMAST"]
    if rest:
        row += [f"DMAMOV CCR, SB{rest} SS64 DB{rest} DS64", "DMALD", "DMAST"]
    if tail:
        row += [f"DMAMOV CCR, SB{tail} SS8 DB{tail} DS8", "DMALD", "DMAST"]
    if src_stride > width:
        row.append(f"DMAADDH SAR, {src_stride - width}")
    if dst_stride > width:
        row.append(f"DMAADDH DAR, {dst_stride - width}")
    lines = [f"DMAMOV SAR, 0x{src:x}", f"DMAMOV DAR, 0x{dst:x}"]
    while rows:
        n = min(rows, 256)
        lines += [f"DMALP LC0, {n}", *row, "DMALPEND LC0"] if n > 1 else row
        rows -= n
    return assemble("\n".join(lines + ["DMASEV E0", "DMAEND"]), base=CODE)


def test_2d_copies_with_dmaaddh_between_the_rows():
    """Rows with gaps between them (DMAADDH), CCR changed within a row (DMAMOV CCR): the period
    is one row, its bursts are logged and repeated, shifted by the strides."""
    rng = random.Random(14)
    used = 0
    for i in range(40):
        width = rng.choice((rng.randint(1, 40), rng.randint(100, 700), 128 * rng.randint(1, 4)))
        rows = rng.randint(1, 300)
        ss = width + 8 * rng.randint(0, 40)
        ds = width + 8 * rng.randint(0, 40)
        ss, ds = -(-ss // 8) * 8, -(-ds // 8) * 8
        if rows * max(ss, ds) > 0x30000:
            rows = 0x30000 // max(ss, ds)
        code = rect_program(0x20000 + 8 * rng.randint(0, 64), 0x60000 + 8 * rng.randint(0, 64),
                            width, rows, ss, ds)
        used += both_ways(program_setup(code, i, inten=1)) > 0
    assert used > 25


def test_2d_copies_over_unmapped_pages_fault_as_stepping_does():
    """The strided copy's spans (gaps included) must translate from a byte already moved; a
    hole in a gap or a row ends the skip there, and stepping meets the fault and logs it once."""
    from vfiolab._hw import ffi
    rng = random.Random(15)
    faulted = used = skipped = 0
    for i in range(30):
        width = rng.choice((rng.randint(1, 40), rng.randint(100, 700)))
        ss, ds = -(-(width + 8 * rng.randint(0, 60)) // 8) * 8, -(-(width + 8 * rng.randint(0, 60)) // 8) * 8
        rows = min(rng.randint(50, 300), 0x30000 // max(ss, ds))
        code = rect_program(rng.randrange(0x10000, 0x80000, 8), rng.randrange(0x80000, 0xC0000, 8),
                            width, rows, ss, ds)
        runs = []
        for fast in (True, False):
            log = []
            bus, keep, backing = holey_bus(log, 200 + i)
            dma = PL330.on_bus(bus)
            dma.mem_write(0x1000, code)
            log.clear()
            dma.start(0, 0x1000)
            dma.run(fast=fast)
            runs.append((log, dma.threads(), dma.cycles, bytes(ffi.buffer(backing))))
            skipped = dma.fast_iterations if fast else skipped
        assert runs[0] == runs[1], f"program {i}"
        faulted += bool(runs[0][0])
        used += skipped > 0
    assert faulted > 10 and used > 10
