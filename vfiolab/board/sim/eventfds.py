"""Eventfds the sim kernel signals: real OS eventfds, so poll, select and asyncio see them.

eventfd_ctx_fdget: a closed fd is EBADF, an fd that is not an eventfd is EINVAL. The kernel keeps
its own reference (here a dup), so closing the user's fd does not stop the signals.
"""
import errno
import os
import select

from .errors import kernel_error


def is_eventfd(fd):
    try:
        return os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:[eventfd]"
    except OSError:
        return False


class EventfdCtx:
    """The kernel's reference to a user eventfd (struct eventfd_ctx)."""

    def __init__(self, fd):
        if not isinstance(fd, int) or fd < 0:
            raise kernel_error(errno.EBADF, "eventfd_ctx_fdget: not an open file descriptor")
        try:
            os.fstat(fd)
        except OSError:
            raise kernel_error(errno.EBADF, f"eventfd_ctx_fdget: fd {fd} is not open") from None
        if not is_eventfd(fd):
            raise kernel_error(errno.EINVAL, f"eventfd_ctx_fdget: fd {fd} is not an eventfd")
        self.fd = os.dup(fd)

    def signal(self, count=1):
        """eventfd_signal."""
        if self.fd is not None:
            os.eventfd_write(self.fd, count)

    def consume(self):
        """Read the counter if it is non-zero (what virqfd's wakeup does); True if it was."""
        if self.fd is None:
            return False
        poller = select.poll()
        poller.register(self.fd, select.POLLIN)
        if not poller.poll(0):
            return False
        os.eventfd_read(self.fd)
        return True

    def put(self):
        """eventfd_ctx_put."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
