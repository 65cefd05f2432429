"""The host board on this machine's own kernel: the parts any Linux has (sysfs, eventfd, mmap, ioctl).

VFIO itself is exercised by the qemu board's tests, whose guest agent runs this same code.
"""
import ctypes
import errno
import os
import select
import termios

import pytest

import vfiolab
from vfiolab.board.host import HostBoard


@pytest.fixture
def board():
    with vfiolab.open_board("host") as b:
        yield b


def test_open_board_host_gives_a_host_board(board):
    assert isinstance(board, HostBoard)


def test_platform_bus_is_the_real_one(board):
    devices = board.listdir("/sys/bus/platform/devices")
    assert devices == sorted(os.listdir("/sys/bus/platform/devices"))
    for name in devices:
        target = board.readlink(f"/sys/bus/platform/devices/{name}")
        assert target == os.readlink(f"/sys/bus/platform/devices/{name}")
        assert "/devices/" in target


def test_sysfs_read_returns_the_kernels_text(board):
    for name in board.listdir("/sys/bus/platform/devices"):
        uevent = f"/sys/bus/platform/devices/{name}/uevent"
        if os.path.exists(uevent):
            assert board.sysfs_read(uevent) == open(uevent).read()
            return
    pytest.skip("no platform device with a uevent file here")


def test_sysfs_errors_are_the_kernels(board):
    with pytest.raises(FileNotFoundError):
        board.sysfs_read("/sys/bus/platform/devices/no-such-device/driver_override")
    with pytest.raises(FileNotFoundError):
        board.listdir("/sys/bus/no-such-bus")
    with pytest.raises(OSError) as e:
        board.readlink("/sys/bus/platform/drivers_probe")  # a file, not a link
    assert e.value.errno == errno.EINVAL
    if os.access("/sys/bus/platform/drivers_probe", os.W_OK):   # root, /sys not read-only
        # bus_rescan_devices / drivers_probe_store: no device of that name -> ENODEV
        with pytest.raises(OSError) as e:
            board.sysfs_write("/sys/bus/platform/drivers_probe", "no-such-device")
        assert e.value.errno == errno.ENODEV


def test_eventfd_poll_and_read(board):
    fd = board.eventfd()
    assert board.poll([fd], 0) == []
    board.write(fd, (3).to_bytes(8, "little"))
    assert board.poll([fd], 0) == [fd]
    # A real OS eventfd: select and the standard poll see it too.
    assert select.select([fd], [], [], 0)[0] == [fd]
    assert int.from_bytes(board.read(fd, 8), "little") == 3
    assert board.poll([fd], 10) == []
    board.close(fd)
    with pytest.raises(OSError) as e:
        board.read(fd, 8)
    assert e.value.errno == errno.EBADF


def test_alloc_is_page_aligned_dma_memory(board):
    buf = board.alloc(5000)
    assert buf.vaddr % 4096 == 0 and buf.size == 5000 and len(buf) == 8192
    buf[0:4] = b"\x12\x34\x56\x78"
    assert ctypes.string_at(buf.vaddr, 4) == b"\x12\x34\x56\x78"
    assert bytes(memoryview(buf)[:4]) == b"\x12\x34\x56\x78"
    with pytest.raises(ValueError):
        board.alloc(0)
    with pytest.raises(TypeError):
        board.alloc("4096")


def test_mapping_accesses_have_the_asked_width(board):
    fd = board.open("/dev/zero")
    m = board.mmap(fd, 4096, 0)
    m.write32(8, 0x11223344)
    assert m.read32(8) == 0x11223344 and m.read16(10) == 0x1122 and m.read8(8) == 0x44
    m.write64(16, 0x0102030405060708)
    assert m.read64(16) == 0x0102030405060708
    with pytest.raises(ValueError):
        m.read32(4096)
    with pytest.raises(ValueError):
        m.read32(2)
    with pytest.raises(ValueError):
        m.write8(0, 256)
    m.close()
    with pytest.raises(ValueError):
        m.read32(0)


def test_ioctl_argument_conventions(board):
    fd = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY)
    try:
        # bytes: by pointer, read-only
        assert board.ioctl(fd, termios.TIOCSWINSZ, bytes([24, 0, 80, 0, 0, 0, 0, 0])) == 0
        # a ctypes object: by pointer, updated in place
        winsize = (ctypes.c_ushort * 4)()
        assert board.ioctl(fd, termios.TIOCGWINSZ, winsize) == 0
        assert list(winsize)[:2] == [24, 80]
        # a bytearray: updated in place
        raw = bytearray(8)
        board.ioctl(fd, termios.TIOCGWINSZ, raw)
        assert raw[:4] == bytes([24, 0, 80, 0])
        # an int: by value (FIONBIO-style ioctls would read it as a pointer; TIOCSBRK ignores it)
        with pytest.raises(TypeError):
            board.ioctl(fd, termios.TIOCGWINSZ, "winsize")
    finally:
        os.close(fd)
    devnull = board.open("/dev/null")
    with pytest.raises(OSError) as e:
        board.ioctl(devnull, 0x3B64)  # VFIO_GET_API_VERSION on a file that is not VFIO's
    assert e.value.errno == errno.ENOTTY


@pytest.mark.skipif(os.path.isdir("/dev/vfio"), reason="this machine has VFIO")
def test_missing_dev_vfio_says_what_to_do(board):
    with pytest.raises(FileNotFoundError) as e:
        board.open("/dev/vfio/vfio")
    assert e.value.errno == errno.ENOENT
    assert "/dev/vfio is absent" in str(e.value) and "modprobe vfio-pci" in str(e.value)


def test_close_releases_everything():
    b = HostBoard()
    fd = b.eventfd()
    m = b.mmap(b.open("/dev/zero"), 4096, 0)
    b.close()
    assert m.closed
    with pytest.raises(OSError):
        os.fstat(fd)


def test_mmap_protection_and_errors_are_the_kernels(board):
    import mmap
    fd = board.open("/dev/zero")
    ro = board.mmap(fd, 100, 0, prot=mmap.PROT_READ)
    assert ro.length == 4096 and ro.read32(4092) == 0   # the length rounds up to a page
    with pytest.raises(ValueError):
        ro.write32(0, 1)                                   # a real process would get SIGSEGV
    ro.close()
    with pytest.raises(OSError) as e:
        board.mmap(fd, 0, 0)
    assert e.value.errno == errno.EINVAL
    with pytest.raises(OSError) as e:
        board.mmap(fd, 4096, 1)                            # offset not page aligned
    assert e.value.errno == errno.EINVAL
    with pytest.raises(OSError) as e:
        board.mmap(board.open("/proc/uptime", os.O_RDONLY), 4096, 0)
    assert e.value.errno in (errno.ENODEV, errno.EACCES)   # procfs has no mmap / file not writable
