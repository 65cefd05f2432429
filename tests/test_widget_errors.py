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
