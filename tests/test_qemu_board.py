"""The qemu board: a real aarch64 kernel (Debian's) answers the board contract.

Each boot costs seconds, so one board per module-scoped fixture; tests build on each other's state
in file order only through the fixtures' helpers (bind, open), never through leftovers.
"""
import ctypes
import errno
import os
import select
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import vfiolab
from vfiolab import uapi as U
from processes import gone

pytestmark = pytest.mark.skipif(
    not __import__("shutil").which("qemu-system-aarch64"),
    reason="qemu-system-aarch64 is not installed (sudo apt install qemu-system-arm); "
           "the qemu board's tests need it")

EDU_VENDOR_DEVICE = ("0x1234", "0x11e8")
EDU_ID = 0x010000ED
EDU_BUFFER = 0x40000   # edu's internal DMA buffer, in its own address space
IOVA = 0x100000


def find_edu(board):
    for dev in board.listdir("/sys/bus/pci/devices"):
        base = f"/sys/bus/pci/devices/{dev}"
        if (board.sysfs_read(f"{base}/vendor").strip(), board.sysfs_read(f"{base}/device").strip()) \
                == EDU_VENDOR_DEVICE:
            return dev
    raise AssertionError("no edu device on the guest's PCI bus")


def bind_to_vfio_pci(board, dev):
    """What the labs teach: driver_override, unbind if bound, drivers_probe."""
    base = f"/sys/bus/pci/devices/{dev}"
    board.sysfs_write(f"{base}/driver_override", "vfio-pci")
    if "driver" in board.listdir(base):
        board.sysfs_write(f"{base}/driver/unbind", dev)
    board.sysfs_write("/sys/bus/pci/drivers_probe", dev)
    return os.path.basename(board.readlink(f"{base}/iommu_group"))


class Edu:
    """The raw VFIO flow on edu: container, group, device, BAR0 mapping, MSI eventfd."""

    def __init__(self, board, iommu=U.VFIO_TYPE1v2_IOMMU):
        self.board = board
        self.dev = find_edu(board)
        self.group_id = bind_to_vfio_pci(board, self.dev)
        self.container = board.open("/dev/vfio/vfio")
        self.group = board.open(f"/dev/vfio/{self.group_id}")
        board.ioctl(self.group, U.VFIO_GROUP_SET_CONTAINER, ctypes.c_int32(self.container))
        board.ioctl(self.container, U.VFIO_SET_IOMMU, iommu)
        self.device = board.ioctl(self.group, U.VFIO_GROUP_GET_DEVICE_FD, self.dev.encode())
        bar0 = U.vfio_region_info(index=U.VFIO_PCI_BAR0_REGION_INDEX)
        board.ioctl(self.device, U.VFIO_DEVICE_GET_REGION_INFO, bar0)
        self.bar0 = board.mmap(self.device, bar0.size, bar0.offset)
        config = U.region_offset(U.VFIO_PCI_CONFIG_REGION_INDEX)
        command = int.from_bytes(board.read(self.device, 2, config + 4), "little")
        board.write(self.device, (command | 0x6).to_bytes(2, "little"), config + 4)  # MEM + bus master
        self.msi = board.eventfd()
        board.ioctl(self.device, U.VFIO_DEVICE_SET_IRQS,
                    U.irq_set_eventfds(U.VFIO_PCI_MSI_IRQ_INDEX, [self.msi]))

    def dma(self, src, dst, count, to_ram, wait=True):
        """One edu DMA with its completion MSI; True when the MSI arrived."""
        m = self.bar0
        m.write64(0x80, src)
        m.write64(0x88, dst)
        m.write64(0x90, count)
        m.write64(0x98, 1 | (2 if to_ram else 0) | 4)
        if not wait:
            return None
        arrived = self.board.poll([self.msi], 5000) == [self.msi]
        if arrived:
            self.board.read(self.msi, 8)
            m.write32(0x64, m.read32(0x24))  # ack
        return arrived

    def close(self):
        self.board.close(self.device)
        self.board.close(self.group)
        self.board.close(self.container)
        self.board.close(self.msi)


@pytest.fixture(scope="module")
def board():
    with vfiolab.open_board("qemu", gic="its") as b:
        yield b


@pytest.fixture(scope="module")
def edu(board):
    e = Edu(board)
    yield e


def test_boot_is_a_real_aarch64_kernel(board):
    assert board.guest["machine"] == "aarch64"
    assert board.sysfs_read("/proc/sys/kernel/osrelease").strip() == board.guest["release"]


def test_real_platform_amba_and_pci_buses(board):
    platform = board.listdir("/sys/bus/platform/devices")
    assert "9050000.smmuv3" in platform
    assert "9000000.pl011" in board.listdir("/sys/bus/amba/devices")
    assert board.readlink("/sys/bus/amba/devices/9000000.pl011/driver").endswith("/uart-pl011")
    smmu = "/sys/bus/platform/devices/9050000.smmuv3"
    assert board.sysfs_read(f"{smmu}/of_node/compatible") == "arm,smmu-v3\0"
    assert find_edu(board)


def test_sysfs_misuse_gives_the_kernels_errno(board):
    with pytest.raises(FileNotFoundError):
        board.sysfs_read("/sys/bus/pci/devices/0000:00:1f.7/vendor")
    with pytest.raises(OSError) as e:
        board.sysfs_write("/sys/bus/pci/drivers_probe", "0000:00:1f.7")
    assert e.value.errno == errno.ENODEV
    with pytest.raises(OSError) as e:
        board.ioctl(board.open("/dev/null"), U.VFIO_GET_API_VERSION)
    assert e.value.errno == errno.ENOTTY


def test_bind_edu_to_vfio_pci(board, edu):
    base = f"/sys/bus/pci/devices/{edu.dev}"
    assert board.readlink(f"{base}/driver").endswith("/drivers/vfio-pci")
    assert board.sysfs_read(f"{base}/driver_override") == "vfio-pci\n"
    assert edu.group_id in board.listdir("/dev/vfio")
    assert board.sysfs_read(f"/sys/kernel/iommu_groups/{edu.group_id}/reserved_regions") == \
        "0x0000000008000000 0x00000000080fffff msi\n"


def test_container_group_device_ioctls(board, edu):
    assert board.ioctl(edu.container, U.VFIO_GET_API_VERSION) == U.VFIO_API_VERSION
    assert board.ioctl(edu.container, U.VFIO_CHECK_EXTENSION, U.VFIO_TYPE1v2_IOMMU) == 1
    status = U.vfio_group_status()
    board.ioctl(edu.group, U.VFIO_GROUP_GET_STATUS, status)
    assert status.flags == U.VFIO_GROUP_FLAGS_VIABLE | U.VFIO_GROUP_FLAGS_CONTAINER_SET
    info = U.vfio_device_info()
    board.ioctl(edu.device, U.VFIO_DEVICE_GET_INFO, info)
    assert info.flags & U.VFIO_DEVICE_FLAGS_PCI and info.num_regions == 9 and info.num_irqs == 5
    bar0 = U.vfio_region_info(index=0)
    board.ioctl(edu.device, U.VFIO_DEVICE_GET_REGION_INFO, bar0)
    assert bar0.size == 1 << 20 and bar0.offset == 0
    assert bar0.flags == U.VFIO_REGION_INFO_FLAG_READ | U.VFIO_REGION_INFO_FLAG_WRITE | U.VFIO_REGION_INFO_FLAG_MMAP
    with pytest.raises(OSError) as e:
        board.ioctl(edu.device, U.VFIO_DEVICE_GET_REGION_INFO, U.vfio_region_info(index=9))
    assert e.value.errno == errno.EINVAL


def test_iova_ranges_leave_out_the_msi_window(board, edu):
    info = (ctypes.c_uint8 * 256)()
    ctypes.c_uint32.from_buffer(info).value = 256
    board.ioctl(edu.container, U.VFIO_IOMMU_GET_INFO, info)
    raw = bytes(info)
    header = U.vfio_iommu_type1_info.from_buffer_copy(raw)
    assert header.flags & U.VFIO_IOMMU_INFO_CAPS and header.iova_pgsizes & 0x1000
    cap = header.cap_offset  # walk the capability chain (migration, IOVA ranges, DMA avail)
    while int.from_bytes(raw[cap:cap + 2], "little") != U.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE:
        cap = int.from_bytes(raw[cap + 4:cap + 8], "little")
        assert cap, "no IOVA_RANGE capability"
    nr = int.from_bytes(raw[cap + 8:cap + 12], "little")
    ranges = [(int.from_bytes(raw[cap + 16 + 16 * i:cap + 24 + 16 * i], "little"),
               int.from_bytes(raw[cap + 24 + 16 * i:cap + 32 + 16 * i], "little")) for i in range(nr)]
    assert ranges[0] == (0, 0x7FFFFFF) and ranges[1][0] == 0x8100000


def test_bar0_mmap_reads_the_edu_id(edu):
    assert edu.bar0.read32(0x00) == EDU_ID
    edu.bar0.write32(0x04, 0x12345678)
    assert edu.bar0.read32(0x04) == 0x12345678 ^ 0xFFFFFFFF  # liveness: reads back inverted


def test_bar0_mmap_protection_and_sharing(board, edu):
    import mmap
    ro = board.mmap(edu.device, 4096, 0, prot=mmap.PROT_READ)
    assert ro.read32(0x00) == EDU_ID
    with pytest.raises(ValueError):
        ro.write32(0x04, 1)  # a real process would get SIGSEGV
    ro.close()
    with pytest.raises(OSError) as e:  # vfio_pci_core_mmap: only MAP_SHARED
        board.mmap(edu.device, 4096, 0, flags=mmap.MAP_PRIVATE)
    assert e.value.errno == errno.EINVAL


def test_dma_round_trip_through_the_smmu_with_msi_on_an_eventfd(board, edu):
    buf = board.alloc(8192)
    pattern = bytes((i * 7) & 0xFF for i in range(4000))
    buf[0:4000] = pattern
    board.ioctl(edu.container, U.VFIO_IOMMU_MAP_DMA, U.vfio_iommu_type1_dma_map(
        flags=U.VFIO_DMA_MAP_FLAG_READ | U.VFIO_DMA_MAP_FLAG_WRITE, vaddr=buf.vaddr, iova=IOVA, size=8192))
    try:
        assert edu.dma(IOVA, EDU_BUFFER, 4000, to_ram=False)
        assert edu.dma(EDU_BUFFER, IOVA + 4096, 4000, to_ram=True)
        assert bytes(buf[4096:4096 + 4000]) == pattern
        # the MSI eventfd is a real fd of this process: select sees it too
        edu.dma(IOVA, EDU_BUFFER, 16, to_ram=False, wait=False)
        assert select.select([edu.msi], [], [], 5)[0] == [edu.msi]
        board.read(edu.msi, 8)
        edu.bar0.write32(0x64, edu.bar0.read32(0x24))
        # misuse: the same range again overlaps -> EEXIST (vfio_dma_do_map)
        with pytest.raises(OSError) as e:
            board.ioctl(edu.container, U.VFIO_IOMMU_MAP_DMA, U.vfio_iommu_type1_dma_map(
                flags=3, vaddr=buf.vaddr, iova=IOVA, size=4096))
        assert e.value.errno == errno.EEXIST
        # misuse: into the MSI window -> EINVAL (vfio_iommu_iova_dma_valid)
        with pytest.raises(OSError) as e:
            board.ioctl(edu.container, U.VFIO_IOMMU_MAP_DMA, U.vfio_iommu_type1_dma_map(
                flags=3, vaddr=buf.vaddr, iova=0x8000000, size=4096))
        assert e.value.errno == errno.EINVAL
    finally:
        unmap = U.vfio_iommu_type1_dma_unmap(iova=IOVA, size=8192)
        board.ioctl(edu.container, U.VFIO_IOMMU_UNMAP_DMA, unmap)
        assert unmap.size == 8192


def test_an_msi_wakes_asyncio(board, edu):
    """The MSI's eventfd is a real fd here: an asyncio loop waits on it like on any socket."""
    import asyncio

    async def wait_for_msi():
        loop = asyncio.get_running_loop()
        arrived = loop.create_future()
        loop.add_reader(edu.msi, lambda: arrived.done() or arrived.set_result(os.eventfd_read(edu.msi)))
        try:
            edu.dma(EDU_BUFFER, EDU_BUFFER + 0x200, 16, to_ram=False, wait=False)
            return await asyncio.wait_for(arrived, 5)
        finally:
            loop.remove_reader(edu.msi)

    assert asyncio.run(wait_for_msi()) == 1
    edu.bar0.write32(0x64, edu.bar0.read32(0x24))


def test_dma_to_an_unmapped_iova_faults_in_the_smmu(board, edu):
    buf = board.alloc(4096)
    buf[0:16] = b"\xAA" * 16
    board.ioctl(edu.container, U.VFIO_IOMMU_MAP_DMA, U.vfio_iommu_type1_dma_map(
        flags=3, vaddr=buf.vaddr, iova=IOVA, size=4096))
    try:
        edu.dma(EDU_BUFFER, 0x900000, 16, to_ram=True)  # nothing mapped at 0x900000
        deadline = time.monotonic() + 30  # TCG on a loaded 2-core machine can be slow to log it
        while time.monotonic() < deadline:
            log = board.dmesg()
            if "arm-smmu-v3" in log and "event 0x10 received" in log:
                break
            time.sleep(0.2)
        assert "event 0x10 received" in log  # F_TRANSLATION
        assert bytes(buf[0:16]) == b"\xAA" * 16   # and nothing landed in our buffer
    finally:
        board.ioctl(edu.container, U.VFIO_IOMMU_UNMAP_DMA, U.vfio_iommu_type1_dma_unmap(iova=IOVA, size=4096))


def test_set_irqs_takes_any_eventfd_like_eventfd_ctx_fdget(board, edu):
    msi = U.VFIO_PCI_MSI_IRQ_INDEX
    # an eventfd made without the board works too: the MSI arrives on it
    plain = os.eventfd(0)
    devnull = os.open(os.devnull, os.O_RDONLY)
    try:
        board.ioctl(edu.device, U.VFIO_DEVICE_SET_IRQS, U.irq_set_eventfds(msi, [plain]))
        edu.dma(EDU_BUFFER, EDU_BUFFER + 0x100, 16, to_ram=False, wait=False)
        assert select.select([plain], [], [], 5)[0] == [plain]
        assert os.eventfd_read(plain) == 1  # not the board's fd: read it with os, not board.read
        edu.bar0.write32(0x64, edu.bar0.read32(0x24))
        # eventfd_ctx_fdget: a closed fd is EBADF, a file that is no eventfd EINVAL
        closed = os.eventfd(0)
        os.close(closed)
        for fd, code in ((closed, errno.EBADF), (devnull, errno.EINVAL), (edu.device, errno.EINVAL)):
            with pytest.raises(OSError) as e:
                board.ioctl(edu.device, U.VFIO_DEVICE_SET_IRQS, U.irq_set_eventfds(msi, [fd]))
            assert e.value.errno == code, fd
    finally:
        os.close(plain)
        os.close(devnull)
        # a failed SET_IRQS released the MSI's eventfd (vfio_msi_set_block unwinds): re-attach
        board.ioctl(edu.device, U.VFIO_DEVICE_SET_IRQS, U.irq_set_eventfds(msi, [edu.msi]))


def test_open_flags_mean_the_same_in_the_guest(board):
    # x86-64 and arm64 give O_DIRECTORY different values: the board must carry its meaning
    fd = board.open("/sys/bus/pci/devices", os.O_RDONLY | os.O_DIRECTORY)
    board.close(fd)
    with pytest.raises(NotADirectoryError):
        board.open("/proc/uptime", os.O_RDONLY | os.O_DIRECTORY)


def test_closed_and_foreign_fds_are_ebadf(board):
    fd = board.open("/proc/uptime", os.O_RDONLY)
    assert board.read(fd, 64)
    board.close(fd)
    for bad in (fd, 12345):
        with pytest.raises(OSError) as e:
            board.read(bad, 8)
        assert e.value.errno == errno.EBADF


# The tests below open their own boards. One qemu board runs per process, so opening one closes
# the module's `board`: every test using that fixture must come above this line.
@pytest.mark.parametrize("unsafe", [False, True], ids=["v2m", "v2m+allow_unsafe_interrupts"])
def test_gicv2m_needs_allow_unsafe_interrupts(unsafe):
    with vfiolab.open_board("qemu", gic="v2m", allow_unsafe_interrupts=unsafe, quiet=True) as b:
        dev = find_edu(b)
        group = b.open(f"/dev/vfio/{bind_to_vfio_pci(b, dev)}")
        container = b.open("/dev/vfio/vfio")
        b.ioctl(group, U.VFIO_GROUP_SET_CONTAINER, ctypes.c_int32(container))
        if unsafe:
            assert b.ioctl(container, U.VFIO_SET_IOMMU, U.VFIO_TYPE1v2_IOMMU) == 0
        else:
            with pytest.raises(OSError) as e:
                b.ioctl(container, U.VFIO_SET_IOMMU, U.VFIO_TYPE1v2_IOMMU)
            assert e.value.errno == errno.EPERM
            assert "No interrupt remapping support" in b.dmesg()


ORPHAN_SCRIPT = textwrap.dedent("""
    import sys, time, vfiolab
    b = vfiolab.open_board("qemu", quiet=True)
    print(b.qemu_pid, flush=True)
    time.sleep(600)
""")


def test_no_qemu_outlives_the_python_that_started_it():
    owner = subprocess.Popen([sys.executable, "-c", ORPHAN_SCRIPT], stdout=subprocess.PIPE, text=True)
    try:
        qemu_pid = int(owner.stdout.readline())
        os.kill(qemu_pid, 0)  # it runs
        owner.kill()          # as a notebook kernel dies: SIGKILL, no atexit, no cleanup
        owner.wait()
        if not gone(qemu_pid):
            os.kill(qemu_pid, signal.SIGKILL)
            pytest.fail(f"QEMU (pid {qemu_pid}) outlived the Python that started it")
    finally:
        if owner.poll() is None:
            owner.kill()


def test_a_guest_that_stops_answering_says_so_with_its_console():
    b = vfiolab.open_board("qemu", quiet=True, timeout=2)
    try:
        os.kill(b.qemu_pid, signal.SIGSTOP)
        with pytest.raises(vfiolab.board.qemu.board.GuestError) as e:
            b.listdir("/sys")
        assert "did not answer" in str(e.value) and "console" in str(e.value)
        os.kill(b.qemu_pid, signal.SIGCONT)
    finally:
        b.close()


def test_a_guest_kernel_panic_says_so_with_its_console():
    from vfiolab.board.qemu.board import GuestError
    b = vfiolab.open_board("qemu", quiet=True)
    try:
        with pytest.raises(GuestError) as e:
            b.sysfs_write("/proc/sysrq-trigger", "c")  # the kernel crashes on purpose
        assert "Kernel panic" in str(e.value)
        with pytest.raises(GuestError):
            b.listdir("/sys")
    finally:
        b.close()
    assert not b._machine.alive()



def _qemu_version():
    if not __import__("shutil").which("qemu-system-aarch64"):
        return (0, 0)  # the module-wide skip says why
    out = subprocess.run(["qemu-system-aarch64", "--version"], capture_output=True, text=True).stdout
    return tuple(int(x) for x in out.split("version ")[1].split()[0].split(".")[:2])


@pytest.mark.skipif(_qemu_version() >= (9, 1), reason="QEMU 9.1 fixed edu's off-by-one range check")
def test_qemu_aborting_says_what_qemu_said():
    from vfiolab.board.qemu.board import GuestError
    b = vfiolab.open_board("qemu", quiet=True)
    try:
        e = Edu(b)
        buf = b.alloc(4096)
        b.ioctl(e.container, U.VFIO_IOMMU_MAP_DMA, U.vfio_iommu_type1_dma_map(
            flags=3, vaddr=buf.vaddr, iova=IOVA, size=4096))
        with pytest.raises(GuestError) as err:
            e.dma(IOVA, EDU_BUFFER, 4096, to_ram=False)  # ends at edu's last byte: QEMU 7.2 aborts
        assert "EDU: DMA range" in str(err.value) and "fixed in QEMU 9.1" in str(err.value)
    finally:
        b.close()


def test_an_agent_that_dies_at_boot_is_reported_at_once(tmp_path, monkeypatch):
    from vfiolab.board.qemu import board as qemu_board
    agent = tmp_path / "vfiolab" / "board" / "qemu" / "agent.py"
    agent.parent.mkdir(parents=True)
    agent.write_text("raise SystemExit('a broken agent, on purpose')\n")
    monkeypatch.setattr(qemu_board, "_share_dir", lambda: str(tmp_path))
    start = time.monotonic()
    with pytest.raises(qemu_board.GuestError) as e:
        vfiolab.open_board("qemu", quiet=True)
    assert time.monotonic() - start < 50  # reported before the 60 s boot timeout
    assert "agent stopped before it was ready" in str(e.value)
    assert "a broken agent, on purpose" in str(e.value)
