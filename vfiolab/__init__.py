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
