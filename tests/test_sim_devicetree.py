"""The sim's device tree parser and the topology Linux would build from it."""
import pytest

from vfiolab.board.sim import LAYOUTS, devicetree
from vfiolab.board.sim.devicetree import DtsError
from vfiolab.board.sim.topology import Topology


def test_parse_values_labels_and_phandles():
    root = devicetree.parse("""
        /dts-v1/;
        / {
            #address-cells = <2>; #size-cells = <2>;
            ic: intc@100 { reg = <0 0x100 0 0x10>; #interrupt-cells = <3>; };
            dev@2000 {
                compatible = "a,b", "c";   // two strings
                reg = <0x0 0x2000 0x0 0x1000>, <0x1 0x0 0x0 0x20>;
                ref = <&ic 5>;
                bytes = [de ad be ef];
                flag;
            };
        };""")
    dev = root.child("dev@2000")
    assert dev.compatible == ["a,b", "c"]
    assert dev.reg() == [(0x2000, 0x1000), (0x100000000, 0x20)]
    assert dev.cells("ref") == [root.child("intc@100").phandle, 5]
    assert dev.properties["bytes"] == b"\xde\xad\xbe\xef" and dev.properties["flag"] == b""
    assert dev.path == "/dev@2000" and dev.basename == "dev"


@pytest.mark.parametrize("text", ["/ { a = <1 2; };", "/ { a = <&nolabel>; };", "/ { x@1 { }; ", "garbage",
                                  "/ { a = <0x100000000>; };"])
def test_syntax_errors_are_dts_errors(text):
    with pytest.raises(DtsError):
        devicetree.parse(text)


def test_fvp_topology():
    topo = Topology(devicetree.load(LAYOUTS["fvp"]))
    dma = topo.device("amba", "2c0a0000.dma")
    assert dma.regions == [(0x2c0a0000, 0x1000)] and len(dma.interrupts) == 9
    assert dma.interrupts[0].hwirq == 95 + 32 and dma.interrupts[0].level
    assert dma.stream == 0x100 and dma.group.id == 0
    xgmac = topo.device("platform", "fff50000.ethernet")
    assert [i.hwirq for i in xgmac.interrupts] == [109, 110]
    shared = [g for g in topo.groups if len(g.devices) == 2]
    assert [d.name for d in shared[0].devices] == ["1c090000.serial", "1c1d0000.gpio"]
    edu = topo.device("pci", "0000:00:01.0")
    assert edu.pci.bars[0] == (0x50000000, 0x100000) and edu.stream == 0x1008 and edu.msi_device_id == 8
    assert topo.device("pci", "0000:00:00.0").group is None     # the host bridge


def test_virt_twin_topology():
    topo = Topology(devicetree.load(LAYOUTS["virt"]))
    assert [d.name for d in topo.on_bus("amba")] == ["9000000.pl011", "9010000.pl031", "9030000.pl061"]
    assert topo.device("platform", "9050000.smmuv3") is not None
    edu = topo.device("pci", "0000:00:01.0")
    assert edu.group.id == 1 and edu.stream == 8 and edu.group.devices == [edu]
    # Slot 3's two functions: a stream ID each (their requester IDs), one group between them.
    edu2, rng = topo.device("pci", "0000:00:03.0"), topo.device("pci", "0000:00:03.1")
    assert (edu2.stream, rng.stream) == (0x18, 0x19)
    assert edu2.group is rng.group and edu2.group.id == 0 and edu2.group.stream_ids == [0x18, 0x19]
    assert edu2.pci.multifunction and rng.pci.multifunction and not edu.pci.multifunction
    assert (rng.pci.subsystem_vendor, rng.pci.subsystem_device) == (0x1AF4, 0x0004)
    assert rng.pci.bars[0] == (0x1000, 0x20) and rng.pci.bars[4] == (0x8000000000, 0x4000)
