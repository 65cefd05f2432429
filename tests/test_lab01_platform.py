"""What Lab 01 adds to vfiolab.platform and its widgets, on the sim board (fast, no notebook)."""
import pytest

import vfiolab
from vfiolab import platform as plat
from vfiolab.widgets.busgraph import BusGraph, to_dot
from vfiolab.widgets.inspector import Inspector, to_html


@pytest.fixture
def board():
    with vfiolab.open_board("sim") as b:
        yield b


def test_a_dt_node_followed_to_its_device(board):
    info = plat.describe(board, "2c0a0000.dma")
    assert info["of_node"] == "/dma@2c0a0000"
    assert info["reg"] == [(0x2c0a0000, 0x1000)]
    assert info["interrupts"][0] == (0, 95, 4)
    assert plat.describe_interrupt(info["interrupts"][0]) == "SPI 95 (INTID 127), level-high"
    assert (info["driver"], info["group"], info["smmu"]) == ("dma-pl330", 0, ("2b400000.iommu", 0x100))
    assert info["reserved_regions"] == [(0x8000000, 0x80fffff, "msi")]
    assert plat.device_for_node(board, "/amba/gpio@1c1d0000") == ("amba", "1c1d0000.gpio")
    assert plat.reg_of(board, "fff50000.ethernet") == [(0xfff50000, 0x1000)]    # bytes >= 0x80 survive


def test_pci_function_stream_id_comes_from_the_host_iommu_map(board):
    assert plat.smmu_of(board, "0000:00:01.0") == ("2b400000.iommu", 0x1000 + 0x08)
    assert plat.find_by_pci_id(board, 0x1234, 0x11e8) == ["0000:00:01.0", "0000:00:02.0"]
    assert plat.of_node(board, "0000:00:01.0") is None
    assert plat.smmu_of(board, "1c170000.rtc") is None


def test_modalias_per_bus(board):
    assert plat.modalias(board, "1c090000.serial").startswith("amba:d")
    assert plat.modalias(board, "2b400000.iommu") == "of:NiommuT(null)Carm,mmu-500Carm,smmu-v2"
    assert plat.modalias(board, "0000:00:01.0").startswith("pci:v00001234d000011E8")


def test_viability_follows_the_drivers(board):
    assert not plat.group_viable(board, 2)
    plat.bind_to_vfio(board, "1c090000.serial")
    assert not plat.group_viable(board, 2)
    assert plat.driver_override(board, "1c090000.serial") == "vfio-amba"
    plat.bind_to_vfio(board, "1c1d0000.gpio")
    assert plat.group_viable(board, 2)
    rows = {r["device"]: r for r in plat.inventory(board)}
    assert rows["1c1d0000.gpio"] == {"bus": "amba", "device": "1c1d0000.gpio", "driver": "vfio-amba", "group": 2}


def test_widgets_draw_what_the_board_says(board):
    graph = BusGraph(board, auto=False)
    assert "IOMMU group 2 (not viable)" in graph.html.value and "<svg" in graph.html.value
    plat.bind_to_vfio(board, "2c0a0000.dma")
    graph.refresh(force=False)
    assert "IOMMU group 0 (viable)" in graph.html.value
    rows, viable = graph.state()
    assert 'label="2c0a0000.dma\ndriver_override=vfio-amba"' in to_dot(rows, viable).source
    inspector = Inspector(board, "1c090000.serial", auto=False)
    assert "uart-pl011" in inspector.html.value and "1c1d0000.gpio" in inspector.html.value
    assert "no IOMMU translates" in to_html(plat.describe(board, "1c170000.rtc"))


def test_widgets_made_again_replace_the_old_ones(board):
    class Events:
        def __init__(self):
            self.callbacks = []

        def register(self, name, callback):
            self.callbacks.append(callback)

        def unregister(self, name, callback):
            self.callbacks.remove(callback)

    class Shell:
        events = Events()

    import IPython
    original = IPython.get_ipython
    IPython.get_ipython = lambda: Shell
    try:
        lab = vfiolab.lab_board("sim", fresh=True)
        first = BusGraph(lab)
        BusGraph(lab)                                # the same cell run again
        assert len(Shell.events.callbacks) == 1
        fresh = vfiolab.lab_board("sim", fresh=True)  # setup run again
        BusGraph(fresh)
        Inspector(fresh)
        Inspector(fresh, "1c090000.serial")          # another device: both stay live
        assert len(Shell.events.callbacks) == 3
        assert first._shell is None
        BusGraph(board)                              # another live board beside it: both redraw
        assert len(Shell.events.callbacks) == 4
    finally:
        IPython.get_ipython = original
