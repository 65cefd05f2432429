"""AMBA PrimeCells without a behavioural model yet: storage plus the ID words that must read right.
(The PL330 has its engine: devices/pl330.py.)"""
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
