"""Memory a real kernel hands out: an mmap'd register window and a page-aligned DMA buffer.

Standard library only (mmap, ctypes): the qemu board's guest agent runs this with Debian's bare
python3.11. Register accesses are single loads and stores of exactly the asked width (ctypes on the
mapped address), because device registers (MMIO) react to the width and count of accesses.
"""
import ctypes
import errno
import mmap
import os

PAGE_SIZE = mmap.PAGESIZE

_WIDTH_TYPES = {8: ctypes.c_uint8, 16: ctypes.c_uint16, 32: ctypes.c_uint32, 64: ctypes.c_uint64}


def page_round_up(size):
    return (size + PAGE_SIZE - 1) // PAGE_SIZE * PAGE_SIZE


def buffer_address(buf):
    """The virtual address of a writable buffer (an mmap), without keeping an export alive."""
    anchor = ctypes.c_char.from_buffer(buf)
    try:
        return ctypes.addressof(anchor)
    finally:
        del anchor  # release the export at once, or the mmap could never be closed


def ioctl_arg(arg):
    """How an ioctl argument is passed, the same on every board: an int by value (returned as is),
    or a buffer by pointer, returned as (byte view, writable). A ctypes object, a bytearray or a
    writable memoryview is written back (the kernel's answer lands in it, in place); bytes are
    read-only and get a trailing NUL, so a name is a C string whatever its length."""
    if isinstance(arg, bool):
        raise TypeError("ioctl arg must be an int, a ctypes object, bytes or a bytearray, not bool")
    if isinstance(arg, int):
        return arg
    if isinstance(arg, (ctypes._SimpleCData, ctypes.Structure, ctypes.Union, ctypes.Array)):
        return memoryview((ctypes.c_ubyte * ctypes.sizeof(arg)).from_buffer(arg)).cast("B"), True
    if isinstance(arg, bytearray):
        return memoryview(arg).cast("B"), True
    if isinstance(arg, memoryview):
        return (arg.cast("B") if arg.format != "B" else arg), not arg.readonly
    if isinstance(arg, bytes):
        return memoryview(arg + b"\0"), False
    raise TypeError(f"ioctl arg must be an int, a ctypes object, bytes or a bytearray, "
                    f"not {type(arg).__name__}")


def _libc():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long)
    libc.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
    return libc


_MAP_FAILED = ctypes.c_void_p(-1).value


class RegisterWindow:
    """What every board's mmap returns: read8/16/32/64(off) and write8/16/32/64(off, value).

    Each access is one load or store of exactly that width. A bad offset or value is a ValueError
    or TypeError here, where a real process would die of SIGSEGV or SIGBUS: Python should not die
    of a typo. A board supplies `length`, `prot`, `closed`, `_load(width, off)` and
    `_store(width, off, value)`; the checks are the same on every board.
    """
    length = 0
    prot = mmap.PROT_READ | mmap.PROT_WRITE

    def _check(self, off, width):
        if self.closed:
            raise ValueError("the mapping is closed")
        if not isinstance(off, int) or isinstance(off, bool):
            raise TypeError(f"register offset must be an int, not {type(off).__name__}")
        nbytes = width // 8
        if off < 0 or off + nbytes > self.length:
            raise ValueError(f"offset {off:#x} (+{nbytes}) is outside the {self.length:#x}-byte mapping")
        if off % nbytes:
            raise ValueError(f"offset {off:#x} is not {nbytes}-byte aligned (device memory faults "
                             "on unaligned accesses)")

    def read(self, width, off):
        self._check(off, width)
        if not self.prot & mmap.PROT_READ:
            raise ValueError("the mapping is not readable (SIGSEGV)")
        return self._load(width, off)

    def write(self, width, off, value):
        self._check(off, width)
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"register value must be an int, not {type(value).__name__}")
        if value < 0 or value >> width:
            raise ValueError(f"value {value:#x} does not fit in {width} bits")
        if not self.prot & mmap.PROT_WRITE:
            raise ValueError("the mapping is read-only (SIGSEGV)")
        self._store(width, off, value)

    def read8(self, off): return self.read(8, off)
    def read16(self, off): return self.read(16, off)
    def read32(self, off): return self.read(32, off)
    def read64(self, off): return self.read(64, off)
    def write8(self, off, value): self.write(8, off, value)
    def write16(self, off, value): self.write(16, off, value)
    def write32(self, off, value): self.write(32, off, value)
    def write64(self, off, value): self.write(64, off, value)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class RegisterMapping(RegisterWindow):
    """A device region mapped with mmap(2): read8/16/32/64(off), write8/16/32/64(off, value).

    mmap is called through libc (not Python's mmap module) so that any protection works, a
    read-only mapping included; the length is rounded up to whole pages, as the kernel does.
    """

    def __init__(self, fd, length, offset, prot=mmap.PROT_READ | mmap.PROT_WRITE, flags=mmap.MAP_SHARED):
        self._base = None
        for name, value in (("fd", fd), ("length", length), ("offset", offset), ("prot", prot),
                            ("flags", flags)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"mmap {name} must be an int, not {type(value).__name__}")
        self._libc = _libc()
        self.length, self.offset, self.prot = page_round_up(length), offset, prot
        if length <= 0 or offset < 0:  # do_mmap: EINVAL for a zero length
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        address = self._libc.mmap(None, self.length, prot, flags, fd, offset)
        if address in (None, _MAP_FAILED):
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code))
        self._base = address

    def _register(self, width, off):
        return _WIDTH_TYPES[width].from_address(self._base + off)

    def _load(self, width, off):
        return self._register(width, off).value

    def _store(self, width, off, value):
        self._register(width, off).value = value

    @property
    def closed(self):
        return self._base is None

    def close(self):
        """munmap (the device file stays referenced until then, as with any mapping)."""
        if self._base is not None:
            self._libc.munmap(self._base, self.length)
            self._base = None

    def __del__(self):
        self.close()

    def __len__(self):
        return self.length

    def __repr__(self):
        state = "closed" if self.closed else f"at {self._base:#x}"
        return f"<RegisterMapping {self.length:#x} bytes from file offset {self.offset:#x}, {state}>"


class DmaBuffer(mmap.mmap):
    """Page-aligned anonymous memory for VFIO_IOMMU_MAP_DMA: `.vaddr` is what MAP_DMA is given.

    It is an mmap, so it has the buffer protocol (bytes(buf), buf[0:4] = b"...", memoryview(buf)).
    """

    def __new__(cls, size):
        if not isinstance(size, int) or isinstance(size, bool):
            raise TypeError(f"alloc size must be an int, not {type(size).__name__}")
        if size <= 0:
            raise ValueError(f"alloc size must be positive, not {size}")
        self = super().__new__(cls, -1, page_round_up(size),
                               flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS,
                               prot=mmap.PROT_READ | mmap.PROT_WRITE)
        self.size = size
        self.vaddr = buffer_address(self)
        return self

    def __repr__(self):
        return f"<DmaBuffer {self.size:#x} bytes at vaddr {self.vaddr:#x}>"
