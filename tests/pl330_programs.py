"""PL330 programs shared by the PL330 tests: the fixed agreement suite and random valid programs.

A case is a dict: `programs` [(channel, address, microcode bytes)], `inten`, and `concurrent`
(start every channel, then run; otherwise start and run one channel at a time, as QEMU does).
Every case uses the same memory layout: code at CODE, source data in [SRC, SRC + REGION),
destination in [DST, DST + REGION), both filled by fill_memory(seed).
"""
import random

from vfiolab.hw.pl330 import assemble, memcpy_ccr, memcpy_program

CODE, SRC, DST, REGION = 0x10000, 0x100000, 0x200000, 0x10000


def fill_memory(seed):
    rng = random.Random(seed)
    return rng.randbytes(REGION), bytes([0xA5]) * REGION


def ccr(src_size, src_len, dst_size, dst_len, src_inc=1, dst_inc=1, swap=0):
    lg = {1: 0, 2: 1, 4: 2, 8: 3, 16: 4}
    return (src_inc | lg[src_size] << 1 | (src_len - 1) << 4 | dst_inc << 14 |
            lg[dst_size] << 15 | (dst_len - 1) << 18 | swap << 28)


def case(name, *programs, inten=0, concurrent=False):
    return {"name": name, "programs": list(programs), "inten": inten, "concurrent": concurrent}


def one(name, text, **kw):
    return case(name, (0, CODE, assemble(text, base=CODE)), **kw)


def fixed_suite():
    cases = []
    # Linux's memcpy shapes: burst sizing from alignment, nested loops, leftover beats.
    for length, src_off, dst_off in [(1, 0, 0), (7, 1, 3), (64, 0, 0), (100, 4, 8),
                                     (4096 + 24, 0, 8), (40000, 0, 0), (65000, 2, 6)]:
        for barriers in (False, True):      # Linux's microcode for r1p0 and later, for r0p0
            cases.append(case(f"linux memcpy {length}{' with barriers' if barriers else ''}",
                              (0, CODE, memcpy_program(SRC + src_off, DST + dst_off, length,
                                                       event=1, barriers=barriers))))
    cases.append(case("linux memcpy, no barriers",
                      (0, CODE, memcpy_program(SRC, DST, 20000, event=None, barriers=False))))
    # Every burst size and length, one burst each way.
    for size in (1, 2, 4, 8):
        for blen in range(1, 17):
            cases.append(one(f"burst {blen}x{size}", f"""
                DMAMOV CCR, 0x{ccr(size, blen, size, blen):08x}
                DMAMOV SAR, 0x{SRC + 0x40:x}
                DMAMOV DAR, 0x{DST + 0x80:x}
                DMALD
                DMAST
                DMAEND"""))
    # Unaligned first beats (the same misalignment on both sides).
    for size, mis in [(2, 1), (4, 3), (8, 5), (8, 1)]:
        cases.append(one(f"unaligned {size}+{mis}", f"""
            DMAMOV CCR, 0x{ccr(size, 4, size, 4):08x}
            DMAMOV SAR, 0x{SRC + 0x100 + mis:x}
            DMAMOV DAR, 0x{DST + 0x300 + mis:x}
            DMALP 3
            DMALD
            DMAST
            DMALPEND
            DMAEND"""))
    # Narrower destination beats, fixed addresses.
    cases.append(one("8-byte reads, 2-byte writes", f"""
        DMAMOV CCR, 0x{ccr(8, 2, 2, 8):08x}
        DMAMOV SAR, 0x{SRC:x}
        DMAMOV DAR, 0x{DST:x}
        DMALP 5
        DMALD
        DMAST
        DMALPEND
        DMAEND"""))
    cases.append(one("1-byte reads, 8-byte writes", f"""
        DMAMOV CCR, 0x{ccr(1, 16, 8, 2):08x}
        DMAMOV SAR, 0x{SRC:x}
        DMAMOV DAR, 0x{DST:x}
        DMALD
        DMAST
        DMAEND"""))
    cases.append(one("fixed source and destination", f"""
        DMAMOV CCR, 0x{ccr(4, 4, 4, 4, src_inc=0, dst_inc=0):08x}
        DMAMOV SAR, 0x{SRC + 0x20:x}
        DMAMOV DAR, 0x{DST + 0x40:x}
        DMALD
        DMAST
        DMAEND"""))
    # Nested loops with both counters, explicit.
    cases.append(one("nested loops", f"""
        DMAMOV CCR, 0x{memcpy_ccr(8, 4):08x}
        DMAMOV SAR, 0x{SRC:x}
        DMAMOV DAR, 0x{DST:x}
        DMALP LC0, 7
        DMALP LC1, 9
        DMALD
        DMAST
        DMALPEND LC1
        DMAADDH DAR, 8
        DMALPEND LC0
        DMAEND"""))
    # DMAADDH and DMAADNH.
    cases.append(one("DMAADDH and DMAADNH", f"""
        DMAMOV CCR, 0x{ccr(4, 2, 4, 2):08x}
        DMAMOV SAR, 0x{SRC + 0x1000:x}
        DMAMOV DAR, 0x{DST + 0x1000:x}
        DMAADDH SAR, 0x124
        DMAADNH DAR, -0x40
        DMALD
        DMAST
        DMAADNH SAR, -65536
        DMAADDH DAR, 65535
        DMAEND"""))
    # DMASTZ.
    cases.append(one("DMASTZ", f"""
        DMAMOV CCR, 0x{ccr(8, 1, 8, 16):08x}
        DMAMOV DAR, 0x{DST + 0x800:x}
        DMALP 4
        DMASTZ
        DMALPEND
        DMAEND"""))
    # Events, with and without INTEN.
    for inten in (0, 0x0005, 0xFFFF):
        cases.append(one(f"events, INTEN 0x{inten:x}", """
            DMASEV E0
            DMASEV E2
            DMASEV E15
            DMAEND""", inten=inten))
    # One channel waits for an event another sets.
    waiter = assemble(f"""
        DMAWFE E3
        DMAMOV CCR, 0x{memcpy_ccr(8, 2):08x}
        DMAMOV SAR, 0x{SRC:x}
        DMAMOV DAR, 0x{DST:x}
        DMALD
        DMAST
        DMASEV E4
        DMAEND""", base=CODE)
    setter = assemble("DMASEV E3\nDMAEND", base=CODE + 0x100)
    cases.append(case("DMAWFE woken by another channel's DMASEV",
                      (1, CODE, waiter), (0, CODE + 0x100, setter), inten=0x10))
    # Several channels at once, each on its own slice.
    programs = [(ch, CODE + 0x200 * ch,
                 memcpy_program(SRC + 0x2000 * ch, DST + 0x2000 * ch, 0x1000 + 8 * ch, event=ch))
                for ch in range(4)]
    cases.append(case("four channels at once", *programs, inten=0xF, concurrent=True))
    cases.append(case("four channels one after another", *programs, inten=0x3))
    # Faults both models agree on.
    cases.append(one("undefined instruction 0xff", "DMANOP\n.byte 0xff\nDMAEND"))
    cases.append(one("DMAKILL from a channel program", f"""
        DMAMOV SAR, 0x1234
        DMAKILL
        DMAMOV SAR, 0x5678"""))
    return cases


def random_program(rng, base=CODE, dst_lo=DST, span=REGION):
    """A random program both models must run identically: every load's bytes are stored, the
    MFIFO never holds more than 256 bytes (QEMU's size) and destination beats are never wider
    than source beats (kept simple: QEMU has faulted such programs). It writes only to
    [dst_lo, dst_lo + span)."""
    lines = []
    for _ in range(rng.randint(1, 5)):
        src_size = rng.choice((1, 2, 4, 8))
        src_len = rng.randint(1, 16)
        nbytes = src_size * src_len
        shapes = [(s, nbytes // s) for s in (1, 2, 4, 8)
                  if s <= src_size and nbytes % s == 0 and nbytes // s <= 16]
        dst_size, dst_len = rng.choice(shapes)
        src_inc, dst_inc = rng.random() < 0.85, rng.random() < 0.85
        value = ccr(src_size, src_len, dst_size, dst_len, int(src_inc), int(dst_inc))
        value |= rng.randrange(8) << 8 | rng.randrange(8) << 11 | rng.randrange(8) << 22
        lines.append(f"DMAMOV CCR, 0x{value:08x}")
        lines.append(f"DMAMOV SAR, 0x{SRC + rng.randrange(0, REGION // 2, 8):x}")
        lines.append(f"DMAMOV DAR, 0x{dst_lo + rng.randrange(0, span // 2 - 8192, 8):x}")
        pairs = rng.choice((1, 1, 2)) if nbytes <= 128 else 1
        body = ["DMALD"] * pairs
        if rng.random() < 0.3:
            body.append("DMARMB")
        body += ["DMAST"] * pairs
        if rng.random() < 0.3:
            body.append("DMAWMB")
        if rng.random() < 0.2:
            body.insert(rng.randrange(len(body) + 1), "DMANOP")
        shape = rng.random()
        if shape < 0.3:
            lines += body
        elif shape < 0.7:
            lines.append(f"DMALP {rng.randint(1, 12)}")
            lines += body
            lines.append("DMALPEND")
        else:
            lines.append(f"DMALP {rng.randint(1, 5)}")
            lines.append(f"DMALP {rng.randint(1, 6)}")
            lines += body
            lines.append("DMALPEND")
            if rng.random() < 0.5:
                lines.append(f"DMAADDH DAR, {rng.randrange(0, 64, 8)}")
            lines.append("DMALPEND")
        extra = rng.random()
        if extra < 0.15:
            lines.append(f"DMAMOV CCR, 0x{ccr(8, rng.randint(1, 4), 8, 1):08x}")
            lines.append(f"DMAMOV DAR, 0x{dst_lo + rng.randrange(span // 2, span - 64, 8):x}")
            # QEMU moves DAR again each time a DMASTZ waits for room in the write queue: the
            # barrier keeps the queue empty so that QEMU bug stays out of the comparison.
            lines.append("DMAWMB")
            lines.append("DMASTZ")
        elif extra < 0.3:
            lines.append(f"DMASEV E{rng.randrange(16)}")
    if rng.random() < 0.5:
        lines.append(f"DMASEV E{rng.randrange(16)}")
    lines.append("DMAEND")
    return assemble("\n".join(lines), base=base)


def random_case(seed):
    """One channel, or (one case in four) two or three channels started together in our engine,
    each writing its own slice (QEMU runs them one after another: the results must agree)."""
    rng = random.Random(seed)
    inten = rng.choice((0, 0xFFFF, rng.randrange(0x10000)))
    if rng.random() < 0.75:
        return case(f"random {seed}", (0, CODE, random_program(rng)), inten=inten)
    channels = rng.sample(range(8), rng.randint(2, 3))
    span = REGION // len(channels) // 8 * 8
    programs = [(ch, CODE + 0x400 * i,
                 random_program(rng, CODE + 0x400 * i, DST + span * i, span))
                for i, ch in enumerate(channels)]
    return case(f"random {seed}, channels {channels}", *programs, inten=inten, concurrent=True)
