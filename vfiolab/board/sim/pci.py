"""PCI functions' configuration space: the hardware's, as the device model sees it.

Type 0 header with one MSI capability at 0x40 (QEMU's edu: msi_init with one vector, 64-bit, no
per-vector mask). Through vfio-pci, user space sees a virtualized view (vfio_pci_config.c): the
command register's memory and bus-master bits pass through, the MSI capability is virtual (the
kernel, not the user, programs the real message when SET_IRQS enables MSI), BARs read back what
the user wrote, masked by their size.
"""
import struct

PCI_COMMAND, PCI_STATUS, PCI_CAPABILITY_LIST, PCI_INTERRUPT_PIN = 0x04, 0x06, 0x34, 0x3D
PCI_COMMAND_MEMORY, PCI_COMMAND_MASTER, PCI_COMMAND_INTX_DISABLE = 0x2, 0x4, 0x400
PCI_STATUS_CAP_LIST = 0x10
MSI_CAP = 0x40
PCI_CAP_ID_MSI = 0x05
MSI_FLAGS_ENABLE, MSI_FLAGS_64BIT = 0x1, 0x80
CONFIG_SIZE = 256


class PciConfigs:
    """Config space of every PCI function on the board, and the MSI messages programmed in them."""

    def __init__(self, board):
        self.board = board
        self.spaces = {}

    def config(self, device):
        if device.name not in self.spaces:
            self.spaces[device.name] = self._power_on(device)
        return self.spaces[device.name]

    def _power_on(self, device):
        fn = device.pci
        cfg = bytearray(CONFIG_SIZE)
        struct.pack_into("<HH", cfg, 0, fn.vendor, fn.device)
        struct.pack_into("<H", cfg, PCI_STATUS, PCI_STATUS_CAP_LIST)
        cfg[0x08] = fn.revision
        cfg[0x09:0x0C] = fn.class_code.to_bytes(3, "little")
        for i, (address, size) in enumerate(fn.bars):
            if size:
                struct.pack_into("<I", cfg, 0x10 + 4 * i, address & 0xFFFFFFF0)
        cfg[0x0E] = 0x80 if fn.multifunction else 0x00          # header type 0, multi-function bit
        struct.pack_into("<HH", cfg, 0x2C, fn.subsystem_vendor, fn.subsystem_device)
        cfg[PCI_CAPABILITY_LIST] = MSI_CAP
        cfg[0x3C] = device.interrupts[0].hwirq & 0xFF if device.interrupts else 0
        cfg[PCI_INTERRUPT_PIN] = 1 if device.interrupts else 0
        cfg[MSI_CAP] = PCI_CAP_ID_MSI
        cfg[MSI_CAP + 1] = 0
        struct.pack_into("<H", cfg, MSI_CAP + 2, MSI_FLAGS_64BIT)
        return cfg

    def reset(self, device):
        self.spaces[device.name] = self._power_on(device)

    def command(self, device):
        return struct.unpack_from("<H", self.config(device), PCI_COMMAND)[0]

    def bus_master(self, device):
        return device.pci is None or bool(self.command(device) & PCI_COMMAND_MASTER)

    def msi_enabled(self, device):
        if device.pci is None:
            return False
        return bool(struct.unpack_from("<H", self.config(device), MSI_CAP + 2)[0] & MSI_FLAGS_ENABLE)

    def program_msi(self, device, address, data):
        """pci_write_msi_msg + enable: what the kernel does when vfio-pci enables MSI."""
        cfg = self.config(device)
        struct.pack_into("<IIH", cfg, MSI_CAP + 4, address & 0xFFFFFFFF, address >> 32, data)
        flags = struct.unpack_from("<H", cfg, MSI_CAP + 2)[0]
        struct.pack_into("<H", cfg, MSI_CAP + 2, flags | MSI_FLAGS_ENABLE)

    def disable_msi(self, device):
        cfg = self.config(device)
        flags = struct.unpack_from("<H", cfg, MSI_CAP + 2)[0]
        struct.pack_into("<H", cfg, MSI_CAP + 2, flags & ~MSI_FLAGS_ENABLE)

    def msi_message(self, device, vector):
        if not self.msi_enabled(device):
            return None
        lo, hi, data = struct.unpack_from("<IIH", self.config(device), MSI_CAP + 4)
        return (hi << 32) | lo, data + vector
