"""Open files of the sim kernel: what an fd refers to, and the default answers of a file.

Every sim fd is a real fd number (a placeholder open on /dev/null) so that sim fds and the real
eventfds the board hands out never share a number, and poll/close treat both alike.
"""
import errno

from .errors import kernel_error


class File:
    """Base: a file that refuses everything, with the errno the VFS gives for it."""

    name = "file"

    def ioctl(self, request, arg):
        raise kernel_error(errno.ENOTTY, f"{self.name} has no ioctl {request:#x}")

    def read(self, n, offset):
        raise kernel_error(errno.EINVAL, f"{self.name} cannot be read")

    def write(self, data, offset):
        raise kernel_error(errno.EINVAL, f"{self.name} cannot be written")

    def mmap(self, length, offset, prot, flags):
        raise kernel_error(errno.ENODEV, f"{self.name} cannot be mapped")

    def release(self):
        pass


class AttrFile(File):
    """An open sysfs attribute (kernfs_fop_open checked the direction already)."""

    def __init__(self, vfs, path, readable, writable):
        self.vfs, self.path = vfs, path
        self.readable, self.writable = readable, writable
        self.name = path
        self.position = 0

    def read(self, n, offset):
        if not self.readable:
            raise kernel_error(errno.EBADF, "opened write-only")
        start = self.position if offset is None else offset
        data = self.vfs.read(self.path)[start:start + n]
        if offset is None:
            self.position += len(data)
        return data

    def write(self, data, offset):
        if not self.writable:
            raise kernel_error(errno.EBADF, "opened read-only")
        return self.vfs.write(self.path, data)


class DirFile(File):
    def __init__(self, path):
        self.name = path

    def read(self, n, offset):
        raise kernel_error(errno.EISDIR)


class NullFile(File):
    """/dev/null: reads end at once, writes vanish, ioctls are ENOTTY."""

    name = "/dev/null"

    def read(self, n, offset):
        return b""

    def write(self, data, offset):
        return len(data)
