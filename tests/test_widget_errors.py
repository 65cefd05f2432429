"""A widget pointed at a device the board does not have says so, naming what the board has."""
import pytest

import vfiolab
from vfiolab.widgets.inspector import Inspector
from vfiolab.widgets.iommu import IommuView


def test_a_misspelt_device_is_a_clear_lookup_error():
    with vfiolab.open_board("sim") as board:
        with pytest.raises(LookupError, match=r"no device '2c0a0000\.dam'.*2c0a0000\.dma"):
            Inspector(board, "2c0a0000.dam", auto=False)
        with pytest.raises(LookupError, match="no device '2c0a0000.dam' on this board"):
            IommuView(board, "2c0a0000.dam")
        assert Inspector(board, "2c0a0000.dma", auto=False).device == "2c0a0000.dma"


def test_views_of_two_live_boards_both_redraw_and_a_fresh_lab_board_takes_over(monkeypatch):
    from vfiolab.widgets.busgraph import BusGraph
    monkeypatch.setenv("VFIOLAB_BOARD", "sim")
    with vfiolab.open_board("sim", gic="its") as its, vfiolab.open_board("sim", gic="v2m") as v2m:
        first, second = BusGraph(its), BusGraph(v2m)
        from vfiolab.widgets import live
        assert first in live._watching and second in live._watching
    old = BusGraph(vfiolab.lab_board(fresh=True))
    new = BusGraph(vfiolab.lab_board(fresh=True))
    from vfiolab.widgets import live
    assert new in live._watching and old not in live._watching
