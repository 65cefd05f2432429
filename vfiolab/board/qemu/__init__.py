"""The qemu board: a real aarch64 Linux kernel under qemu-system-aarch64 -M virt.

    with vfiolab.open_board("qemu", gic="its") as board:   # or gic="v2m", allow_unsafe_interrupts=True
        board.listdir("/sys/bus/pci/devices")              # the guest kernel answers

One module per job:
    image.py        the guest image: Debian arm64 packages fetched with a private apt, an initramfs
    cpio.py         the initramfs format (newc) writer
    kmod.py         which kernel modules to load, in which order (from their .modinfo)
    machine.py      the QEMU process: command line, start, console log, death with its parent
    protocol.py     the frames between this side and the guest agent
    agent.py        runs in the guest: serves the board contract with the host board's code
    board.py        QemuBoard, this side: proxies every call, fds, eventfds and DMA buffers
    smmu_events.py  SMMU fault events from the guest's kernel log, as records

Kept import-light: the guest agent imports modules of this package under a bare python3.11.
"""


def __getattr__(name):
    if name == "QemuBoard":
        from .board import QemuBoard
        return QemuBoard
    if name == "GuestError":
        from .board import GuestError
        return GuestError
    raise AttributeError(name)
