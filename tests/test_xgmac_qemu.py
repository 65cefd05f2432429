"""Our xgmac model against QEMU's (qemu-system-arm -M highbank, xgmac at 0xfff50000, via qtest).

QEMU's NIC is wired to a UDP socket netdev, so the frames it sends are datagrams this test reads and
the frames it is to receive are datagrams this test sends (QEMU must be running for its net queue to
move: the test resumes it over QMP; with qtest as the accelerator no guest code runs).

Random descriptor programs in the part both models agree on (single-descriptor frames of 60..2048
bytes in buffer 1, ST and TE set, every interrupt enabled) must give the same frames, descriptors,
ring position and status. Where they differ, a test below shows each side's behaviour and says which
is right, so a QEMU that changes (or a regression of ours) shows up:

  QEMU                                                ours (the DesignWare DMA, Linux's driver)
  sends only the last descriptor's length of a        the whole frame, all buffers
    multi-descriptor frame
  stops (OWN kept) at a descriptor using buffer 2     buffer 1 then buffer 2
  ignores DMA_CONTROL.ST and CONTROL.TE (TX_POLL      the TX DMA runs only with ST and TE
    always sends)
  TI on every LAST descriptor, NIS always             TI only with INTERRUPT; NIS only when enabled
  never TU when the ring runs out                     TU and the TX DMA suspended
  does not pad short frames                           padded to 60 bytes unless DISABLE_PAD
  writes a received frame whole into buffer 1,        at most the buffer sizes, then the next
    past its size                                       descriptors (FIRST/LAST)
  does not write the FCS, no FRAME_TYPE bit           FCS in memory (length includes it), FRAME_TYPE
  DMA_INTR_ENA keeps reserved bits                    only [16:0] exist
Both use 32-bit descriptor and buffer addresses (the descriptor fields are 32 bits); QEMU reaches
physical memory directly, ours goes through the bus/SMMU.
"""
import json
import os
import random
import socket
import struct
import tempfile
import time
import zlib

import pytest

from vfiolab.hw import xgmac as X
from vfiolab.hw.xgmac import Xgmac, rx_descriptor, tx_descriptor
from vfiolab.qtest import QTest, find_qemu

QEMU = "qemu-system-arm"
BASE = 0xFFF50000                      # highbank's first xgmac
TX_RING, RX_RING, TX_BUFS, RX_BUFS = 0x10000, 0x20000, 0x100000, 0x200000
ALL_IRQS = 0x1FFFF

if not find_qemu(QEMU):
    pytest.skip(f"{QEMU} is not installed: QEMU's xgmac model cannot be compared "
                "(on Debian or Ubuntu: sudo apt install qemu-system-arm)", allow_module_level=True)


def _free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class QemuXgmac:
    """QEMU's xgmac behind the same calls as vfiolab.hw.xgmac.Xgmac (mem_*, readl/writel, run,
    frames_sent, receive)."""

    def __init__(self):
        self.wire = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.wire.bind(("127.0.0.1", 0))
        self.qemu_port = _free_udp_port()
        self._dir = tempfile.TemporaryDirectory()
        qmp_path = os.path.join(self._dir.name, "qmp")
        netdev = (f"socket,id=n0,udp=127.0.0.1:{self.wire.getsockname()[1]},"
                  f"localaddr=127.0.0.1:{self.qemu_port}")
        self.q = QTest(QEMU, ["-M", "highbank", "-m", "512M", "-netdev", netdev,
                              "-net", "nic,model=xgmac,netdev=n0",
                              "-qmp", f"unix:{qmp_path},server=on,wait=off"])
        self.q.readl(BASE + X.VERSION)              # QEMU is up: its QMP socket exists
        self._qmp = socket.socket(socket.AF_UNIX)
        self._qmp.connect(qmp_path)
        f = self._qmp.makefile("rw")
        f.readline()
        for command in ("qmp_capabilities", "cont"):  # a stopped VM's net queue holds packets
            f.write(json.dumps({"execute": command}) + "\n")
            f.flush()
            while "return" not in json.loads(f.readline()):
                pass
        self._qmp_file = f

    def close(self):
        self.q.close()
        self._qmp_file.close()
        self._qmp.close()
        self.wire.close()
        self._dir.cleanup()

    def readl(self, off):
        return self.q.readl(BASE + off)

    def writel(self, off, value):
        self.q.writel(BASE + off, value)

    def mem_write(self, addr, data):
        self.q.write(addr, data)

    def mem_read(self, addr, n):
        return self.q.read(addr, n)

    def run(self):
        pass                                        # QEMU works inside the register write

    def frames_sent(self, expect=None):
        """Datagrams QEMU sent; waits for `expect` of them (or a short quiet spell)."""
        frames = []
        self.wire.settimeout(2.0 if expect else 0.05)
        while expect is None or len(frames) < expect:
            try:
                frames.append(self.wire.recv(65536))
            except socket.timeout:
                break
            if expect is None:
                self.wire.settimeout(0.05)
        self.wire.settimeout(0)
        try:
            while True:
                frames.append(self.wire.recv(65536))
        except (BlockingIOError, socket.timeout):
            pass
        return frames

    def _rx_signature(self):
        return self.readl(X.DMA_STATUS), self.readl(X.DMA_CUR_RX_DESC)

    def receive(self, frame):
        """Send a datagram; True once QEMU's status or RX ring position moved (the frame was
        handled in QEMU's main loop)."""
        before = self._rx_signature()
        self.wire.sendto(frame, ("127.0.0.1", self.qemu_port))
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            if self._rx_signature() != before:
                return True
            time.sleep(0.002)
        return False


@pytest.fixture(scope="module")
def qemu():
    q = QemuXgmac()
    yield q
    q.close()


def clean(dev):
    """Both models to a known state: DMAs off, status clear, rings at their bases."""
    dev.writel(X.DMA_CONTROL, 0)
    dev.writel(X.CONTROL, 0)
    dev.writel(X.DMA_INTR_ENA, 0)
    dev.writel(X.DMA_STATUS, 0xFFFFFFFF)
    dev.writel(X.DMA_TX_BASE_ADDR, TX_RING)
    dev.writel(X.DMA_RX_BASE_ADDR, RX_RING)
    dev.frames_sent()


def start_tx(dev, st=True, te=True, intr=ALL_IRQS):
    dev.writel(X.DMA_INTR_ENA, intr)
    dev.writel(X.CONTROL, X.CONTROL_TE if te else 0)
    dev.writel(X.DMA_CONTROL, X.DMA_CONTROL_ST if st else 0)
    dev.writel(X.DMA_TX_POLL, 1)
    dev.run()


def random_frame(rng, n):
    return bytes(rng.getrandbits(8) for _ in range(n))


def random_tx_program(rng):
    """[(descriptor address, descriptor bytes, frame)] of single-descriptor frames, a ring of
    2..8 entries whose end is END_RING or a descriptor the CPU still owns."""
    slots = rng.randint(2, 8)
    program = []
    for i in range(slots):
        n = rng.randint(60, 2048)
        buf = TX_BUFS + 0x1000 * i
        last_slot = i == slots - 1
        own = not (rng.random() < 0.15 or (last_slot and rng.random() < 0.5))
        desc = tx_descriptor(buf, n, end_ring=last_slot, own=own)
        program.append((TX_RING + 32 * i, desc, random_frame(rng, n), buf))
    return program


def load_tx(dev, program):
    for addr, desc, frame, buf in program:
        dev.mem_write(buf, frame)
        dev.mem_write(addr, desc)


def observe_tx(dev, program, expect):
    """What a driver can see: frames, descriptor flags, ring position, TI (TU and NIS differ:
    see test_interrupt_bit_and_summaries)."""
    frames = dev.frames_sent(expect) if not isinstance(dev, Xgmac) else dev.frames_sent()
    flags = [struct.unpack("<I", dev.mem_read(addr, 4))[0] for addr, *_ in program]
    status = dev.readl(X.DMA_STATUS) & X.STATUS["TI"]
    return frames, flags, dev.readl(X.DMA_CUR_TX_DESC), status


def expected_frame_count(program):
    n = 0
    for _, desc, _, _ in program:
        if not struct.unpack_from("<I", desc)[0] & X.DESC_OWN:
            break
        n += 1
    return n


@pytest.mark.parametrize("seed", range(12))
def test_random_tx_rings_agree(qemu, seed):
    rng = random.Random(seed)
    ours = Xgmac(memory_size=8 << 20)
    for _ in range(3):                              # three programs per seed, state carried on
        program = random_tx_program(rng)
        results = []
        for dev in (ours, qemu):
            clean(dev)
            load_tx(dev, program)
            start_tx(dev)
            results.append(observe_tx(dev, program, expected_frame_count(program)))
        assert results[0] == results[1], f"seed {seed}: ours {results[0][1:]} qemu {results[1][1:]}"
        assert len(results[0][0]) == expected_frame_count(program)


@pytest.mark.parametrize("seed", range(6))
def test_random_received_frames_agree(qemu, seed):
    """Frames that fit buffer 1 into a ring of RX descriptors: the same bytes, length and
    FIRST/LAST, ring position and RI (QEMU does not write the FCS or FRAME_TYPE: masked here)."""
    rng = random.Random(100 + seed)
    ours = Xgmac(memory_size=8 << 20)
    slots = rng.randint(1, 6)
    frames = [random_frame(rng, rng.randint(60, 1500)) for _ in range(rng.randint(1, slots))]
    results = []
    for dev in (ours, qemu):
        clean(dev)
        for i in range(slots):
            dev.mem_write(RX_BUFS + 0x1000 * i, bytes(0x800))
            dev.mem_write(RX_RING + 32 * i, rx_descriptor(RX_BUFS + 0x1000 * i, 1536,
                                                          end_ring=i == slots - 1))
        dev.writel(X.DMA_INTR_ENA, ALL_IRQS)
        dev.writel(X.CONTROL, X.CONTROL_RE)
        dev.writel(X.DMA_CONTROL, X.DMA_CONTROL_SR)
        for f in frames:
            assert dev.receive(f)
            dev.run()
        flags = [struct.unpack("<I", dev.mem_read(RX_RING + 32 * i, 4))[0] & ~X.RX_FRAME_TYPE
                 for i in range(slots)]
        data = [dev.mem_read(RX_BUFS + 0x1000 * i, len(f)) for i, f in enumerate(frames)]
        status = dev.readl(X.DMA_STATUS) & (X.STATUS["RI"] | X.STATUS["NIS"])
        results.append((flags, data, dev.readl(X.DMA_CUR_RX_DESC), status))
    assert results[0] == results[1]
    assert results[0][1] == frames


def test_register_file_agrees(qemu):
    ours = Xgmac(mac=b"\x52\x54\x00\x12\x34\x56")
    for dev in (ours, qemu):
        clean(dev)
    for off in (X.CONTROL, X.FRAME_FILTER, X.FLOW_CTRL, 0x300, 0x400):
        for dev in (ours, qemu):
            dev.writel(off, 0x5A5A00F0)
        assert ours.readl(off) == qemu.readl(off) == 0x5A5A00F0, hex(off)
    for dev in (ours, qemu):
        dev.writel(X.VERSION, 0)
        dev.writel(X.DMA_BUS_MODE, 0x00010000)
    assert ours.readl(X.VERSION) == qemu.readl(X.VERSION) == 0x1012
    assert ours.readl(X.DMA_BUS_MODE) == qemu.readl(X.DMA_BUS_MODE) == 0x00010000
    # QEMU's default MAC (52:54:00:12:34:56) in ADDR_HIGH/LOW(0), as the driver reads it
    assert (qemu.readl(X.ADDR_HIGH0), qemu.readl(X.ADDR_LOW0)) == (0x5634, 0x12005452)
    assert (ours.readl(X.ADDR_HIGH0), ours.readl(X.ADDR_LOW0)) == (0x5634, 0x12005452)
    for dev in (ours, qemu):
        clean(dev)


# ---- the listed differences: each side's behaviour, and which is right ------------------------

def one_frame_setup(dev, descriptors):
    clean(dev)
    for addr, data in descriptors:
        dev.mem_write(addr, data)


def test_multi_descriptor_frame_qemu_sends_the_last_buffers_length(qemu):
    """Ours is right: a frame is FIRST..LAST, every buffer (Linux's xgmac_xmit maps the head
    and each fragment into its own descriptor). QEMU gathers all of it but sends only the last
    descriptor's length from the start of the frame."""
    f = random_frame(random.Random(5), 300)
    parts = [(0, 100), (100, 250), (250, 300)]
    ours = Xgmac(memory_size=8 << 20)
    got = {}
    for name, dev in (("ours", ours), ("qemu", qemu)):
        descs = []
        for i, (lo, hi) in enumerate(parts):
            dev_buf = TX_BUFS + 0x1000 * i
            dev.mem_write(dev_buf, f[lo:hi])
            descs.append((TX_RING + 32 * i, tx_descriptor(dev_buf, hi - lo, first=i == 0,
                                                          last=i == 2, end_ring=i == 2)))
        one_frame_setup(dev, descs)
        start_tx(dev)
        got[name] = dev.frames_sent(1) if dev is qemu else dev.frames_sent()
    assert got["ours"] == [f]
    assert got["qemu"] == [f[:50]]                  # the last descriptor's 50 bytes


def test_buffer_2_qemu_stops_ours_sends_both(qemu):
    """Ours is right: buffer 2 carries data when its size is non-zero (Linux's desc_set_buf_len
    puts the part over MAX_DESC_BUF_SZ there). QEMU stops at such a descriptor, OWN still set."""
    f = random_frame(random.Random(6), 200)
    ours = Xgmac(memory_size=8 << 20)
    got = {}
    for name, dev in (("ours", ours), ("qemu", qemu)):
        dev.mem_write(TX_BUFS, f[:120])
        dev.mem_write(TX_BUFS + 0x1000, f[120:])
        one_frame_setup(dev, [(TX_RING, tx_descriptor(TX_BUFS, 120, TX_BUFS + 0x1000, 80,
                                                      end_ring=True))])
        start_tx(dev)
        frames = dev.frames_sent(None) if dev is qemu else dev.frames_sent()
        got[name] = (frames, struct.unpack("<I", dev.mem_read(TX_RING, 4))[0] & X.DESC_OWN)
    assert got["ours"] == ([f], 0)
    assert got["qemu"] == ([], X.DESC_OWN)


def test_st_and_te_qemu_ignores_them(qemu):
    """Ours is right: the TX DMA runs only when DMA_CONTROL.ST is set (Linux's xgmac_mac_enable
    sets ST and TE before any poll), and the vfio reset module relies on clearing them to stop
    the device. QEMU sends on every TX_POLL."""
    f = random_frame(random.Random(7), 64)
    ours = Xgmac(memory_size=8 << 20)
    got = {}
    for name, dev in (("ours", ours), ("qemu", qemu)):
        dev.mem_write(TX_BUFS, f)
        one_frame_setup(dev, [(TX_RING, tx_descriptor(TX_BUFS, 64, end_ring=True))])
        start_tx(dev, st=False, te=False)
        got[name] = dev.frames_sent(None) if dev is qemu else dev.frames_sent()
    assert got == {"ours": [], "qemu": [f]}


def test_interrupt_bit_and_summaries(qemu):
    """Ours is right (DesignWare: TI after a frame whose last descriptor has IC set; NIS is the
    OR of the *enabled* normal bits). QEMU sets TI|NIS for every last descriptor, enabled or not,
    and never raises TU when the ring runs out."""
    f = random_frame(random.Random(8), 64)
    ours = Xgmac(memory_size=8 << 20)
    got = {}
    for name, dev in (("ours", ours), ("qemu", qemu)):
        dev.mem_write(TX_BUFS, f)
        one_frame_setup(dev, [(TX_RING, tx_descriptor(TX_BUFS, 64, interrupt=False,
                                                      end_ring=True)),])
        start_tx(dev, intr=0)
        dev.frames_sent(1) if dev is qemu else dev.frames_sent()
        got[name] = X.decode_status(dev.readl(X.DMA_STATUS))["bits"]
    assert got == {"ours": ["TU"], "qemu": ["TI", "NIS"]}


def test_short_frames_are_padded_by_ours_only(qemu):
    """Ours is right: the MAC pads frames under 60 bytes (64 with the FCS) unless the descriptor's
    DISABLE_PAD or CONTROL.DP says not to; Linux relies on it (xgmac_xmit sends skb->len as is).
    QEMU sends 20 bytes."""
    f = random_frame(random.Random(9), 20)
    ours = Xgmac(memory_size=8 << 20)
    got = {}
    for name, dev in (("ours", ours), ("qemu", qemu)):
        dev.mem_write(TX_BUFS, f)
        one_frame_setup(dev, [(TX_RING, tx_descriptor(TX_BUFS, 20, end_ring=True))])
        start_tx(dev)
        got[name] = dev.frames_sent(1) if dev is qemu else dev.frames_sent()
    assert got == {"ours": [f + bytes(40)], "qemu": [f]}


def test_received_frame_larger_than_buffer_1(qemu):
    """Ours is right: the DMA writes at most buffer 1's size, then continues in the next
    descriptor (LAST and the length on the final one). QEMU writes the whole frame into buffer 1,
    over whatever follows it, and hands back one descriptor."""
    f = random_frame(random.Random(10), 200)
    ours = Xgmac(memory_size=8 << 20)
    got = {}
    for name, dev in (("ours", ours), ("qemu", qemu)):
        clean(dev)
        dev.mem_write(RX_BUFS, b"\xEE" * 0x200)
        dev.mem_write(RX_BUFS + 0x1000, b"\xEE" * 0x200)
        dev.mem_write(RX_RING, rx_descriptor(RX_BUFS, 128))
        dev.mem_write(RX_RING + 32, rx_descriptor(RX_BUFS + 0x1000, 128, end_ring=True))
        dev.writel(X.CONTROL, X.CONTROL_RE)
        dev.writel(X.DMA_CONTROL, X.DMA_CONTROL_SR)
        assert dev.receive(f)
        dev.run()
        flags = [struct.unpack("<I", dev.mem_read(RX_RING + 32 * i, 4))[0] & ~X.RX_FRAME_TYPE
                 for i in (0, 1)]               # FRAME_TYPE: see test_received_fcs_and_frame_type
        got[name] = (flags, dev.mem_read(RX_BUFS, 200), dev.mem_read(RX_BUFS + 0x1000, 76))
    fcs = zlib.crc32(f).to_bytes(4, "little")
    assert got["ours"] == ([X.RX_FIRST, X.RX_LAST | 204 << 16],
                           f[:128] + b"\xEE" * 72, f[128:] + fcs)
    assert got["qemu"] == ([X.RX_FIRST | X.RX_LAST | 204 << 16, X.DESC_OWN],
                           f, b"\xEE" * 76)


def test_received_fcs_and_frame_type(qemu):
    """Ours is right: the MAC stores the frame with its FCS (the length counts it, which is why
    QEMU adds 4 too) and sets FRAME_TYPE for an Ethernet II type (>= 0x600), which Linux's
    desc_get_rx_frame_len uses to drop the FCS. QEMU writes neither."""
    f = b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + bytes(range(50))
    ours = Xgmac(memory_size=8 << 20)
    got = {}
    for name, dev in (("ours", ours), ("qemu", qemu)):
        clean(dev)
        dev.mem_write(RX_BUFS, b"\xEE" * 0x100)
        dev.mem_write(RX_RING, rx_descriptor(RX_BUFS, 1536, end_ring=True))
        dev.writel(X.CONTROL, X.CONTROL_RE)
        dev.writel(X.DMA_CONTROL, X.DMA_CONTROL_SR)
        assert dev.receive(f)
        dev.run()
        got[name] = (struct.unpack("<I", dev.mem_read(RX_RING, 4))[0],
                     dev.mem_read(RX_BUFS + len(f), 4))
    n = len(f) + 4
    assert got["ours"] == (X.RX_FIRST | X.RX_LAST | X.RX_FRAME_TYPE | n << 16,
                           zlib.crc32(f).to_bytes(4, "little"))
    assert got["qemu"] == (X.RX_FIRST | X.RX_LAST | n << 16, b"\xEE" * 4)


def test_intr_ena_reserved_bits(qemu):
    """DMA_INTR_ENA has enables for status bits [16:0] only: ours keeps those (Linux writes
    DMA_INTR_DEFAULT_MASK, all inside them); QEMU stores any value."""
    ours = Xgmac()
    for dev in (ours, qemu):
        dev.writel(X.DMA_INTR_ENA, 0xFFFFFFFF)
    assert (ours.readl(X.DMA_INTR_ENA), qemu.readl(X.DMA_INTR_ENA)) == (0x1FFFF, 0xFFFFFFFF)
    for dev in (ours, qemu):
        clean(dev)
