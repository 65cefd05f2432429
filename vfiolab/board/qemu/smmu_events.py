"""SMMUv3 fault events as the arm-smmu-v3 driver logs them, parsed back into records.

The driver prints each event queue entry as "event 0xNN received:" and its four 64-bit words
(arm_smmu_evtq_thread). Record layout (SMMUv3 spec, "Event records"): DW0[7:0] event type,
DW0[63:32] StreamID, DW1[35] RnW (1: read), DW2 the input address (the IOVA).
On QEMU's virt machine a PCI device's StreamID is its requester ID (bus << 8 | devfn).
"""
import re
from collections import namedtuple

# The same fields as the sim board's faults (vfiolab.board.sim.iommu.IommuFault).
IommuFault = namedtuple("IommuFault", "stream device iova length access reason")
REASONS = {0x10: "translation", 0x11: "address size", 0x12: "access flag", 0x13: "permission",
           0x02: "bad streamid", 0x03: "stream disabled", 0x04: "bad STE", 0x0A: "bad CD"}
_EVENT = re.compile(r"arm-smmu-v3 \S+: event (0x[0-9a-f]+) received:")
_WORD = re.compile(r"arm-smmu-v3 \S+:\s+(0x[0-9a-f]{16})\s*$")


def pci_name(stream):
    """PCI device name of a requester ID on segment 0."""
    return f"0000:{stream >> 8:02x}:{(stream >> 3) & 0x1F:02x}.{stream & 7}"


def parse(dmesg_text):
    """IommuFault records, oldest first. `length` is None: SMMU events carry no access length."""
    faults, lines = [], dmesg_text.splitlines()
    for i, line in enumerate(lines):
        if not _EVENT.search(line):
            continue
        words = [int(m.group(1), 16) for m in (_WORD.search(l) for l in lines[i + 1:i + 5]) if m]
        if len(words) < 3:
            continue  # the log was cut short
        stream = words[0] >> 32
        faults.append(IommuFault(stream, pci_name(stream), words[2], None,
                                 "read" if words[1] >> 35 & 1 else "write",
                                 REASONS.get(words[0] & 0xFF, hex(words[0] & 0xFF))))
    return faults
