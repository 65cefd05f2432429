"""The ITS and GICv2m models on their own: programmed as Linux's irqchip drivers program them."""
import pytest

from vfiolab.hw.gic import (GICR_CTLR, GICR_PENDBASER, GICR_PROPBASER, GITS_BASER, GITS_CBASER,
                            GITS_CREADR, GITS_CTLR, GITS_CWRITER, GITS_TRANSLATER, GITS_TYPER,
                            ITS, MSI_IIDR, MSI_SETSPI_NS, MSI_TYPER, GICv2m, decode_command,
                            error_name, its_command)

PROP, PEND, QUEUE, DT, CT, ITT = 0x100000, 0x110000, 0x120000, 0x130000, 0x140000, 0x150000


def booted_its(num_cpus=1):
    """An ITS set up as its_init/its_cpu_init_lpis do: LPI tables per CPU, device and collection
    tables, a 4 KiB command queue, enabled; LPIs 8192.. enabled in the configuration table."""
    its = ITS(num_cpus=num_cpus, memory_size=16 << 20)
    for cpu in range(num_cpus):
        its.gicr_writeq(cpu, GICR_PROPBASER, PROP | 13)        # 14 INTID bits
        its.gicr_writeq(cpu, GICR_PENDBASER, PEND + cpu * 0x10000)
        its.gicr_writel(cpu, GICR_CTLR, 1)
    its.mem_write(PROP, bytes([0xA1]) * 256)                   # priority 0xa0, enabled
    its.writeq(GITS_BASER(0), 1 << 63 | DT)
    its.writeq(GITS_BASER(1), 1 << 63 | CT)
    its.writeq(GITS_CBASER, 1 << 63 | QUEUE)
    its.writel(GITS_CTLR, 1)
    its.queued = 0
    return its


def send(its, *commands):
    for c in commands:
        its.mem_write(QUEUE + 32 * (its.queued % 128), c)
        its.queued += 1
    its.writeq(GITS_CWRITER, 32 * (its.queued % 128))


def map_event(its, device_id, event_id, intid, icid=0, cpu=0, itt=ITT):
    send(its, its_command("MAPD", device_id=device_id, size=4, itt=itt, valid=1),
         its_command("MAPC", icid=icid, rdbase=cpu, valid=1),
         its_command("MAPTI", device_id=device_id, event_id=event_id, intid=intid, icid=icid),
         its_command("SYNC", rdbase=cpu))


def test_a_device_raises_only_its_own_lpis():
    its = booted_its()
    map_event(its, 8, 0, 8192, itt=ITT)
    map_event(its, 16, 0, 8193, itt=ITT + 0x1000)
    its.take_records()
    assert its.deliver(0, device_id=8) == 8192            # edu #1 raises its own vector
    assert its.lpi_pending(0, 8192) and not its.lpi_pending(0, 8193)
    # The data is only an EventID: device 8 writing anything cannot reach device 16's LPI.
    for event in range(64):
        its.deliver(event, device_id=8)
    assert not its.lpi_pending(0, 8193)
    kinds = [(r.kind, r.code) for r in its.take_records()]
    assert kinds[0] == ("lpi_pending", 0xA1)
    assert ("dropped", 5) in kinds and ("dropped", 4) in kinds   # unmapped event, EventID OOR
    # A CPU write to GITS_TRANSLATER has no DeviceID: device 0, not mapped, dropped.
    its.writel(GITS_TRANSLATER, 0)
    assert its.take_records()[-1][:4] == ("dropped", 3, 0, 0)
    assert its.stats()["dropped"] == 64


def test_int_clear_discard_movi_change_the_pending_table_in_memory():
    its = booted_its(num_cpus=2)
    map_event(its, 8, 1, 8200)
    send(its, its_command("MAPC", icid=1, rdbase=1, valid=1), its_command("INT", device_id=8, event_id=1))
    assert its.mem_read(PEND + 8200 // 8, 1)[0] == 1 << (8200 % 8)
    send(its, its_command("MOVI", device_id=8, event_id=1, icid=1))
    assert not its.lpi_pending(0, 8200) and its.lpi_pending(1, 8200)   # pending state moved
    send(its, its_command("CLEAR", device_id=8, event_id=1))
    assert not its.lpi_pending(1, 8200)
    send(its, its_command("DISCARD", device_id=8, event_id=1))
    assert its.deliver(1, device_id=8) is None
    assert its.take_records()[-1].code == 5                  # the event is no longer mapped


def test_command_errors_are_recorded_and_the_queue_goes_on():
    its = booted_its()
    send(its, its_command("MAPD", device_id=1 << 20, size=4, itt=ITT, valid=1),   # beyond DT
         its_command("MAPD", device_id=1, size=20, itt=ITT, valid=1),            # ITT too big
         its_command("MAPTI", device_id=2, event_id=0, intid=8192, icid=0),      # no MAPD
         its_command("MAPD", device_id=2, size=1, itt=ITT, valid=1),
         its_command("MAPTI", device_id=2, event_id=0, intid=100, icid=0),       # not an LPI
         its_command("MAPTI", device_id=2, event_id=4, intid=8192, icid=0),      # EventID OOR
         its_command("INT", device_id=2, event_id=0),                            # no ITE
         its_command("MAPC", icid=0, rdbase=5, valid=1),                         # no CPU 5
         its_command("INVALL", icid=3))                                           # no MAPC
    errors = [error_name(r.code) for r in its.take_records() if r.kind == "command_error"]
    assert errors == ["E_ITS_MAPD_DEVICE_OOR", "E_ITS_MAPD_ITTSIZE_OOR",
                      "E_ITS_MAPTI_UNMAPPED_DEVICE", "E_ITS_MAPTI_PHYSICALID_OOR",
                      "E_ITS_MAPTI_ID_OOR", "E_ITS_INT_UNMAPPED_INTERRUPT",
                      "E_ITS_MAPC_PROCNUM_OOR", "E_ITS_INVALL_UNMAPPED_COLLECTION"]
    assert its.readq(GITS_CREADR) == 9 * 32                   # none of them stalled the queue


def test_a_memory_fault_stalls_the_queue_until_retry():
    its = booted_its()
    # An ITT outside memory: MAPTI's ITE write faults.
    send(its, its_command("MAPD", device_id=3, size=4, itt=64 << 20, valid=1),
         its_command("MAPC", icid=0, rdbase=0, valid=1),
         its_command("MAPTI", device_id=3, event_id=0, intid=8192, icid=0),
         its_command("SYNC"))
    assert its.readq(GITS_CREADR) == 2 * 32 | 1               # Stalled at the MAPTI
    assert its.take_records()[-1][:2] == ("stall", 0)
    send(its, its_command("SYNC"))                            # more commands: still stalled
    assert its.readq(GITS_CREADR) == 2 * 32 | 1
    send(its, its_command("MAPD", device_id=3, size=4, itt=ITT, valid=1))
    assert its.readq(GITS_CREADR) == 2 * 32 | 1
    # Fix the table behind the stalled command, then retry: the queue drains.
    its.mem_write(QUEUE, its_command("MAPD", device_id=3, size=4, itt=ITT, valid=1))
    its.mem_write(QUEUE + 64, its_command("MAPD", device_id=3, size=4, itt=ITT, valid=1))
    its.writeq(GITS_CWRITER, its.readq(GITS_CWRITER) | 1)
    assert its.readq(GITS_CREADR) == 6 * 32


def test_registers_read_back_as_the_architecture_says():
    its = ITS()
    assert its.readq(GITS_TYPER) == 0x1F0001EFB1
    its.writeq(GITS_BASER(0), (1 << 64) - 1)
    assert its.readq(GITS_BASER(0)) == 0xB9E7FFFFFFFFFFFF    # Indirect RAZ/WI; Type, Entry_Size RO
    its.writeq(GITS_CBASER, (1 << 64) - 1)
    assert its.readq(GITS_CBASER) == 0xB8EFFFFFFFFFFCFF      # RES0 bits read as 0
    its.writel(GITS_CTLR, 1)
    its.writeq(GITS_CBASER, 0)                                # ignored while enabled
    assert its.readq(GITS_CBASER) == 0xB8EFFFFFFFFFFCFF
    assert its.readl(GITS_CTLR) == 0x80000001
    its.writeq(GITS_CREADR, 0x40)                             # read-only
    assert its.readq(GITS_CREADR) == 0


def test_commands_encode_and_decode():
    c = its_command("MAPTI", device_id=8, event_id=1, intid=8193, icid=2)
    assert decode_command(c) == ("MAPTI", {"device_id": 8, "event_id": 1, "intid": 8193, "icid": 2})
    with pytest.raises(TypeError, match="INT has no field intid"):
        its_command("INT", intid=3)
    with pytest.raises(ValueError, match="256-byte aligned"):
        its_command("MAPD", itt=0x1010)
    with pytest.raises(ValueError, match="unknown ITS command"):
        its_command("MAPX")


def test_v2m_any_writer_raises_any_spi_in_its_frame():
    v2m = GICv2m(first_spi=80, num_spis=64)
    assert v2m.readl(MSI_TYPER) == 0x500040 and v2m.readl(MSI_IIDR) == 0x05100000
    v2m.deliver(0x51, device_id=8)
    v2m.deliver(0x51, device_id=16)                           # the frame cannot tell them apart
    v2m.writel(MSI_SETSPI_NS, 0x451)                          # bits [9:0] are the INTID
    v2m.writel(MSI_SETSPI_NS, 0x4F)                           # below the frame: ignored
    v2m.writel(MSI_SETSPI_NS, 0x90)                           # above it: ignored
    v2m.write(MSI_SETSPI_NS, 0x52, 1)                         # byte writes: ignored (as QEMU)
    assert v2m.take_raised() == [0x51, 0x51, 0x51]
    assert v2m.ignored == 2
    with pytest.raises(ValueError, match="out of range"):
        GICv2m(first_spi=1000, num_spis=64)


def test_bad_input_to_the_faces_is_a_clear_error():
    its = ITS(memory_size=1 << 20)
    with pytest.raises(ValueError, match="num_cpus must be 1..8"):
        ITS(num_cpus=9)
    with pytest.raises(TypeError, match="offset must be an integer, not str"):
        its.readl("0x8")
    with pytest.raises(ValueError, match="access size must be 1, 2, 4 or 8"):
        its.read(0x8, 3)
    with pytest.raises(ValueError, match="value 0x100000000 out of range"):
        its.writel(GITS_CTLR, 1 << 32)
    with pytest.raises(ValueError, match="cpu 1: this GIC has redistributors 0..0"):
        its.gicr_readl(1, GICR_CTLR)
    with pytest.raises(ValueError, match="bus error reading 4 bytes at 0x100000"):
        its.mem_read(1 << 20, 4)
    assert its.lpi_pending(0, 8192) is None              # no LPI tables programmed yet
    with pytest.raises(ValueError, match="an ITS command is 32 bytes, not 8"):
        decode_command(bytes(8))
    assert decode_command(bytes([0x2A]) + bytes(31)) == ("unknown 0x2a", {})
    with pytest.raises(TypeError, match="first_spi must be an integer"):
        GICv2m(first_spi=None)
