"""The qemu board: a real aarch64 Linux kernel under qemu-system-aarch64 -M virt (see board.py).

Kept import-light: the guest agent imports modules of this package under a bare python3.11.
"""


def __getattr__(name):
    if name == "QemuBoard":
        from .board import QemuBoard
        return QemuBoard
    raise AttributeError(name)
