"""vfiolab.lab_board: one board per notebook kernel, chosen by $VFIOLAB_BOARD."""
import vfiolab


def test_lab_board_is_reused_and_fresh_replaces_it(monkeypatch):
    monkeypatch.setenv("VFIOLAB_BOARD", "sim")
    first = vfiolab.lab_board()
    assert vfiolab.lab_board() is first
    second = vfiolab.lab_board(fresh=True)
    assert second is not first
    assert "2c0a0000.dma" in second.listdir("/sys/bus/amba/devices")
