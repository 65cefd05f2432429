"""vfiolab: hands-on labs on VFIO for ARM.

    import vfiolab
    with vfiolab.open_board("sim") as board:     # or "qemu", or "host"
        fd = board.open("/dev/vfio/vfio", os.O_RDWR)

See ../README.md for the course and DESIGN.md ("a board is a kernel") for the architecture.
"""
__version__ = "0.1.0"


def open_board(kind="sim", **options):
    """Open a board: the system-call surface the labs drive. See vfiolab.board."""
    from .board import open_board as _open_board
    return _open_board(kind, **options)


_lab_boards = {}
_retired_lab_boards = []   # boards lab_board(fresh=True) replaced: their live widgets stop redrawing


def lab_board(kind=None, fresh=False, **options):
    """The board a lab notebook uses: one per notebook kernel, reused when a cell is run again.

    kind defaults to $VFIOLAB_BOARD, else "sim", so the same notebook runs on every board (the
    tests run each lab with VFIOLAB_BOARD=sim and =qemu). fresh=True closes it and opens a new one.
    """
    import atexit
    import os
    kind = kind or os.environ.get("VFIOLAB_BOARD", "sim")
    key = (kind, tuple(sorted(options.items())))
    if fresh and key in _lab_boards:
        old = _lab_boards.pop(key)
        _retired_lab_boards.append(old)
        old.close()
    if key not in _lab_boards:
        if not _lab_boards:
            atexit.register(lambda: [board.close() for board in _lab_boards.values()])
        _lab_boards[key] = open_board(kind, **options)
    return _lab_boards[key]
