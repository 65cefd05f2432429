"""The device-model interface (see the package docstring) and plain register storage."""


class DevicePort:
    """What the board gives a model: its bus, its interrupt lines, its MSI, a log."""

    def __init__(self, board, device):
        self._board = board
        self._device = device
        self.node = device.node
        self.stream = device.stream

    @property
    def bus(self):
        return self._board.smmu.bus(self.stream) if self.stream is not None else None

    def dma_read(self, addr, length):
        if self.stream is None:
            return None
        data = self._board.smmu.dma_read(self.stream, addr, length)
        self._board.ring_doorbells()
        return data

    def dma_write(self, addr, data):
        if self.stream is None:
            return False
        ok = self._board.smmu.dma_write(self.stream, addr, bytes(data))
        self._board.ring_doorbells()
        return ok

    def set_irq(self, index, level):
        self._board.interrupts.set_line(self._device, index, bool(level))

    def send_msi(self, vector=0):
        self._board.interrupts.send_msi(self._device, vector)

    def bus_master(self):
        """PCI: is Bus Master Enable set in the command register? (platform devices: always)"""
        return self._board.pci.bus_master(self._device)

    def msi_enabled(self):
        """PCI: is MSI enabled in the function's MSI capability? (platform devices: never)"""
        return self._board.pci.msi_enabled(self._device)

    def log(self, text):
        self._board.log(f"{self._device.name}: {text}")


class DeviceModel:
    """Base class: a device that ignores writes and reads zero. Override what the device has."""

    def __init__(self, node):
        self.node = node
        self.port = None

    def attach(self, port):
        self.port = port

    def mmio_read(self, region, offset, size):
        return 0

    def mmio_write(self, region, offset, size, value):
        pass

    def reset(self):
        pass

    def step(self, budget=1000):
        return False


def primecell_id_words(periphid, cellid=0xB105F00D):
    """{offset: value} for the 8 ID words at 0xFE0..0xFFC of an AMBA PrimeCell (one byte each)."""
    words = {}
    for i in range(4):
        words[0xFE0 + 4 * i] = (periphid >> (8 * i)) & 0xFF
        words[0xFF0 + 4 * i] = (cellid >> (8 * i)) & 0xFF
    return words


class RegisterFile(DeviceModel):
    """Plain storage for each region: reads return what was last written (little-endian)."""

    read_only = {}   # region -> {offset: value} words that ignore writes (ID registers)

    def __init__(self, node):
        super().__init__(node)
        self.sizes = [size for _, size in node.reg()] if node.has("reg") else []
        self.reset()

    def reset(self):
        self.memory = [bytearray(min(size, 1 << 20)) for size in self.sizes]
        for region, words in self.fixed_words().items():
            for offset, value in words.items():
                self.memory[region][offset:offset + 4] = value.to_bytes(4, "little")

    def fixed_words(self):
        return {}

    def _in_storage(self, region, offset, size):
        return region < len(self.memory) and offset + size <= len(self.memory[region])

    def mmio_read(self, region, offset, size):
        if not self._in_storage(region, offset, size):
            return 0
        return int.from_bytes(self.memory[region][offset:offset + size], "little")

    def mmio_write(self, region, offset, size, value):
        if not self._in_storage(region, offset, size):
            return
        fixed = self.fixed_words().get(region, {})
        if any(offset <= word < offset + size or word <= offset < word + 4 for word in fixed):
            return
        self.memory[region][offset:offset + size] = value.to_bytes(size, "little")
