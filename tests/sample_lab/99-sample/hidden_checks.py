"""Hidden checks of the sample lab: the instructor's only; `vfiolab release` leaves this file out."""
from checks import SRC  # checks.py is importable as "checks" from here
from vfiolab.grading import check, expect_equal


@check("ex1-untouched-src", points=1, hidden=True)
def source_kept(seen):
    """The copy kept the source's length (SECRET-HIDDEN-MARKER)."""
    expect_equal(len(seen["dst"]), len(SRC), "len(dst)")


@check("ex2-wraps", points=1, hidden=True)
def wraps_mod_256(seen):
    """checksum() wraps modulo 256 and is 0 for no data."""
    expect_equal(seen["checksums"]["wrap"], (255 + 1 + 7) % 256, "checksum(bytes([255, 1, 7]))")
    expect_equal(seen["checksums"]["empty"], 0, "checksum(b'')")
