"""An ioctl's `arg` seen as the kernel sees it: a user pointer to copy from and to.

    int                         -> a value, or (for ioctls taking a pointer) a bad address: EFAULT
    ctypes object / bytearray /
    writable memoryview         -> user memory of that many bytes, readable and writable
    bytes / read-only mv        -> user memory, readable only (what CPython's fcntl.ioctl does)
    anything else (str too)     -> TypeError, as the host and qemu boards answer

The kernel's copy_from_user/copy_to_user fail with EFAULT past the end of mapped memory; here the
end of the object is the end of memory, so reading or writing past it is EFAULT too.
"""
import errno
import struct

from .. import mapping
from .errors import kernel_error


class UserBuffer:
    """A user-space buffer an ioctl reads (copy_from_user) and writes (copy_to_user)."""

    def __init__(self, view, writable):
        self.view = view            # memoryview of unsigned bytes
        self.writable = writable

    def __len__(self):
        return len(self.view)

    def read(self, offset, size):
        if offset < 0 or offset + size > len(self.view):
            raise kernel_error(errno.EFAULT, "copy_from_user: the argument is shorter than the kernel reads")
        return bytes(self.view[offset:offset + size])

    def write(self, offset, data):
        if not self.writable:
            # CPython copies read-only arguments into a scratch buffer: the write is lost, not refused.
            return
        if offset < 0 or offset + len(data) > len(self.view):
            raise kernel_error(errno.EFAULT, "copy_to_user: the argument is shorter than the kernel writes")
        self.view[offset:offset + len(data)] = data

    def u32(self, offset):
        return struct.unpack_from("<I", self.read(offset, 4))[0]

    def s32(self, offset):
        return struct.unpack_from("<i", self.read(offset, 4))[0]

    def u64(self, offset):
        return struct.unpack_from("<Q", self.read(offset, 8))[0]

    def put_u32(self, offset, value):
        self.write(offset, struct.pack("<I", value & 0xFFFFFFFF))

    def put_u64(self, offset, value):
        self.write(offset, struct.pack("<Q", value & 0xFFFFFFFFFFFFFFFF))

    def c_string(self, limit=4096):
        """strndup_user: up to the first NUL (the end of the object ends the string, as CPython
        appends a NUL to read-only ioctl arguments)."""
        raw = bytes(self.view[:limit])
        return raw.split(b"\0", 1)[0]


def ioctl_arg(arg):
    """An ioctl argument as the sim kernel sees it: an int (by value) or a UserBuffer."""
    passed = mapping.ioctl_arg(arg)
    if isinstance(passed, int):
        return passed
    view, writable = passed
    return UserBuffer(view, writable)


def user_pointer(arg, what):
    """The UserBuffer an ioctl that takes a pointer reads; an int is an address we cannot follow."""
    if isinstance(arg, UserBuffer):
        return arg
    # The int would be a user address: the sim holds no process memory behind it.
    raise kernel_error(errno.EFAULT, f"{what} takes a pointer; pass a ctypes object or a bytearray, "
                       f"not the int {arg}")
