"""AMBA PrimeCells without a behavioural model yet: storage plus the ID words that must read right.

The PL330 engine (vfiolab/csrc/pl330.*, vfiolab/hw/pl330.py) replaces PL330Registers when it lands.
"""
from .base import RegisterFile, primecell_id_words

# arm,primecell-periphid from the node wins; otherwise the ID a real part reads.
KNOWN_PERIPHIDS = {"arm,pl330": 0x00241330, "arm,pl011": 0x00341011, "arm,pl031": 0x00041031,
                   "arm,pl061": 0x00041061}


class PrimeCellRegisters(RegisterFile):
    """A PrimeCell's 4 KiB register window: plain storage, ID words read-only."""

    def periphid(self):
        value = self.node.cell("arm,primecell-periphid")
        if value is not None:
            return value
        for compatible in self.node.compatible:
            if compatible in KNOWN_PERIPHIDS:
                return KNOWN_PERIPHIDS[compatible]
        return 0

    def fixed_words(self):
        return {0: primecell_id_words(self.periphid())}


class PL330Registers(PrimeCellRegisters):
    """DMA-330 until the engine lands: IDs (0x30 0x13 0x24 0x00, 0xB105F00D) and a plausible CR0."""

    def fixed_words(self):
        words = primecell_id_words(self.periphid())
        # CR0: 8 channels, 32 peripheral requests, 32 events, as the Juno DMA-330 is configured.
        words[0xE00] = (7 << 4) | (31 << 12) | (31 << 17) | 0x1
        words[0xE14] = 0x3      # CRD: 64-bit data bus
        return {0: words}
