"""PL330 assembler and disassembler: TRM syntax, loops and labels, errors, exact round trips."""
import random

import pytest

from vfiolab.hw.pl330 import assemble, disassemble, memcpy_program
from vfiolab.hw.pl330_asm import AsmError, ccr_text, ccr_value, instruction_length


def test_encodings_match_the_trm_table():
    code = assemble("""
        DMAEND
        DMAKILL
        DMALD
        DMALDS
        DMALDB
        DMAST
        DMASTS
        DMASTB
        DMASTZ
        DMARMB
        DMAWMB
        DMANOP
        DMASEV E5
        DMAWFE E3, invalid
        DMAWFP P2, periph
        DMALDPB P1
        DMASTPS P3
        DMAFLUSHP P0
        DMAADDH SAR, 0x1234
        DMAADNH DAR, -16
        DMAMOV DAR, 0x89abcdef
        DMAGO C3, 0x1000, ns
    """)
    assert code == bytes([
        0x00, 0x01, 0x04, 0x05, 0x07, 0x08, 0x09, 0x0B, 0x0C, 0x12, 0x13, 0x18,
        0x34, 5 << 3, 0x36, 3 << 3 | 2, 0x31, 2 << 3, 0x27, 1 << 3, 0x29, 3 << 3, 0x35, 0,
        0x54, 0x34, 0x12, 0x5E, 0xF0, 0xFF, 0xBC, 2, 0xEF, 0xCD, 0xAB, 0x89,
        0xA2, 3, 0x00, 0x10, 0, 0])


def test_loops_nest_and_choose_counters():
    code = assemble("""
        DMALP 4          ; LC0
        DMALP 256        ; LC1
        DMALD
        DMAST
        DMALPEND         ; back to the DMALD
        DMALPEND         ; back to the inner DMALP
        DMAEND
    """)
    assert code == bytes([0x20, 3, 0x22, 255, 0x04, 0x08, 0x3C, 2, 0x38, 6, 0x00])


def test_labels_and_explicit_targets():
    code = assemble("""
        DMALP LC1, 2
    top:
        DMANOP
        DMALPEND LC1, top
        DMALPFE
        DMALDS
        DMALPENDS
        DMAMOV SAR, data
    data:
        DMAEND
    """, base=0x100)
    assert code[:5] == bytes([0x22, 1, 0x18, 0x3C, 1])
    assert code[5:8] == bytes([0x05, 0x2D, 1])       # DMALPFE/DMALPENDS: nf=0, LC1, single
    assert code[8:14] == bytes([0xBC, 0]) + (0x10E).to_bytes(4, "little")


def test_ccr_tokens_and_raw_values():
    value = ccr_value("SB16 SS64 SAI DB16 DS64 DAI")
    assert value == (1 | 3 << 1 | 15 << 4 | 1 << 14 | 3 << 15 | 15 << 18)
    assert ccr_value(ccr_text(value)) == value
    assert assemble("DMAMOV CCR, 0x80000001") == bytes([0xBC, 1, 1, 0, 0, 0x80])
    for v in random.Random(1).sample(range(1 << 31), 500):
        assert ccr_value(ccr_text(v)) == v


@pytest.mark.parametrize("text,line,message", [
    ("DMANOP\nDMAFOO", 2, "unknown instruction"),
    ("DMALP 0", 1, "loop count"),
    ("DMALP 257", 1, "loop count"),
    ("DMALP 3\nDMALD", 1, "without DMALPEND"),
    ("DMALPEND", 1, "without an open DMALP"),
    ("DMASEV E32", 1, "event"),
    ("DMAWFP P1, sometimes", 1, "single, burst or periph"),
    ("DMAMOV XAR, 1", 1, "SAR, CCR or DAR"),
    ("DMAMOV CCR, SB17", 1, "burst length"),
    ("DMAMOV CCR, SS12", 1, "sizes"),
    ("\n\nDMAMOV SAR, nowhere", 3, "unknown label"),
    ("DMAADDH SAR, 0x10000", 1, "out of range"),
    ("DMAADNH DAR, 5", 1, "out of range"),
    ("DMAGO C8, 0", 1, "channel"),
    ("a:\na:\nDMAEND", 2, "defined twice"),
    ("DMAEND 3", 1, "operand"),
    (".byte 256", 1, "out of range"),
])
def test_errors_name_the_line(text, line, message):
    with pytest.raises(AsmError) as err:
        assemble(text)
    assert err.value.line == line
    assert f"line {line}:" in str(err.value) and message in str(err.value)


def test_loop_too_long_is_an_error():
    with pytest.raises(AsmError, match="0..255"):
        assemble("DMALP 2\n" + "DMANOP\n" * 300 + "DMALPEND")


def test_disassembly_shows_addresses_and_reassembles():
    code = memcpy_program(0x1000, 0x2000, 100000, event=3)
    text = disassemble(code, base=0x8000)
    assert text.splitlines()[0].startswith("0x00008000: DMAMOV CCR, ")
    assert "DMALPEND LC1, 0x" in text and "DMASEV E3" in text
    assert assemble(text, base=0x8000) == code


def random_valid_instruction(rng):
    while True:
        op = rng.randrange(256)
        n = instruction_length(op)
        if n:
            return bytes([op]) + rng.randbytes(n - 1)


def test_round_trip_of_random_programs():
    rng = random.Random(330)
    for _ in range(3000):
        code = b"".join(random_valid_instruction(rng) for _ in range(rng.randint(1, 20)))
        base = rng.choice((0, 0x1000, rng.randrange(1 << 32)))
        assert assemble(disassemble(code, base), base) == code


def test_round_trip_of_random_bytes():
    rng = random.Random(7)
    for _ in range(3000):
        code = rng.randbytes(rng.randint(0, 40))
        assert assemble(disassemble(code)) == code


def test_every_single_instruction_round_trips():
    for op in range(256):
        for arg in (0, 1, 5, 8, 0x18, 0xFF):
            code = bytes([op, arg, 0x12, 0x34, 0x56, 0x78])
            assert assemble(disassemble(code, 0x400), 0x400) == code


def test_any_text_assembles_or_fails_with_a_line_number():
    """Bad input never escapes as anything but AsmError (with its line), whatever the text."""
    rng = random.Random(11)
    words = ["DMAMOV", "DMALP", "DMALPEND", "DMALPFE", "DMALD", "DMAST", "DMASEV", "DMAWFE",
             "DMAWFP", "DMAGO", "DMAADDH", "DMAADNH", ".byte", "CCR", "SAR", "DAR", "LC0", "LC1",
             "FE", "E3", "P1", "C2", "ns", "invalid", "single", "burst", "periph", "SB16",
             "SS64", "SAF", "ES128", "0x10", "-5", "256", "99999999999", "lbl", "lbl:", ",", ":",
             ";", "#", "//", "0x", "SB0", "é", "\t", "DMALPENDB", "DMALPENDX", "1:", "0x10:"]
    for _ in range(4000):
        text = "\n".join(" ".join(rng.choice(words) for _ in range(rng.randint(0, 5)))
                         for _ in range(rng.randint(1, 6)))
        try:
            assemble(text)
        except AsmError as err:
            assert 1 <= err.line <= text.count("\n") + 1, (text, err)


@pytest.mark.parametrize("text", ["DMAMOV DAR, 0x100000000", "DMAMOV SAR, -1",
                                  "DMAGO C0, -4", "DMAGO C1, 0x100000000, ns"])
def test_addresses_are_range_checked_not_masked(text):
    with pytest.raises(AsmError) as err:
        assemble("DMANOP\n" + text)
    assert err.value.line == 2 and "address" in str(err.value) and "out of range" in str(err.value)
    assert assemble("DMAMOV SAR, 0xFFFFFFFF\nDMAGO C0, 0") == bytes(
        [0xBC, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xA0, 0, 0, 0, 0, 0])


@pytest.mark.parametrize("args", [(0x100000000, 0, 8), (0, 0x100000000, 8), (-8, 0, 8),
                                  (0, 0, 1 << 32)])
def test_memcpy_program_wants_32_bit_addresses(args):
    with pytest.raises(ValueError, match="32-bit addresses"):
        memcpy_program(*args)


def test_memcpy_program_follows_the_revision_as_linux_does():
    """drivers/dma/pl330.c _ldst_memtomem: DMARMB/DMAWMB only before r1p0 (peripheral ID bits
    [23:20] < 1). This engine reports 0x00241330, revision 2: plain DMALD; DMAST."""
    from vfiolab.hw.pl330 import PERIPH_ID, PL330, revision

    def ops(code):
        return [line.split(":", 1)[1].split()[0] for line in disassemble(code).splitlines()]
    dma = PL330()
    reported = sum((dma.readl(0xFE0 + 4 * i) & 0xFF) << 8 * i for i in range(4))
    assert reported == PERIPH_ID == 0x00241330 and revision(PERIPH_ID) == 2
    today = ops(memcpy_program(0x1000, 0x2000, 100000))
    assert "DMARMB" not in today and "DMAWMB" not in today and today.count("DMALD") == 3
    for r0p0 in (0x00041330, 0x00041330 | 0xFF000000):
        old = ops(memcpy_program(0x1000, 0x2000, 100000, periph_id=r0p0))
        assert old.count("DMARMB") == old.count("DMAWMB") == old.count("DMALD") == 3
    assert "DMARMB" in ops(memcpy_program(0x1000, 0x2000, 64, barriers=True))
    assert "DMARMB" not in ops(memcpy_program(0x1000, 0x2000, 64, periph_id=0x00041330,
                                             barriers=False))
