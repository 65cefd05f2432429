"""The AArch64 interpreter and the vGICv3 (vfiolab/csrc/aarch64.c, vgic3.c), driven as a VMM drives
them: guest code assembled from source, run until an exit, registers and GIC state read back."""
import pytest

from vfiolab.guests import GICD, PARAMS, REDIST, REPORT, irq_guest_source
from vfiolab.hw.a64 import A64Cpu, Vgic3
from vfiolab.hw.a64_asm import AsmError, assemble

BASE = 0x40000000
N, Z, C, V = 1 << 31, 1 << 30, 1 << 29, 1 << 28


def machine(source, gic=True):
    cpu = A64Cpu()
    ram = cpu.add_ram(BASE, 0x10000)
    code = assemble(source, base=BASE)
    ram[:len(code)] = code
    vgic = Vgic3() if gic else None
    if vgic:
        cpu.attach_vgic(vgic, GICD, REDIST)
    cpu.pc = BASE
    return cpu, ram, vgic


def run_to_end(source, budget=1000):
    """Run until the guest's final `b .` spins out the budget."""
    cpu, ram, gic = machine(source + "\nend: b end\n")
    exit = cpu.run(budget)
    assert exit.reason == "budget", exit
    return cpu, ram


def test_moves_and_arithmetic():
    cpu, _ = run_to_end("""
        movz x0, #0x1234, lsl #32
        movk x0, #0x5678
        movn w1, #0                 // w1 = 0xffffffff, x1's top half cleared
        mov x2, #-2
        add x3, x0, #0x10, lsl #12
        sub w4, w1, #1
        add x5, x0, x2, lsl #4      // x0 - 32
        and x6, x0, #0xff
        orr x7, xzr, #0x5555555555555555
        eor w8, w1, w1, lsr #16
        bic x9, x1, x6
        mov x10, sp
        sub sp, sp, #32
        mov x11, sp
    """)
    assert cpu.reg("x0") == 0x1234_0000_5678
    assert cpu.reg("x1") == 0xFFFF_FFFF
    assert cpu.reg("x2") == 2**64 - 2
    assert cpu.reg("x3") == 0x1234_0001_5678
    assert cpu.reg("x4") == 0xFFFF_FFFE
    assert cpu.reg("x5") == 0x1234_0000_5678 - 32
    assert cpu.reg("x6") == 0x78
    assert cpu.reg("x7") == 0x5555555555555555
    assert cpu.reg("x8") == 0xFFFF0000
    assert cpu.reg("x9") == 0xFFFFFF87
    assert cpu.reg("x10") == 0 and cpu.reg("x11") == 2**64 - 32
    assert cpu.reg("sp_el1") == 2**64 - 32 and cpu.reg("sp_el0") == 0   # EL1h uses SP_EL1


@pytest.mark.parametrize("a, b, flags", [
    (1, 1, Z | C), (0, 1, N), (2, 1, C), (0x8000000000000000, 1, C | V), (0x7FFFFFFFFFFFFFFF, -1, N | V),
])
def test_cmp_sets_nzcv_as_subs(a, b, flags):
    cpu, ram, _ = machine("cmp x0, x1\nb .\n")
    cpu.set_reg("x0", a)
    cpu.set_reg("x1", b)
    cpu.run(1)
    assert cpu.reg("pstate") & 0xF0000000 == flags


def test_conditional_branches_follow_the_flags():
    # Count how many of the 14 conditions hold after cmp 3, 5 (3 - 5: N set, C clear).
    conds = ["eq", "ne", "hs", "lo", "mi", "pl", "vs", "vc", "hi", "ls", "ge", "lt", "gt", "le"]
    lines = ["mov x0, #3", "mov x1, #5", "cmp x0, x1", "mov x2, #0"]
    for i, c in enumerate(conds):
        lines += [f"b.{c} t{i}", f"b n{i}", f"t{i}: orr x2, x2, #{1 << i}", f"n{i}: nop"]
    cpu, _ = run_to_end("\n".join(lines))
    taken = {c for i, c in enumerate(conds) if cpu.reg("x2") >> i & 1}
    assert taken == {"ne", "lo", "mi", "vc", "ls", "lt", "le"}


def test_calls_loops_and_memory():
    cpu, ram = run_to_end("""
        movz x1, #0x4000, lsl #16
        movk x1, #0x2000            // x1 = a buffer in RAM
        mov x0, #4
    fill:
        str w0, [x1], #4            // post-index
        sub x0, x0, #1
        cbnz x0, fill
        movz x1, #0x4000, lsl #16
        movk x1, #0x2000
        bl sum
        mov x9, x0
        b end
    sum:                            // x0 = the four words at [x1]
        movz x5, #0x4000, lsl #16
        movk x5, #0x8000
        mov sp, x5
        ldr w0, [x1]
        ldr w2, [x1, #4]
        add x0, x0, x2
        ldr w2, [x1, #8]!           // pre-index: x1 += 8
        add x0, x0, x2
        ldur w2, [x1, #4]
        add x0, x0, x2
        strb w0, [x1, #-1]
        ldrh w3, [x1, #-2]
        str x0, [sp, #-16]!
        ldr x4, [sp], #16
        ret
    """)
    assert cpu.reg("x9") == 4 + 3 + 2 + 1
    assert cpu.reg("x1") == BASE + 0x2008
    assert ram[0x2000:0x2010] == bytes([4, 0, 0, 0, 3, 0, 0, 10, 2, 0, 0, 0, 1, 0, 0, 0])
    assert cpu.reg("x3") == 0x0A00
    assert cpu.reg("x4") == 10 and cpu.reg("sp_el1") == BASE + 0x8000
    assert ram[0x7FF0:0x7FF8] == (10).to_bytes(8, "little")


def test_mmio_exits_complete_on_the_next_run_as_kvm_does():
    cpu, _, _ = machine("""
        movz x1, #0x0a00, lsl #16
        ldr w0, [x1, #4]
        mov x2, #0x77
        str x2, [x1, #8]
        strh w2, [x1]
        b .
    """)
    cpu.set_reg("x0", 2**64 - 1)
    load = cpu.run(100)
    assert (load.reason, load.addr, load.length, load.is_write) == ("mmio", REPORT + 4, 4, False)
    assert load.pc == BASE + 4 and cpu.pc == BASE + 4           # not completed yet
    cpu.set_mmio_data(0x1_2345_6789)
    store = cpu.run(100)
    assert cpu.reg("x0") == 0x2345_6789                         # a W load zero-extends
    assert (store.reason, store.addr, store.length, store.is_write, store.data) == ("mmio", REPORT + 8, 8, True, 0x77)
    half = cpu.run(100)
    assert (half.addr, half.length, half.data) == (REPORT, 2, 0x77)
    assert cpu.run(100).reason == "budget"


def test_writeback_mmio_has_no_syndrome():
    cpu, _, _ = machine("movz x1, #0x0a00, lsl #16\nstr w0, [x1, #4]!\n")
    exit = cpu.run(10)
    assert exit.reason == "nisv" and exit.addr == REPORT + 4
    assert cpu.reg("x1") == REPORT                               # no writeback happened


@pytest.mark.parametrize("word, why", [
    (0x00000000, "udf #0"),
    (0xD53BE000, "mrs x0, cntfrq_el0: a system register outside the subset"),
    (0xD518CC00, "msr icc_iar1_el1, x0: a write of a read-only register"),
    (0xD538CC20, "mrs x0, icc_eoir1_el1: a read of a write-only register"),
    (0xD4000002, "hvc #0"),
    (0x9B020C20, "madd: not in the subset"),
    (0x32800000, "move wide with opc 01: unallocated"),
    (0x8B600020, "add (shifted register) with shift 11: reserved"),
])
def test_words_outside_the_subset_stop_with_an_undef_exit(word, why):
    cpu, _, _ = machine(f"nop\n.word {word:#x}\n")
    exit = cpu.run(10)
    assert (exit.reason, exit.pc, exit.insn) == ("undef", BASE + 4, word), why


def test_fetch_budget_and_mode_exits():
    cpu, _, _ = machine("movz x0, #0x5000, lsl #16\nbr x0\n")
    exit = cpu.run(10)
    assert (exit.reason, exit.pc) == ("fetch", 0x50000000)
    cpu, _, _ = machine("b .\n")
    exit = cpu.run(5000)
    assert exit.reason == "budget" and cpu.steps == 5000
    cpu, _, _ = machine("nop\n")
    cpu.set_reg("pstate", 0x3C0)                                 # EL0t
    assert cpu.run(10).reason == "bad_mode"


def test_the_lab_guest_takes_a_level_spi_through_vbar():
    cpu, ram, gic = machine(irq_guest_source())
    exit = cpu.run(1000)
    assert exit.reason == "wfi"
    idle = cpu.pc
    assert gic.dist_read(0) == 0x52                              # ARE_NS | DS | EnableGrp1A
    assert gic.state(32).level and gic.state(32).enabled
    gic.set_line(32, True)
    taken = cpu.run(1000)
    assert (taken.reason, taken.addr, taken.data) == ("mmio", REPORT, 32)
    assert cpu.reg("elr_el1") == idle and cpu.reg("spsr_el1") == 0x345   # EL1h, I was clear
    assert cpu.reg("pstate") & 0x3CF == 0x3C5                    # DAIF masked, EL1h
    assert cpu.reg("esr_el1") == 0                               # IRQs leave ESR_EL1 alone
    assert gic.state(32).active and gic.icc_read("rpr") == 0
    eoi = cpu.run(1000)
    assert eoi.reason == "eoi" and gic.take_eois() == [32]
    assert not gic.state(32).active and gic.state(32).pending    # the line is still high
    gic.set_line(32, False)                                      # what KVM's resampler does
    assert cpu.run(1000).addr == REPORT + 4
    assert cpu.run(1000).reason == "wfi"


def test_an_edge_spi_latches_and_never_asks_for_an_eoi_notification():
    cpu, ram, gic = machine(irq_guest_source())
    ram[PARAMS - BASE:PARAMS - BASE + 4] = (0xAAAAAAAA).to_bytes(4, "little")
    assert cpu.run(1000).reason == "wfi"
    assert not gic.state(33).level
    gic.set_line(33, True)
    gic.set_line(33, False)                                      # a pulse: the latch keeps it
    assert cpu.run(1000).data == 33
    assert cpu.run(1000).addr == REPORT + 4
    assert gic.take_eois() == []
    assert cpu.run(1000).reason == "wfi"


def test_irq_from_el1t_uses_vector_0x080():
    cpu, ram, gic = machine("""
        movz x0, #0x4000, lsl #16
        movk x0, #0x0800
        msr vbar_el1, x0
        mov x0, #0xf0
        msr icc_pmr_el1, x0
        mov x0, #1
        msr icc_igrpen1_el1, x0
        msr spsel, #0
        msr daifclr, #2
        b .
        .balign 2048
        .space 0x80
        mrs x5, icc_iar1_el1
        b .
    """)
    gic.dist_write(0, 0x12)
    gic.dist_write(0x104, 1 << 8)                                # SPI 40
    gic.set_line(40, True)
    cpu.run(100)
    assert cpu.reg("x5") == 40 and cpu.pc == BASE + 0x884
    assert cpu.reg("spsr_el1") & 0xF == 0x4 and cpu.reg("pstate") & 0xF == 0x5


def test_wfi_wakes_on_a_masked_interrupt_without_taking_it():
    cpu, _, gic = machine("""
        mov x0, #0xf0
        msr icc_pmr_el1, x0
        mov x0, #1
        msr icc_igrpen1_el1, x0
        wfi
        mov x1, #7
        b .
    """)
    gic.dist_write(0, 0x12)
    gic.dist_write(0x104, 1)
    gic.set_line(32, True)
    cpu.run(100)
    assert cpu.reg("x1") == 7 and not gic.state(32).active


def test_distributor_registers_as_kvm_shows_them():
    gic = Vgic3(nr_spis=224)
    assert gic.dist_read(0x0) == 0x50                            # ARE_NS | DS, disabled
    assert gic.dist_read(0x4) == 0x480007                        # ITLinesNumber 7, IDbits 10
    assert gic.dist_read(0x8) == 0x4B00343B and gic.redist_read(0x4) == 0x4B00043B   # as 6.1 answers
    assert gic.dist_read(0x10) == 0xFFFFFFFF and gic.redist_read(0x0) == 0x6           # STATUSR, GICR_CTLR
    assert gic.dist_read(0xFFE8) == 0x3B and gic.redist_read(0x8, 8) == 0x10
    assert gic.dist_read(0xC08) == 0xAAAAAAAA                    # SPIs reset edge
    assert gic.redist_read(0x10000 + 0xC04) == 0                 # PPIs level
    assert gic.redist_read(0x10000 + 0x100) == 0xFFFF            # SGIs enabled
    assert gic.dist_read(0x100) == 0 and gic.dist_read(0x400) == 0   # INTIDs 0-31: RAZ here
    gic.dist_write(0x420, 0xFFFFFFFF)
    assert gic.dist_read(0x420) == 0xF8F8F8F8                    # 5 priority bits
    gic.dist_write(0x420, 0x80, length=1)
    assert gic.dist_read(0x420) == 0xF8F8F880
    gic.dist_write(0x6100 + 8, 0x80000123)                       # IROUTER(33), low half
    assert gic.dist_read(0x6108, 8) == 0x123                     # no IRM bit kept
    gic.redist_write(0x10000 + 0xC00, 0)                         # SGI config is read-only
    assert gic.redist_read(0x10000 + 0xC00) == 0xAAAAAAAA
    gic.dist_write(0x104, 1 << 1)                                # enable 33 (routed away)
    gic.dist_write(0x0, 0x12)
    gic.icc_write("pmr", 0xFF)
    gic.icc_write("igrpen1", 1)
    gic.set_line(33, True)
    assert gic.state(33).pending and not gic.signalled           # IROUTER names no vCPU


def test_cpu_interface_priorities_and_pending_state():
    gic = Vgic3()
    gic.dist_write(0x0, 0x12)
    gic.dist_write(0x104, 0b11)                                  # SPIs 32, 33
    gic.dist_write(0xC08, 0)                                     # level
    gic.dist_write(0x420, 0x40 << 8 | 0x80)                      # 32: 0x80, 33: 0x40
    gic.icc_write("igrpen1", 1)
    gic.set_line(32, True)
    assert not gic.signalled                                     # PMR 0 masks everything
    gic.icc_write("pmr", 0x81)
    assert gic.icc_read("pmr") == 0x80 and not gic.signalled     # 0x80 is not below 0x80
    gic.icc_write("pmr", 0xF0)
    assert gic.icc_read("iar1") == 32 and gic.icc_read("rpr") == 0x80
    assert gic.icc_read("iar1") == 1023                          # active: not forwarded again
    gic.set_line(33, True)
    assert gic.icc_read("iar1") == 33                            # higher priority preempts
    gic.icc_write("eoir1", 33)
    gic.icc_write("eoir1", 32)
    assert gic.take_eois() == [33, 32] and gic.icc_read("rpr") == 0xFF
    gic.set_line(33, False)
    gic.dist_write(0x284, 1)                                     # ICPENDR1: the line is still high
    assert gic.state(32).pending
    gic.set_line(32, False)
    assert not gic.state(32).pending
    gic.dist_write(0x204, 1)                                     # ISPENDR1 latches a level SPI
    assert gic.state(32).pending and gic.icc_read("iar1") == 32
    assert not gic.state(32).pending                             # acknowledged: latch cleared
    gic.icc_write("ctlr", 2)                                     # EOImode 1: EOIR only drops
    gic.icc_write("eoir1", 32)
    assert gic.state(32).active and gic.icc_read("ctlr") == 0x8C02
    gic.icc_write("dir", 32)
    assert not gic.state(32).active and gic.take_eois() == [32]
    assert gic.icc_read("sre") == 7
    with pytest.raises(ValueError):
        gic.icc_read("eoir1")
    with pytest.raises(ValueError):
        gic.set_line(32 + 224, True)


def test_bad_arguments_are_refused_clearly():
    with pytest.raises(ValueError, match="multiple of 32"):
        Vgic3(nr_spis=33)
    with pytest.raises(ValueError, match="no register"):
        A64Cpu().reg("x31")
    with pytest.raises(AsmError, match="line 1"):
        assemble("tst w0, #0x12")
    with pytest.raises(AsmError, match="unknown system register"):
        assemble("mrs x0, cntfrq_el0")
