"""The A64 assembler (vfiolab/hw/a64_asm.py) against GNU as: every instruction form it knows, and
lab 03's guest, must assemble to the very bytes binutils gives (binutils-aarch64-linux-gnu)."""
import os
import shutil
import subprocess

import pytest

from vfiolab.guests import BASE, irq_guest, irq_guest_source
from vfiolab.hw.a64_asm import AsmError, assemble

GAS = shutil.which("aarch64-linux-gnu-as")
OBJCOPY = shutil.which("aarch64-linux-gnu-objcopy")
needs_binutils = pytest.mark.skipif(not (GAS and OBJCOPY), reason="binutils-aarch64-linux-gnu is not "
                                    "installed (./bootstrap test installs it)")

# Every form of every mnemonic the assembler takes (the interpreter's subset), as GNU as spells it.
FORMS = """.equ GICD, 0x08000000
start:
    movz x0, #0x1234
    movz x1, #0xbeef, lsl #16
    movz w2, #7, lsl #16
    movk x3, #0xffff, lsl #48
    movn x4, #0
    movn w5, #1
    mov x6, #0x10000
    mov x7, #-1
    mov w8, #-2
    mov x9, #0xff00ff00ff00ff00
    mov x10, x11
    mov w12, w13
    mov sp, x0
    mov x1, sp
    add x0, x1, #4
    add x0, sp, #0x10
    add w0, w1, #0xfff
    add x2, x3, #1, lsl #12
    add x2, x3, #0x5000
    adds x0, x1, #1
    sub x0, x1, #4
    sub sp, sp, #16
    subs w0, w1, #2
    cmp x0, #3
    cmp w0, #0
    cmn x1, #5
    add x0, x1, x2
    add x0, x1, x2, lsl #3
    sub w0, w1, w2, lsr #4
    subs x0, x1, x2, asr #63
    cmp x0, x1
    cmp w0, w1, lsl #2
    neg x0, x1
    and x0, x1, #0xff
    and w0, w1, #0x80000001
    orr x0, x1, #0x5555555555555555
    eor x0, x1, #0xfffffffffffffffe
    ands x0, x1, #0x3c
    tst x0, #1
    tst w0, #0x30
    and x0, x1, x2
    orr x0, x1, x2, lsl #5
    eor w0, w1, w2, ror #7
    ands x0, x1, x2
    bic x0, x1, x2
    orn w0, w1, w2
    eon x0, x1, x2, asr #2
    bics x0, x1, x2
    tst x1, x2
loop:
    b loop
    b start
    bl later
    b.eq loop
    b.ne later
    b.hs later
    b.lo later
    b.mi loop
    b.pl loop
    b.vs loop
    b.vc loop
    b.hi loop
    b.ls loop
    b.ge loop
    b.lt loop
    b.gt loop
    b.le loop
    b.al loop
    cbz x0, loop
    cbnz w1, later
    br x3
    blr x4
    ret
    ret x5
    eret
later:
    ldr w0, [x1]
    ldr w0, [x1, #4]
    ldr x0, [x1, #8]
    ldr x0, [sp, #32760]
    str w0, [x1, #16380]
    str x2, [sp]
    str xzr, [x1, #8]
    ldrb w0, [x1, #4095]
    strb w0, [x1]
    ldrh w0, [x1, #2]
    strh w0, [x1, #8190]
    ldr w0, [x1, #-4]
    ldr x0, [x1, #3]
    ldur w0, [x1, #1]
    stur x0, [x1, #-256]
    ldurb w0, [x1, #255]
    sturh w0, [x1, #-2]
    ldr x0, [x1, #8]!
    str x0, [sp, #-16]!
    ldr x0, [sp], #16
    str w0, [x1], #-4
    ldrb w0, [x1], #1
    mrs x0, vbar_el1
    msr vbar_el1, x0
    mrs x1, esr_el1
    msr esr_el1, x1
    mrs x1, far_el1
    mrs x2, elr_el1
    msr elr_el1, x2
    mrs x3, spsr_el1
    msr spsr_el1, x3
    mrs x4, sp_el0
    msr sp_el0, x4
    mrs x5, tpidr_el1
    msr tpidr_el1, x5
    mrs x6, daif
    msr daif, x6
    mrs x7, nzcv
    msr nzcv, x7
    mrs x8, currentel
    mrs x9, mpidr_el1
    mrs x0, icc_iar1_el1
    msr icc_eoir1_el1, x0
    mrs x0, icc_hppir1_el1
    mrs x0, icc_bpr1_el1
    msr icc_bpr1_el1, x0
    mrs x0, icc_ctlr_el1
    msr icc_ctlr_el1, x0
    mrs x0, icc_sre_el1
    msr icc_sre_el1, x0
    mrs x0, icc_igrpen1_el1
    msr icc_igrpen1_el1, x0
    msr icc_dir_el1, x0
    mrs x0, icc_rpr_el1
    mrs x0, icc_pmr_el1
    msr icc_pmr_el1, x0
    msr daifset, #2
    msr daifclr, #2
    msr daifset, #15
    msr spsel, #1
    isb
    dsb sy
    dsb ish
    dmb sy
    dmb ishld
    clrex
    wfi
    wfe
    nop
    yield
    .balign 16
    .word 0xdeadbeef, GICD
    .quad 0x1122334455667788
"""


def gnu_as(source, tmp_path):
    src, obj, binary = tmp_path / "in.S", tmp_path / "in.o", tmp_path / "in.bin"
    src.write_text(source)
    subprocess.run([GAS, str(src), "-o", str(obj)], check=True, capture_output=True)
    subprocess.run([OBJCOPY, "-O", "binary", "-j", ".text", str(obj), str(binary)], check=True)
    return binary.read_bytes()


def differences(ours, theirs, source):
    return [(i, ours[i:i + 4][::-1].hex(), theirs[i:i + 4][::-1].hex())
            for i in range(0, max(len(ours), len(theirs)), 4) if ours[i:i + 4] != theirs[i:i + 4]]


@needs_binutils
def test_every_form_assembles_as_gnu_as_does(tmp_path):
    ours = assemble(FORMS)
    assert len(ours) // 4 > 140
    assert differences(ours, gnu_as(FORMS, tmp_path), FORMS) == []


@needs_binutils
def test_the_lab_guest_assembles_as_gnu_as_does(tmp_path):
    assert irq_guest() == gnu_as(irq_guest_source(), tmp_path)


def test_the_lab_guest_has_its_vectors_where_vbar_points():
    code = irq_guest()
    irq = int.from_bytes(code[0xA80:0xA84], "little")
    assert irq == 0xD538CC00                                     # mrs x0, icc_iar1_el1
    assert int.from_bytes(code[:4], "little") == 0xD2A80000      # movz x0, #0x4000, lsl #16
    assert BASE % 2048 == 0


@pytest.mark.parametrize("line, message", [
    ("add x0, w1, #1", "mixes x and w"),
    ("movz x0, #0x10000", "does not fit 16 bits"),
    ("and x0, x1, #0", "not a logical"),
    ("ldr x0, [x1, #-300]", "fits neither"),
    ("ldrb x0, [x1]", "take a w register"),
    ("b nowhere", "unknown label"),
    ("frob x0", "not an instruction"),
    ("mov x0, #0x123456789", "needs movz \\+ movk"),
    ("str x0, [x1, #256]!", "-256..255"),
    ("ldr x0, [w1]", "x register or sp"),
])
def test_bad_lines_say_what_is_wrong(line, message):
    with pytest.raises(AsmError, match=message):
        assemble("nop\n" + line)
