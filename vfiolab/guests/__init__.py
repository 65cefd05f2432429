"""Guest programs for KVM (the sim's interpreter and the qemu board's real KVM run the same bytes).

irq_guest.S is lab 03's guest: it enables the vGICv3 and SPIs 32-63 and reports every interrupt it
takes by MMIO stores to REPORT (+0: the INTID from ICC_IAR1_EL1, +4: after its EOI). Before
KVM_RUN the VMM may write the GICD_ICFGR2 value it should program at PARAMS (0: level, the
default; 0xaaaaaaaa: edge). Load it at BASE.
"""
import os

from vfiolab.hw.a64_asm import assemble

HERE = os.path.dirname(os.path.abspath(__file__))
IRQ_GUEST = os.path.join(HERE, "irq_guest.S")
BASE = 0x40000000
GICD = 0x08000000          # where the VMM puts the distributor (KVM_VGIC_V3_ADDR_TYPE_DIST)
REDIST = 0x080A0000        # and the redistributor (KVM_VGIC_V3_ADDR_TYPE_REDIST)
REPORT = 0x0A000000
PARAMS = 0x40001000
ICFGR_LEVEL, ICFGR_EDGE = 0, 0xAAAAAAAA


def irq_guest_source():
    with open(IRQ_GUEST) as f:
        return f.read()


def irq_guest():
    """The assembled guest, to load at BASE."""
    return assemble(irq_guest_source(), base=BASE)
