"""The PL330 engine on its own: registers, copies, events and IRQs, faults, debug and peripheral
interfaces, stepping, and an external bus."""
import os

import pytest

from vfiolab.hw.pl330 import (CCR, CPC, CSR, DAR, FTR, LC0, PL330, SAR, assemble, memcpy_ccr,
                              memcpy_program)

CODE, SRC, DST = 0x1000, 0x100000, 0x1000000
UNDEF, OPERAND, DMAGO_ERR, EVENT_ERR, PERIPH_ERR = 1, 2, 1 << 4, 1 << 5, 1 << 6
MFIFO_ERR, ST_DATA, FETCH, WRITE_ERR, READ_ERR, DEBUG, LOCKUP = (
    1 << 12, 1 << 13, 1 << 16, 1 << 17, 1 << 18, 1 << 30, 1 << 31)


def load_and_start(dma, text_or_code, channel=0, pc=CODE):
    code = assemble(text_or_code, base=pc) if isinstance(text_or_code, str) else text_or_code
    dma.mem_write(pc, code)
    dma.start(channel, pc)
    return code


def test_id_and_configuration_registers():
    dma = PL330(channels=4, peripherals=2, events=8, mfifo_lines=64, read_queue_depth=8)
    assert [dma.readl(0xFE0 + 4 * i) for i in range(8)] == [0x30, 0x13, 0x24, 0x00,
                                                             0x0D, 0xF0, 0x05, 0xB1]
    cr0 = dma.readl(0xE00)
    assert (cr0 >> 4) & 7 == 3 and (cr0 >> 12) & 0x1F == 1 and (cr0 >> 17) & 0x1F == 7
    crd = dma.readl(0xE14)
    assert crd & 7 == 3 and (crd >> 16) & 0xF == 7 and (crd >> 20) & 0x3FF == 63
    assert PL330().readl(0xE00) == 0x1E3071          # QEMU's zynq PL330 reads the same
    with pytest.raises(ValueError):
        PL330(channels=9)


def test_writes_to_read_only_registers_are_ignored():
    dma = PL330()
    for off in (0x000, 0x004, 0x024, 0x030, 0x100, 0x400, 0xE00, 0xFE0, 0x1000, 0x3):
        before = dma.readl(off)
        dma.writel(off, 0xFFFFFFFF)
        assert dma.readl(off) == before
    assert dma.readl(0x3) == 0 and dma.readl(0x2000) == 0


@pytest.mark.parametrize("length", [1, 3, 64, 1000, 4096 + 24, 100003, 3 << 20])
def test_linux_memcpy_copies_and_signals(length):
    dma = PL330()
    data = os.urandom(length)
    dma.mem_write(SRC + 1, data)
    dma.writel(0x020, 1 << 5)
    load_and_start(dma, memcpy_program(SRC + 1, DST + 1, length, event=5))
    dma.run()
    assert dma.mem_read(DST + 1, length) == data
    assert dma.mem_read(DST, 1) == b"\0" and dma.mem_read(DST + 1 + length, 1) == b"\0"
    t = dma.thread(0)
    assert t.state == 0 and t.fault == 0 and t.sar == SRC + 1 + length
    assert dma.irq_lines == 1 << 5 and dma.readl(0x028) == 1 << 5


def test_stepping_a_few_cycles_at_a_time_matches_running_at_once():
    data = os.urandom(5000)
    program = memcpy_program(SRC, DST, 5000, burst_size=4, burst_len=8, barriers=False)
    once, stepped = PL330(), PL330()
    for dma in (once, stepped):
        dma.mem_write(SRC, data)
        load_and_start(dma, program)
    once.run_stepping()
    states = set()
    while True:
        stepped.run(max_cycles=7)
        t = stepped.thread(0)
        states.add(t.state_name)
        if stepped.idle:
            break
    assert stepped.mem_read(DST, 5000) == data
    assert stepped.thread(0) == once.thread(0) and stepped.cycles == once.cycles
    assert "executing" in states


def test_reading_thread_state_does_not_disturb_the_run():
    program = memcpy_program(SRC, DST, 3000, barriers=False)
    a, b = PL330(), PL330()
    for dma in (a, b):
        dma.mem_write(SRC, os.urandom(16) * 200)
        load_and_start(dma, program)
    for _ in range(200):
        a.run(max_cycles=1)
        a.threads()
        a.readl(CSR(0)), a.readl(CPC(0)), a.readl(SAR(0))
    b.run(max_cycles=200)
    assert a.thread(0) == b.thread(0)


def test_events_interrupts_and_the_irq_callback():
    dma = PL330()
    seen = []
    dma.on_irq(lambda lines, abort: seen.append((lines, abort)))
    dma.writel(0x020, 0b0110)
    load_and_start(dma, "DMASEV E1\nDMASEV E2\nDMASEV E3\nDMAEND")
    dma.run()
    assert dma.readl(0x024) == 0b1110          # INT_EVENT_RIS: IRQs 1, 2 and event 3 pending
    assert dma.readl(0x028) == 0b0110          # INTMIS
    assert dma.irq_lines == 0b0110 and seen[-1] == (0b0110, False)
    dma.writel(0x02C, 0b1010)                  # INTCLR clears IRQ 1 only (3 is an event)
    assert dma.readl(0x024) == 0b1100 and dma.irq_lines == 0b0100
    assert seen[-1] == (0b0100, False)
    # A later DMAWFE takes the pending event 3 at once.
    load_and_start(dma, "DMAWFE E3\nDMAEND", pc=CODE + 0x100)
    dma.run()
    assert dma.thread(0).state == 0 and dma.readl(0x024) == 0b0100
    dma.on_irq(None)


def test_wfe_waits_until_another_channel_signals():
    dma = PL330()
    load_and_start(dma, "DMAWFE E7\nDMAMOV SAR, 0x77\nDMAEND", channel=2)
    dma.run()
    assert dma.thread(2).state_name == "waiting for event" and dma.thread(2).wakeup == 7
    assert dma.idle
    load_and_start(dma, "DMASEV E7\nDMAEND", channel=5, pc=CODE + 0x100)
    dma.run()
    assert dma.thread(2).state == 0 and dma.thread(2).sar == 0x77
    assert dma.readl(0x024) == 0             # the event was consumed by the waiter


def test_debug_sev_wakes_a_waiting_channel():
    dma = PL330()
    load_and_start(dma, "DMAWFE E0\nDMAEND")
    dma.run()
    dma.debug(bytes([0x34, 0 << 3]))
    dma.run()
    assert dma.thread(0).state == 0


def test_undefined_instruction_fault_and_dmakill_recovery():
    dma = PL330()
    load_and_start(dma, "DMANOP\n.byte 0x06\nDMAEND", channel=3)
    dma.run()
    assert dma.readl(CSR(3)) & 0xF == 15 and dma.readl(CPC(3)) == CODE + 1
    assert dma.readl(FTR(3)) == UNDEF and dma.readl(0x034) == 1 << 3 and dma.abort_line
    dma.kill(3)
    assert dma.readl(CSR(3)) & 0xF == 0 and dma.readl(FTR(3)) == 0 and not dma.abort_line


def test_bus_errors_fault_the_channel():
    dma = PL330(memory_size=1 << 20)
    load_and_start(dma, f"DMAMOV CCR, 0x{memcpy_ccr(8, 4):08x}\nDMAMOV SAR, 0x200000\n"
                        "DMAMOV DAR, 0x8000\nDMALD\nDMAST\nDMAEND")
    dma.run()
    assert dma.thread(0).fault == READ_ERR and dma.thread(0).state == 15
    dma.mem_write(0x8000, b"\x11" * 32)
    load_and_start(dma, f"DMAMOV CCR, 0x{memcpy_ccr(8, 4):08x}\nDMAMOV SAR, 0x8000\n"
                        "DMAMOV DAR, 0xFFFF0\nDMALD\nDMAST\nDMAEND", channel=1)
    dma.run()
    assert dma.thread(1).fault == WRITE_ERR
    assert dma.mem_read(0xFFFF0, 16) == b"\x11" * 16   # beats before the faulting one landed
    dma.start(2, 0x300000)                           # code outside memory
    dma.run()
    assert dma.thread(2).fault == FETCH and dma.thread(2).pc == 0x300000


def test_store_without_data_and_mfifo_too_small():
    dma = PL330(mfifo_lines=8)                       # 64 bytes of MFIFO
    load_and_start(dma, f"DMAMOV CCR, 0x{memcpy_ccr(8, 2):08x}\nDMAST\nDMAEND")
    dma.run()
    assert dma.thread(0).fault == ST_DATA and dma.thread(0).pc == CODE + 6
    load_and_start(dma, f"DMAMOV CCR, 0x{memcpy_ccr(8, 16):08x}\nDMALD\nDMAEND", channel=1,
                   pc=CODE + 0x100)
    dma.run()
    assert dma.thread(1).fault == MFIFO_ERR


def test_lockup_when_the_mfifo_is_held_by_a_waiting_channel():
    dma = PL330(mfifo_lines=8)
    load_and_start(dma, f"DMAMOV CCR, 0x{memcpy_ccr(8, 8):08x}\nDMALD\nDMAWFE E0\nDMAST\n"
                        "DMAEND", channel=0)
    dma.run()
    load_and_start(dma, f"DMAMOV CCR, 0x{memcpy_ccr(8, 8):08x}\nDMALD\nDMAST\nDMAEND",
                   channel=1, pc=CODE + 0x100)
    dma.run()
    assert dma.thread(1).fault == LOCKUP and dma.thread(0).state_name == "waiting for event"
    dma.debug(bytes([0x34, 0]))
    dma.run()
    assert dma.thread(0).state == 0


def test_operand_and_security_faults():
    dma = PL330(irq_nonsecure=0b1, periph_nonsecure=0b1)
    load_and_start(dma, "DMASEV E16\nDMAEND")
    dma.run()
    assert dma.thread(0).fault == OPERAND
    code = assemble("DMASEV E0\nDMAFLUSHP P0\nDMASEV E1\nDMAEND", base=CODE)
    dma.mem_write(CODE, code)
    dma.start(1, CODE, nonsecure=True)
    dma.run()
    assert dma.thread(1).fault == EVENT_ERR and dma.thread(1).pc == CODE + 4
    assert dma.thread(1).nonsecure
    dma.mem_write(CODE + 0x100, assemble("DMAWFP P1, single"))
    dma.start(2, CODE + 0x100, nonsecure=True)
    dma.run()
    assert dma.thread(2).fault == PERIPH_ERR


def test_manager_faults_through_the_debug_interface():
    dma = PL330()
    load_and_start(dma, "DMAWFE E1\nDMAEND")
    dma.run()
    dma.start(0, CODE)                               # channel 0 is not stopped
    assert dma.readl(0x030) == 1 and dma.readl(0x038) == OPERAND | DEBUG
    assert dma.readl(0x000) & 0xF == 15 and dma.abort_line
    dma.kill()                                       # DMAKILL to the manager
    assert dma.readl(0x030) == 0 and dma.readl(0x038) == 0
    dma.debug(b"\x18")                               # DMANOP is not a debug instruction
    assert dma.readl(0x038) == UNDEF | DEBUG
    dma.kill()
    assert dma.readl(0xD00) == 0


def test_nonsecure_manager_cannot_start_a_secure_channel():
    dma = PL330(manager_nonsecure=True)
    assert dma.readl(0x000) >> 9 & 1
    dma.mem_write(CODE, b"\x00")
    dma.start(0, CODE)
    assert dma.readl(0x038) == DMAGO_ERR | DEBUG
    dma.kill()
    dma.start(0, CODE, nonsecure=True)
    dma.run()
    assert dma.readl(0x038) == 0 and dma.thread(0).state == 0


def test_peripheral_requests():
    dma = PL330()
    load_and_start(dma, f"""
        DMAMOV CCR, 0x{memcpy_ccr(4, 4):08x}
        DMAMOV SAR, 0x{SRC:x}
        DMAMOV DAR, 0x{DST:x}
        DMAWFP P1, periph
        DMALDPS P1
        DMALDPB P1
        DMASTPS P1
        DMASTPB P1
        DMAFLUSHP P1
        DMAEND""")
    dma.mem_write(SRC, bytes(range(64)))
    dma.run()
    t = dma.thread(0)
    assert t.state_name == "waiting for peripheral" and t.wakeup == 1
    assert dma.readl(CSR(0)) >> 15 & 1                    # dmawfp_periph
    assert dma.request(1, burst=False)
    assert not dma.request(1)                            # one request is held at a time
    dma.run()
    # A single request: the S forms run one beat, the B forms are no-ops.
    assert dma.thread(0).state == 0 and dma.thread(0).sar == SRC + 4
    assert dma.mem_read(DST, 8) == bytes(range(4)) + bytes(4)


def test_loop_forever_ends_at_the_last_request():
    dma = PL330()
    load_and_start(dma, f"""
        DMAMOV CCR, 0x{memcpy_ccr(4, 1):08x}
        DMAMOV SAR, 0x{SRC:x}
        DMAMOV DAR, 0x{DST:x}
        DMALPFE
        DMAWFP P0, burst
        DMALD
        DMAST
        DMALPEND
        DMAEND""")
    dma.mem_write(SRC, bytes(range(16)))
    for i in range(3):
        dma.run()
        assert dma.thread(0).state_name == "waiting for peripheral"
        dma.request(0, burst=True, last=(i == 2))
    dma.run()
    assert dma.thread(0).state == 0 and dma.mem_read(DST, 16) == bytes(range(12)) + bytes(4)


def test_a_program_that_loops_for_ever_does_not_hang_run():
    dma = PL330()
    load_and_start(dma, "DMALPFE\nDMANOP\nDMALPEND")
    assert dma.run(max_cycles=100000) == 100000 and not dma.idle
    dma.kill(0)
    assert dma.thread(0).state == 0


def test_endian_swap_and_store_zeros():
    dma = PL330()
    dma.mem_write(SRC, bytes(range(16)))
    swap32 = memcpy_ccr(8, 2) | 2 << 28
    load_and_start(dma, f"DMAMOV CCR, 0x{swap32:08x}\nDMAMOV SAR, 0x{SRC:x}\n"
                        f"DMAMOV DAR, 0x{DST:x}\nDMALD\nDMAST\n"
                        f"DMAMOV CCR, 0x{memcpy_ccr(4, 3):08x}\nDMASTZ\nDMAEND")
    dma.mem_write(DST + 16, b"\xff" * 16)
    dma.run()
    assert dma.mem_read(DST, 16) == bytes([3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8,
                                           15, 14, 13, 12])
    assert dma.mem_read(DST + 16, 16) == bytes(12) + b"\xff" * 4


def test_add_halfword_and_loop_counters():
    dma = PL330()
    load_and_start(dma, """
        DMAMOV SAR, 0x1000
        DMAMOV DAR, 0x1000
        DMALP LC0, 3
        DMALP LC1, 5
        DMAADDH SAR, 2
        DMAADNH DAR, -1
        DMALPEND LC1
        DMALPEND LC0
        DMALP LC1, 9
        DMAWFE E0
        DMALPEND LC1
        DMAEND""")
    dma.run()
    t = dma.thread(0)
    assert t.sar == 0x1000 + 30 and t.dar == 0x1000 - 15 and t.state_name == "waiting for event"
    assert dma.readl(LC0(0)) == 0 and dma.readl(LC0(0) + 4) == 8
    assert dma.readl(SAR(0)) == t.sar and dma.readl(DAR(0)) == t.dar and dma.readl(CCR(0)) == 0


def test_engine_on_an_external_bus_faults_through_it():
    """A bus that maps only [0x10000, 0x20000) and logs what faulted, as the sim IOMMU does."""
    from vfiolab._hw import ffi
    backing = ffi.new("uint8_t[]", 0x10000)
    faults = []

    @ffi.callback("uint8_t *(void *, uint64_t, uint64_t *, int)")
    def translate(ctx, addr, length, access):
        if not 0x10000 <= addr < 0x20000:
            faults.append((addr, access))
            return ffi.NULL
        length[0] = min(length[0], 0x20000 - addr)
        return backing + (addr - 0x10000)

    bus = ffi.new("struct vfl_bus *", {"translate": translate, "ctx": ffi.NULL})
    dma = PL330.on_bus(bus)
    dma.mem_write(0x10100, os.urandom(256))
    dma.mem_write(0x10000, memcpy_program(0x10100, 0x10400, 256))
    dma.start(0, 0x10000)
    dma.run()
    assert dma.mem_read(0x10400, 256) == dma.mem_read(0x10100, 256) and not faults
    dma.mem_write(0x10000, memcpy_program(0x10100, 0x30000, 256))
    dma.start(1, 0x10000)
    dma.run()
    assert dma.thread(1).fault == WRITE_ERR and faults[0] == (0x30000, 1)
    with pytest.raises(ValueError):
        dma.mem_read(0x40000, 4)


def test_reset_drops_the_lines_and_stops_everything():
    dma = PL330()
    seen = []
    dma.on_irq(lambda lines, abort: seen.append((lines, abort)))
    dma.writel(0x020, 1)
    load_and_start(dma, "DMASEV E0\n.byte 0xff")
    dma.run()
    assert seen[-1] == (1, True)
    dma.reset()
    assert seen[-1] == (0, False) and dma.readl(0x020) == 0
    assert all(t.state == 0 for t in dma.threads())


def test_manager_program_from_the_boot_address():
    dma = PL330(boot_address=0x800)
    assert dma.readl(0xE00) >> 1 & 1 and dma.readl(0xE08) == 0x800
    assert dma.thread("manager").state_name == "executing"
    dma.mem_write(CODE, assemble("DMAMOV SAR, 0x42\nDMASEV E1\nDMAEND", base=CODE))
    dma.mem_write(0x800, assemble(f"DMAGO C2, 0x{CODE:x}\nDMAWFE E1\nDMASEV E3\nDMAEND",
                                  base=0x800))
    dma.writel(0x020, 1 << 3)
    dma.run()
    assert dma.thread(2).sar == 0x42 and dma.thread(2).state == 0
    assert dma.thread("manager").state == 0 and dma.readl(0x004) == 0x800 + 6 + 2 + 2 + 1
    assert dma.irq_lines == 1 << 3
    dma.mem_write(0x900, b"\x04")                    # DMALD is not a manager instruction
    dma.reset()
    dma.mem_write(0x800, assemble("DMALD"))
    dma.run()
    assert dma.readl(0x030) == 1 and dma.readl(0x038) == UNDEF


@pytest.mark.parametrize("call", [
    lambda d: d.readl(-4), lambda d: d.readl(1 << 40), lambda d: d.writel(0x020, -1),
    lambda d: d.writel(-4, 0), lambda d: d.writel(0x020, 1 << 32),
    lambda d: d.mem_write(-1, b"x"), lambda d: d.mem_read(-1, 4), lambda d: d.mem_read(0, -1),
    lambda d: d.start(0, -1), lambda d: d.start(8, 0), lambda d: d.request(-1),
    lambda d: d.run(-1), lambda d: d.run_stepping(-1)])
def test_out_of_range_arguments_are_value_errors(call):
    with pytest.raises(ValueError, match="out of range"):
        call(PL330())


def test_bad_constructor_arguments_and_non_integers():
    with pytest.raises(ValueError, match=r"memory_size -0x1 out of range 0x0\.\."):
        PL330(memory_size=-1)
    with pytest.raises(ValueError, match="boot_address"):
        PL330(boot_address=1 << 32)
    with pytest.raises(TypeError, match="register offset must be an integer, not float"):
        PL330().readl(4.0)


def test_channel_and_manager_faults_are_decoded_with_their_own_tables():
    from vfiolab.hw.pl330 import CHANNEL_FAULT_NAMES, FAULT_NAMES, MANAGER_FAULT_NAMES
    assert 4 not in CHANNEL_FAULT_NAMES and FAULT_NAMES is CHANNEL_FAULT_NAMES
    assert MANAGER_FAULT_NAMES[4] == "DMAGO error" and 31 not in MANAGER_FAULT_NAMES
    dma = PL330(manager_nonsecure=True)
    dma.mem_write(CODE, b"\x00")
    dma.start(0, CODE)                               # DMAGO error in FTRD
    assert dma.thread("manager").fault_names == ["DMAGO error", "debug instruction"]
    dma = PL330()
    load_and_start(dma, bytes([0xFF]), channel=1)    # undefined on a channel
    dma.run()
    t = dma.thread(1)
    assert t.fault & UNDEF and "undefined instruction" in t.fault_names
    assert "DMAGO error" not in t.fault_names


def test_sim_board_64_bit_register_reads_combine_two_words():
    import vfiolab
    from vfiolab import platform, uapi, vfio
    name = "2c0a0000.dma"
    with vfiolab.open_board("sim") as board:
        platform.bind_to_vfio(board, name)
        container = vfio.Container(board)
        group = vfio.Group.of_device(board, name)
        group.set_container(container)
        container.set_iommu(uapi.VFIO_TYPE1v2_IOMMU)
        with container, group, group.device(name) as device:
            regs = device.region(0).mmap()
            for off in (0xFE0, 0xFE8, 0xFF0, 0xFF8):             # peripheral and PrimeCell IDs
                assert regs.read64(off) == regs.read32(off) | regs.read32(off + 4) << 32
            assert regs.read64(0xFE0) == 0x13 << 32 | 0x30
            regs.write64(0x020, 0xFFFF_FFFF_0000_00A5)            # INTEN, then read-only RIS
            assert regs.read32(0x020) == 0xA5
            assert regs.read64(0x020) == 0xA5 | regs.read32(0x024) << 32
