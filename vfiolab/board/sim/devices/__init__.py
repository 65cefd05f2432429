"""Device models for the sim board: the plug-in interface.

A device model is the hardware behind one device-tree node. The board owns everything Linux owns
(sysfs, drivers, VFIO, the IOMMU, the GIC); a model only answers bus cycles and drives its lines:

    class MyDevice(DeviceModel):
        def mmio_read(self, region, offset, size):          # a CPU load from region `region`
            return value                                    #   (size 1, 2, 4 or 8 bytes)
        def mmio_write(self, region, offset, size, value):  # a CPU store
            ...
        def reset(self):                                    # power-on / hardware reset state
            ...
        def step(self, budget):                             # optional: run queued work
            return busy                                     #   (True while more is queued)

What the board hands a model (`self.port`, a DevicePort, set before the first access):
    port.bus        the device's `struct vfl_bus *` (cffi pointer): its SMMU stream. A C model
                    (e.g. the PL330 engine) calls bus->translate for every beat; a fault is logged
                    (board.iommu_faults()) and the access fails, as an SMMU event would.
    port.dma_read(addr, n) -> bytes or None (fault)     port.dma_write(addr, data) -> bool
    port.set_irq(index, level)   drive interrupt line `index` (the index-th `interrupts` entry).
                    The board turns a rising level into the VFIO eventfd signal and, for level
                    IRQs, automasks the line until user space unmasks it (vfio_platform_irq.c).
                    A line still high at unmask fires again, as a level interrupt does.
    port.send_msi(vector)   a PCI function's MSI: a DMA write of the MSI data to the MSI address
                    the kernel programmed, through the SMMU to the ITS or GICv2m doorbell.
    port.bus_master(), port.msi_enabled()   a PCI function's command register and MSI state
    port.stream     the SMMU stream ID         port.node   the device-tree node
    port.log(text)  a line in the board's kernel log (board.dmesg())

Models are found by `compatible` (or "pci:VVVV:DDDD") in MODELS below; a device without a model gets
RegisterFile: plain storage with the AMBA PrimeCell/peripheral ID words for `arm,primecell` nodes.
A model registers itself with register_model(compatible, factory); the factory gets the DT node.
"""
from .base import DeviceModel, DevicePort, RegisterFile, primecell_id_words
from . import edu, primecell, xgmac
from .pl330 import PL330Engine

MODELS = {}


def register_model(compatible, factory):
    """Use factory(node) -> DeviceModel for devices whose first matching compatible is this one."""
    MODELS[compatible] = factory


def model_for(node, match_key):
    """The model for a device: the first registered compatible (or PCI key), else plain storage."""
    for key in [match_key] + node.compatible:
        if key in MODELS:
            return MODELS[key](node)
    return RegisterFile(node)


register_model("arm,pl330", PL330Engine)
register_model("arm,pl011", primecell.PrimeCellRegisters)
register_model("arm,pl031", primecell.PrimeCellRegisters)
register_model("arm,pl061", primecell.PrimeCellRegisters)
register_model("calxeda,hb-xgmac", xgmac.XgmacDevice)
register_model("pci:1234:11e8", edu.Edu)

__all__ = ["DeviceModel", "DevicePort", "RegisterFile", "MODELS", "register_model", "model_for",
           "primecell_id_words"]
