"""Bad input never surfaces as a traceback from inside the sim: only OSError or TypeError."""
import ctypes
import errno
import os
import random

import pytest

import vfiolab
from vfiolab import uapi as U

import scenarios

GARBAGE = [b"", b"\n", b"\0", b"\xff\xfe", b"x" * 5000, b"0000:00:01.0", b"2c0a0000.dma\n", b"vfio-amba",
           b"1234 11e8", b"Y", b"-1", b"\0\0\0\0garbage"]


def walk(board, path, seen, depth=0):
    """Every path under `path`, following no links (as `find` does)."""
    yield path
    if depth > 12:
        return
    try:
        names = board.listdir(path)
    except OSError:
        return
    for name in names:
        child = f"{path.rstrip('/')}/{name}"
        try:
            board.readlink(child)
            yield child
            continue
        except OSError:
            pass
        if child not in seen:
            seen.add(child)
            yield from walk(board, child, seen, depth + 1)


@pytest.mark.parametrize("layout", ["fvp", "virt"])
def test_every_file_reads_and_garbage_writes_fail_cleanly(layout):
    with vfiolab.open_board("sim", layout=layout) as board:
        paths = list(walk(board, "/sys", set())) + list(walk(board, "/dev", set()))
        assert len(paths) > 200
        for path in paths:
            try:
                board.sysfs_read(path)
            except OSError:
                pass
        rng = random.Random(1)
        writable = [p for p in paths if not p.startswith("/sys/firmware")]
        for path in writable:
            for data in rng.sample(GARBAGE, 4):
                try:
                    board.sysfs_write(path, data)
                except OSError as e:
                    assert e.errno in (errno.EINVAL, errno.ENODEV, errno.EACCES, errno.EISDIR, errno.EBUSY,
                                       errno.EEXIST, errno.ENOENT), (path, data, e)
        # The board still works after all that.
        scenarios.bind(board, scenarios.edu(board))


def test_random_ioctls_on_every_kind_of_fd():
    rng = random.Random(7)
    with vfiolab.open_board("sim") as board:
        target = scenarios.pl330(board)
        with scenarios.Session(board, target) as s:
            fds = [s.container, s.group, s.device, s._keep(board.eventfd()),
                   s._keep(board.open(f"{target.sysfs}/driver_override", os.O_RDWR)),
                   s._keep(board.open("/dev/null"))]
            requests = [U._IO(";", 100 + n) for n in range(20)] + [0, 0xFFFFFFFF, 0x5401]
            for _ in range(3000):
                fd, request = rng.choice(fds), rng.choice(requests)
                kind = rng.randrange(5)
                if kind == 0:
                    arg = rng.randrange(-5, 1 << 33)
                elif kind == 1:
                    arg = bytearray(rng.randbytes(rng.randrange(0, 64)))
                elif kind == 2:
                    arg = bytes(rng.randbytes(rng.randrange(0, 64)))
                elif kind == 3:
                    size = rng.randrange(4, 128)
                    arg = (ctypes.c_uint8 * size).from_buffer_copy(rng.randbytes(size))
                    ctypes.c_uint32.from_buffer(arg).value = rng.choice([0, 8, 16, 20, 24, 32, 4096])
                else:
                    arg = rng.choice([1.5, None, "x", [1]])
                try:
                    board.ioctl(fd, request, arg)
                except (OSError, TypeError):
                    pass
            for _ in range(300):
                for call in (lambda: board.read(s.device, rng.randrange(0, 64), rng.randrange(0, 1 << 44)),
                             lambda: board.write(s.device, rng.randbytes(rng.randrange(0, 16)), rng.randrange(0, 1 << 44)),
                             lambda: board.mmap(s.device, rng.randrange(0, 1 << 14), rng.randrange(0, 1 << 44) & ~0xFFF)):
                    try:
                        call()
                    except (OSError, TypeError):
                        pass
        # And the flow still works afterwards.
        scenarios.pl330_user_space_flow(board)


def test_edu_factorial_of_a_huge_number_is_quick():
    with vfiolab.open_board("sim", layout="virt") as board:
        with scenarios.Session(board, scenarios.edu(board)) as s:
            bar0 = board.mmap(s.device, 0x1000, 0)
            bar0.write32(0x08, 0xFFFFFFFF)
            assert bar0.read32(0x08) == 0          # 2^32 divides n! for n >= 34
            bar0.write32(0x08, 12)
            assert bar0.read32(0x08) == 479001600
            bar0.close()
