"""Our ITS and GICv2m models against QEMU's own (qemu-system-aarch64 -M virt, qtest).

Random command sequences run on both; registers (CTLR, CREADR, CWRITER), the tables each ITS
writes to memory (device table, collection table, ITTs: ours use QEMU 7.2's entry formats), the
LPI pending tables of both redistributors, and the LPIs a GITS_TRANSLATER write makes pending
must agree. qtest's writes carry no requester ID, so QEMU sees every translation with DeviceID 0:
the random sequences map DeviceID 0 among others. For the frame, random reads and writes of every
size: the values read and the SPIs raised (intercepted at the GIC's inputs) must agree.

Where QEMU 7.2 and the architecture part ways we follow the architecture; QEMU_DIFFERENCES lists
each case and test_qemu_differences checks that each is still exactly that difference.
"""
import os
import random

import pytest

from vfiolab.hw.gic import (GICR_CTLR, GICR_PENDBASER, GICR_PROPBASER, GITS_BASER, GITS_CBASER,
                            GITS_CREADR, GITS_CTLR, GITS_CWRITER, GITS_TRANSLATER, ITS, COMMANDS,
                            GICv2m, its_command)
from vfiolab.qtest import QTest, find_qemu

QEMU = "qemu-system-aarch64"
ITS_BASE, GICR_BASE, GICR_STRIDE, V2M_BASE = 0x08080000, 0x080A0000, 0x20000, 0x08020000
RAM = 0x40000000
CPUS = 2
PROP, PEND, QUEUE, DT, CT = RAM + 0x100000, RAM + 0x200000, RAM + 0x300000, RAM + 0x310000, RAM + 0x320000
ITTS = [RAM + 0x400000 + 0x1000 * i for i in range(4)]
OUTSIDE_RAM = 0x60000000            # unassigned on virt with -m 256M, past our flat memory
QUEUE_ENTRIES = 128                 # CBASER.Size 0: one 4 KiB page
LPI_IDBITS = 13                     # PROPBASER.IDbits: INTIDs below 16384

QEMU_DIFFERENCES = {
    "res0_bits": "QEMU 7.2 keeps what is written to RES0 bits of GITS_CBASER, GITS_CWRITER and "
                 "GICR_PROPBASER/PENDBASER; the architecture makes them RES0, ours read as 0",
    "creadr_writable": "QEMU 7.2 lets software write GITS_CREADR; it is read-only in GICv3, "
                       "ours ignores the write",
    "indirect": "QEMU 7.2 implements two-level device/collection tables (GITS_BASER.Indirect); "
                "ours are flat only, Indirect is RAZ/WI (allowed by the architecture)",
    "unassigned_reads": "QEMU 7.2 reads commands from an address where nothing is (outside RAM) as "
                        "zeros and runs them (opcode 0: ignored); ours takes the bus error as a memory "
                        "fault and stalls the queue, as it does for a table write there (which QEMU "
                        "stalls on too)",
    "lpi_tables_locked": "GICR_PROPBASER/PENDBASER written while GICR_CTLR.EnableLPIs is 1 "
                         "(UNPREDICTABLE in the architecture): QEMU 7.2 takes the new value; ours "
                         "ignores the write and keeps the tables in use, the other allowed outcome",
    "mapd_unmap_size": "MAPD with V=0 and Size > GITS_TYPER.ID_bits: QEMU 7.2 ignores the command "
                       "(the device stays mapped); the architecture checks Size only when V=1 "
                       "(ITTSIZE_OOR), as KVM's vgic-its does, so ours unmaps the device",
}

if not find_qemu(QEMU):
    pytest.skip(f"{QEMU} is not installed: QEMU's ITS and GICv2m cannot be compared "
                "(on Debian or Ubuntu: sudo apt install qemu-system-arm)", allow_module_level=True)


class QemuITS:
    def __init__(self, q):
        self.q = q

    def readq(self, off): return self.q.readq(ITS_BASE + off)                  # noqa: E704
    def readl(self, off): return self.q.readl(ITS_BASE + off)                  # noqa: E704
    def writeq(self, off, v): self.q.writeq(ITS_BASE + off, v)                 # noqa: E704
    def writel(self, off, v): self.q.writel(ITS_BASE + off, v)                 # noqa: E704
    def gicr_readq(self, cpu, off): return self.q.readq(GICR_BASE + GICR_STRIDE * cpu + off)  # noqa
    def gicr_writeq(self, cpu, off, v): self.q.writeq(GICR_BASE + GICR_STRIDE * cpu + off, v)  # noqa
    def gicr_writel(self, cpu, off, v): self.q.writel(GICR_BASE + GICR_STRIDE * cpu + off, v)  # noqa
    def mem_write(self, addr, data): self.q.write(addr, data)                  # noqa: E704
    def mem_read(self, addr, n): return self.q.read(addr, n)                   # noqa: E704
    def memset(self, addr, n): self.q.memset(addr, n, 0)                       # noqa: E704


class OurITS(ITS):
    def __init__(self):
        super().__init__(num_cpus=CPUS, memory_size=RAM + (256 << 20))

    def memset(self, addr, n):
        self.mem_write(addr, bytes(n))


@pytest.fixture(scope="module")
def qemu_its():
    with QTest(QEMU, ["-M", "virt,gic-version=3,its=on", "-m", "256M", "-smp", str(CPUS)]) as q:
        yield QemuITS(q)


def boot(its):
    """Start over: ITS and LPIs off, tables zeroed, then programmed as Linux's its_init does."""
    its.writel(GITS_CTLR, 0)
    for cpu in range(CPUS):
        its.gicr_writel(cpu, GICR_CTLR, 0)
    for addr, n in [(PEND, 0x10000 * CPUS), (QUEUE, 0x1000), (DT, 0x1000), (CT, 0x1000)] + \
            [(a, 0x1000) for a in ITTS]:
        its.memset(addr, n)
    its.mem_write(PROP, bytes([0xA1]) * 0x2000)
    for cpu in range(CPUS):
        its.gicr_writeq(cpu, GICR_PROPBASER, PROP | LPI_IDBITS)
        its.gicr_writeq(cpu, GICR_PENDBASER, PEND + 0x10000 * cpu)
        its.gicr_writel(cpu, GICR_CTLR, 1)
    its.writeq(GITS_BASER(0), 1 << 63 | DT)                 # 4 KiB: 512 DeviceIDs
    its.writeq(GITS_BASER(1), 1 << 63 | CT)                 # 512 collections
    its.writeq(GITS_CBASER, 1 << 63 | QUEUE)
    its.writeq(GITS_CWRITER, 0)
    its.writel(GITS_CTLR, 1)


def random_command(rng):
    device = rng.choice([0, 0, 0, 1, 2, 511, 512])          # 512 is beyond the device table
    event = rng.choice([0, 1, 2, 3, 0, 1, 2, 3, 5, 7, 31, 64])
    icid = rng.choice([0, 1, 0, 1, 2, 511, 512])
    name = rng.choice(["MAPD", "MAPD", "MAPC", "MAPC", "MAPTI", "MAPTI", "MAPTI", "MAPI", "INT",
                       "INT", "CLEAR", "DISCARD", "MOVI", "SYNC", "INV", "INVALL", "MOVALL",
                       "unknown"])
    if name == "MAPD":
        itt = rng.choice(ITTS + [OUTSIDE_RAM]) if rng.random() < 0.1 else ITTS[device % 4]
        valid = rng.random() < 0.85
        # Size 16 (> GITS_TYPER.ID_bits) only with V=1: see QEMU_DIFFERENCES["mapd_unmap_size"].
        size = rng.choice([0, 2, 4, 5, 15, 16] if valid else [0, 2, 4, 5, 15])
        return its_command("MAPD", device_id=device, size=size, itt=itt, valid=valid)
    if name == "MAPC":
        return its_command("MAPC", icid=icid, rdbase=rng.choice([0, 1, 1, 2]),
                           valid=rng.random() < 0.85)
    if name == "MAPTI":
        intid = rng.choice([8192, 8193, 8200, 8192 + rng.randrange(64), 16383, 16384, 1023, 100,
                            65535, 65536])
        return its_command("MAPTI", device_id=device, event_id=event, intid=intid, icid=icid)
    if name in ("MAPI", "MOVI"):
        return its_command(name, device_id=device, event_id=event, icid=icid)
    if name in ("INT", "CLEAR", "DISCARD", "INV"):
        return its_command(name, device_id=device, event_id=event)
    if name == "SYNC":
        return its_command("SYNC", rdbase=rng.choice([0, 1]))
    if name == "INVALL":
        return its_command("INVALL", icid=icid)
    if name == "MOVALL":
        return its_command("MOVALL", rdbase=rng.choice([0, 1, 2]), rdbase2=rng.choice([0, 1]))
    op = rng.choice([0x00, 0x02, 0x06, 0x07, 0x10, 0x2A, 0xFF])
    assert op not in COMMANDS.values()
    return bytes([op]) + bytes(31)


def random_case(seed, batches=6):
    """[(commands, retry, translations)]: each batch is queued, CWRITER written (with Retry
    sometimes), then EventIDs written to GITS_TRANSLATER."""
    rng = random.Random(seed)
    # Most cases start from a working set-up (as Linux's its_cpu_init_collections and an MSI
    # allocation leave it), so the random commands act on mapped events too.
    setup = []
    if rng.random() < 0.8:
        setup = [its_command("MAPC", icid=0, rdbase=0, valid=1),
                 its_command("MAPC", icid=1, rdbase=1, valid=1)]
        for device in (0, 1, 2):
            setup.append(its_command("MAPD", device_id=device, size=4, itt=ITTS[device], valid=1))
            setup += [its_command("MAPTI", device_id=device, event_id=e,
                                  intid=8192 + 32 * device + e, icid=rng.choice([0, 1]))
                      for e in range(4)]
    case = [(setup, False, [])] if setup else []
    for _ in range(batches):
        commands = [random_command(rng) for _ in range(rng.randrange(1, 8))]
        translations = [rng.choice([0, 1, 2, 3, 5, 7, 64]) for _ in range(rng.randrange(0, 4))]
        case.append((commands, rng.random() < 0.3, translations))
    return case


def observe(its):
    state = {"CTLR": its.readl(GITS_CTLR), "CREADR": its.readq(GITS_CREADR),
             "CWRITER": its.readq(GITS_CWRITER)}
    for cpu in range(CPUS):
        state[f"pending{cpu}"] = its.mem_read(PEND + 0x10000 * cpu, (1 << (LPI_IDBITS + 1)) // 8)
    return state


def run_case(its, case):
    boot(its)
    states, queued = [], 0
    for commands, retry, translations in case:
        for c in commands:
            its.mem_write(QUEUE + 32 * (queued % QUEUE_ENTRIES), c)
            queued += 1
        its.writeq(GITS_CWRITER, 32 * (queued % QUEUE_ENTRIES) | int(retry))
        for event in translations:
            its.writel(GITS_TRANSLATER, event)
        states.append(observe(its))
    tables = {"DT": its.mem_read(DT, 0x1000), "CT": its.mem_read(CT, 0x1000)}
    for i, itt in enumerate(ITTS):
        tables[f"ITT{i}"] = its.mem_read(itt, 0x1000)
    return states, tables


def first_difference(ours, theirs):
    for i, (a, b) in enumerate(zip(ours[0], theirs[0])):
        for k in a:
            if a[k] != b[k]:
                return f"batch {i} {k}: ours {_show(a[k])} QEMU {_show(b[k])}"
    for k in ours[1]:
        if ours[1][k] != theirs[1][k]:
            at = next(j for j in range(len(ours[1][k])) if ours[1][k][j] != theirs[1][k][j])
            return (f"{k} at +{at:#x}: ours {ours[1][k][at & ~7:(at & ~7) + 16].hex()} "
                    f"QEMU {theirs[1][k][at & ~7:(at & ~7) + 16].hex()}")
    return None


def _show(v):
    if isinstance(v, bytes):
        return "{" + ", ".join(f"{8 * i + b}" for i, byte in enumerate(v) for b in range(8)
                               if byte >> b & 1) + "}"
    return hex(v)


def describe(case):
    from vfiolab.hw.gic import decode_command
    lines = []
    for commands, retry, translations in case:
        lines += [f"  {decode_command(c)}" for c in commands]
        lines.append(f"  CWRITER{' (Retry)' if retry else ''}; TRANSLATER {translations}")
    return "\n".join(lines)


# Random cases per chunk (4 chunks): 10 in CI; VFIOLAB_GIC_CASES=400 runs 1600 for a deeper look.
CASES = int(os.environ.get("VFIOLAB_GIC_CASES", "10"))


@pytest.mark.parametrize("chunk", range(4))
def test_its_random_command_sequences_agree_with_qemu(qemu_its, chunk):
    for seed in range(chunk * CASES, chunk * CASES + CASES):
        case = random_case(seed)
        ours, theirs = run_case(OurITS(), case), run_case(qemu_its, case)
        diff = first_difference(ours, theirs)
        assert diff is None, f"seed {seed}: {diff}\n{describe(case)}"


def test_its_identification_registers_agree_with_qemu():
    """Reset values and ID registers, on a QEMU of its own (the random cases change BASERs)."""
    with QTest(QEMU, ["-M", "virt,gic-version=3,its=on", "-m", "256M", "-smp", str(CPUS)]) as q:
        _compare_identification(QemuITS(q))


def _compare_identification(qemu_its):
    ours = OurITS()
    for off in (0x0, 0x4, 0x8, 0xC, 0x100, 0x108, 0x110, 0x138) + tuple(range(0xFFD0, 0x10000, 4)):
        assert ours.readl(off) == qemu_its.readl(off), hex(off)
    for cpu in range(CPUS):
        for off in (0x0, 0x4, 0x8, 0xC, 0x14):
            assert ours.gicr_readl(cpu, off) == qemu_its.q.readl(GICR_BASE + GICR_STRIDE * cpu + off), \
                (cpu, hex(off))


def test_its_random_register_writes_agree_with_qemu(qemu_its):
    """Random 32- and 64-bit writes of the defined fields (RES0 bits and Indirect left 0: see
    QEMU_DIFFERENCES) to CTLR, CBASER, CWRITER, BASER0..2 and the redistributors' LPI registers,
    with the ITS and LPIs switched on and off between them: every register reads back the same."""
    fields = {GITS_CTLR: 1, GITS_CBASER: 0xB8EFFFFFFFFFFCFF, GITS_CWRITER: 0xFFFE0,
              GITS_BASER(0): 0xB8E0FFFFFFFFFFFF, GITS_BASER(1): 0xB8E0FFFFFFFFFFFF,
              GITS_BASER(2): 0xB8E0FFFFFFFFFFFF}
    gicr_fields = {GICR_CTLR: 1, GICR_PROPBASER: 0x70FFFFFFFFFFF9F, GICR_PENDBASER: 0x70FFFFFFFFF0F80}
    rng = random.Random(7)
    ours = OurITS()
    for its in (ours, qemu_its):
        boot(its)
        its.writel(GITS_CTLR, 0)
    for step in range(300):
        if rng.random() < 0.7:
            reg = rng.choice(list(fields))
            value = rng.getrandbits(64) & fields[reg]
            if reg in (GITS_CBASER, GITS_BASER(0), GITS_BASER(1)):
                value = (value & ~0xFFFFFFFFFF000) | QUEUE    # keep tables and queue in RAM
            half = rng.choice([None, 0, 4])
            for its in (ours, qemu_its):
                if half is None:
                    its.writeq(reg, value)
                else:
                    its.writel(reg + half, value >> (8 * half) & 0xFFFFFFFF)
        else:
            cpu, reg = rng.randrange(CPUS), rng.choice(list(gicr_fields))
            value = rng.getrandbits(64) & gicr_fields[reg]
            if reg != GICR_CTLR:
                value = (value & ~0xFFFFFFFFFF000) | PEND
            for its in (ours, qemu_its):
                if reg == GICR_CTLR:
                    its.gicr_writel(cpu, reg, value)
                else:       # tables change only with LPIs off (QEMU_DIFFERENCES["lpi_tables_locked"])
                    its.gicr_writel(cpu, GICR_CTLR, 0)
                    its.gicr_writeq(cpu, reg, value)
        for reg in list(fields) + [GITS_CREADR]:
            assert ours.readq(reg) == qemu_its.readq(reg), f"step {step}: {reg:#x}"
        for cpu in range(CPUS):
            for reg in gicr_fields:
                assert ours.gicr_readq(cpu, reg) == qemu_its.gicr_readq(cpu, reg), (step, cpu, hex(reg))
    boot(qemu_its)


def test_translater_access_sizes_agree_with_qemu():
    """16- and 32-bit writes translate, 8-bit ones do not, a 64-bit one is its low word."""
    with QTest(QEMU, ["-M", "virt,gic-version=3,its=on", "-m", "256M", "-smp", str(CPUS)]) as q:
        theirs, ours = QemuITS(q), OurITS()
        results = []
        for its in (theirs, ours):
            boot(its)
            its.mem_write(QUEUE, its_command("MAPC", icid=0, rdbase=0, valid=1)
                          + its_command("MAPD", device_id=0, size=4, itt=ITTS[0], valid=1)
                          + b"".join(its_command("MAPTI", device_id=0, event_id=e, intid=8192 + e,
                                                 icid=0) for e in range(4)))
            its.writeq(GITS_CWRITER, 6 * 32)
            seen = []
            for size, event in ((1, 0), (2, 1), (4, 2), (8, 3 | 1 << 32)):
                if its is theirs:
                    q.command(f"write{ {1: 'b', 2: 'w', 4: 'l', 8: 'q'}[size]} "
                              f"0x{ITS_BASE + GITS_TRANSLATER:x} 0x{event:x}")
                else:
                    its.write(GITS_TRANSLATER, event, size)
                seen.append(its.mem_read(PEND + 1024, 1)[0])
            results.append(seen)
        assert results[0] == results[1] == [0, 0b10, 0b110, 0b1110]


def test_qemu_differences(qemu_its):
    """Each listed difference is still exactly that (a fixed QEMU, or a change of ours, shows)."""
    assert set(QEMU_DIFFERENCES) == {"res0_bits", "creadr_writable", "indirect", "mapd_unmap_size",
                                     "unassigned_reads", "lpi_tables_locked"}
    ones = (1 << 64) - 1
    ours = OurITS()
    for its in (ours, qemu_its):
        its.writel(GITS_CTLR, 0)
        its.writeq(GITS_CBASER, ones)
        its.writeq(GITS_CWRITER, ones)
        its.gicr_writel(0, GICR_CTLR, 0)
        its.gicr_writeq(0, GICR_PROPBASER, ones)
    # res0_bits
    assert qemu_its.readq(GITS_CBASER) == ones and ours.readq(GITS_CBASER) == 0xB8EFFFFFFFFFFCFF
    assert qemu_its.readq(GITS_CWRITER) == ones - 1 and ours.readq(GITS_CWRITER) == 0xFFFE0
    assert qemu_its.gicr_readq(0, GICR_PROPBASER) == ones
    assert ours.gicr_readq(0, GICR_PROPBASER) == 0x70FFFFFFFFFFF9F
    # creadr_writable
    for its in (ours, qemu_its):
        its.writeq(GITS_CBASER, 0)
        its.writeq(GITS_CREADR, 0x40)
    assert qemu_its.readq(GITS_CREADR) == 0x40 and ours.readq(GITS_CREADR) == 0
    # indirect
    for its in (ours, qemu_its):
        its.writeq(GITS_BASER(0), 1 << 63 | 1 << 62 | DT)
    assert qemu_its.readq(GITS_BASER(0)) >> 62 == 3 and ours.readq(GITS_BASER(0)) >> 62 == 2
    # mapd_unmap_size
    for its in (ours, qemu_its):
        boot(its)
        its.mem_write(QUEUE, its_command("MAPD", device_id=1, size=4, itt=ITTS[0], valid=1)
                      + its_command("MAPD", device_id=1, size=16, itt=ITTS[0], valid=0))
        its.writeq(GITS_CWRITER, 64)
        assert its.readq(GITS_CREADR) == 64
    assert qemu_its.mem_read(DT + 8, 8) == (0x9 | (ITTS[0] >> 8) << 6).to_bytes(8, "little")
    assert ours.mem_read(DT + 8, 8) == bytes(8)
    # lpi_tables_locked
    for its in (ours, qemu_its):
        boot(its)                                   # LPIs on, PENDBASER = PEND
        its.gicr_writeq(0, GICR_PENDBASER, PEND + 0x40000)
    assert qemu_its.gicr_readq(0, GICR_PENDBASER) == PEND + 0x40000
    assert ours.gicr_readq(0, GICR_PENDBASER) == PEND
    # unassigned_reads
    for its in (ours, qemu_its):
        boot(its)
        its.writel(GITS_CTLR, 0)
        its.writeq(GITS_CBASER, 1 << 63 | OUTSIDE_RAM)
        its.writel(GITS_CTLR, 1)
        its.writeq(GITS_CWRITER, 64)
    assert qemu_its.readq(GITS_CREADR) == 64 and ours.readq(GITS_CREADR) == 0 | 1
    boot(qemu_its)                     # leave QEMU's ITS as the random cases expect it


# ---- GICv2m ----
@pytest.fixture(scope="module")
def qemu_v2m():
    with QTest(QEMU, ["-M", "virt,gic-version=2", "-m", "256M"]) as q:
        # The GIC is virt's second unnamed device; its inputs 0.. are SPIs 32..
        q.irq_intercept_in("/machine/unattached/device[1]")
        q.writel(V2M_BASE + 0x40, 80)
        assert q.irq_events == [("raise", 48), ("lower", 48)], \
            "the GIC is not /machine/unattached/device[1] in this QEMU: update the test"
        q.irq_events.clear()
        yield q


def test_v2m_random_accesses_agree_with_qemu(qemu_v2m):
    q, ours = qemu_v2m, GICv2m(first_spi=80, num_spis=64)
    rng = random.Random(16)
    names = {1: "b", 2: "w", 4: "l", 8: "q"}
    for i in range(400):
        size = rng.choice([1, 2, 4, 4, 4, 8])
        offset = rng.choice([0x0, 0x8, 0x40, 0x40, 0x40, 0x44, 0xFCC, 0xFD0, 0x42,
                             rng.randrange(0, 0x1000, 4)])
        offset -= offset % size
        if rng.random() < 0.5:
            value = rng.choice([80, 81, 143, 144, 79, 0x451, 0xFFFFFF51, rng.randrange(1 << 32),
                                rng.randrange(70, 160)])
            if size == 8:
                value |= rng.choice([0, 81, 200]) << 32
            value &= (1 << (8 * size)) - 1
            ours.write(offset, value, size)
            q.command(f"write{names[size]} 0x{V2M_BASE + offset:x} 0x{value:x}")
        else:
            theirs = int(q.command(f"read{names[size]} 0x{V2M_BASE + offset:x}")[0], 16)
            assert ours.read(offset, size) == theirs, f"access {i}: read{names[size]} {offset:#x}"
    qemu_raised = [32 + n for what, n in q.irq_events if what == "raise"]
    assert ours.take_raised() == qemu_raised
    assert len(qemu_raised) > 20
