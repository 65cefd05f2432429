"""User memory for DMA: board.alloc buffers, and the pinning MAP_DMA does on them.

A buffer is real anonymous memory of this process (vfiolab.board.mapping.DmaBuffer, as on the host
board), so its .vaddr is a true address and a device model's DMA lands in it. MAP_DMA pins
[vaddr, vaddr + size): the range must lie inside one live buffer, else EFAULT (pin_user_pages
fails on memory that is not mapped). A pin holds a buffer export, so a mapped buffer cannot be
closed under the device (the kernel's pin keeps the pages alive the same way).
"""
import errno

from ..mapping import DmaBuffer
from .errors import kernel_error

# The simulated arm64 kernel's page size (Debian's arm64 kernels use 4 KiB pages), whatever the
# page size of the machine the sim runs on: VFIO's alignment rules are in these pages.
PAGE_SIZE = 4096


class Pin:
    def __init__(self, buffer, vaddr, size):
        self.buffer = buffer
        self._export = memoryview(buffer)     # keeps the pages: buffer.close() now fails
        self.host_address = vaddr
        self.size = size

    def release(self):
        if self._export is not None:
            self._export.release()
            self._export = None


class UserMemory:
    def __init__(self):
        self.buffers = []

    def alloc(self, size):
        buffer = DmaBuffer(size)
        self.buffers.append(buffer)
        return buffer

    def pin(self, vaddr, size):
        for buffer in self.buffers:
            if buffer.closed:
                continue
            if buffer.vaddr <= vaddr and vaddr + size <= buffer.vaddr + len(buffer):
                return Pin(buffer, vaddr, size)
        raise kernel_error(errno.EFAULT, f"pin_user_pages: {vaddr:#x}+{size:#x} is not inside one "
                           "board.alloc() buffer")

    def close(self):
        for buffer in self.buffers:
            try:
                buffer.close()
            except BufferError:
                pass
        self.buffers = []
