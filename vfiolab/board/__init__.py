"""Boards: the narrow system-call surface every lab talks to (DESIGN.md: "a board is a kernel").

    board.open(path, flags) -> fd             board.close(fd)
    board.ioctl(fd, request, arg=0) -> int    # int by value; ctypes object by pointer, updated in
                                              # place; bytes by pointer, read-only
    board.read(fd, n, offset=None) / board.write(fd, data, offset=None)
    board.mmap(fd, length, offset) -> mapping with read8/16/32/64(off), write8/16/32/64(off, value)
    board.eventfd() -> fd                     board.poll(fds, timeout_ms)
    board.alloc(size) -> DMA-able buffer with .vaddr (what MAP_DMA takes) and the buffer protocol
    board.listdir(path) / board.readlink(path) / board.sysfs_read(path) / board.sysfs_write(path, text)

Every failure is an OSError carrying the errno the Linux kernel gives for the same call.

| kind   | what answers the calls                                             |
|--------|--------------------------------------------------------------------|
| "sim"  | an in-process model of the kernel (vfiolab.board.sim)              |
| "qemu" | a real aarch64 Linux kernel under QEMU (vfiolab.board.qemu)        |
| "host" | this machine's kernel (vfiolab.board.host)                         |
"""
import importlib

KINDS = {"sim": "vfiolab.board.sim:SimBoard",
         "qemu": "vfiolab.board.qemu:QemuBoard",
         "host": "vfiolab.board.host:HostBoard"}


class BoardUnavailable(RuntimeError):
    """A board, or a part of one that was asked for, cannot run on this machine: something it
    needs is not installed or cannot be fetched. The message says what and how to get it; kind
    is the board's (`vfiolab doctor KIND` checks all it needs)."""

    def __init__(self, message, kind):
        super().__init__(message)
        self.kind = kind

    def __reduce__(self):
        return type(self), (str(self), self.kind)


def open_board(kind="sim", **options):
    """Open a board of `kind` ("sim", "qemu" or "host"); boards are context managers."""
    if kind not in KINDS:
        raise ValueError(f"unknown board kind {kind!r}: choose one of {', '.join(KINDS)}")
    module_name, class_name = KINDS[kind].split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name != module_name:
            raise
        raise NotImplementedError(f"the {kind!r} board is not part of this vfiolab yet") from None
    return getattr(module, class_name)(**options)
