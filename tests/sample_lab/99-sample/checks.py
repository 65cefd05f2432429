"""Public checks of the sample lab (learners receive this file): observers, then checks."""
from vfiolab.grading import check, expect_bytes, expect_equal, observe

SRC = bytes(range(1, 17))


@observe("dst")
def observe_dst(ns):
    """The destination buffer as it is in memory (the real labs read it from the board)."""
    return bytes(ns["dst"])


@observe("checksums")
def observe_checksums(ns):
    """The learner's checksum() on a few inputs, run after their cells."""
    return {name: ns["checksum"](data) for name, data in
            {"123": bytes([1, 2, 3]), "empty": b"", "wrap": bytes([255, 1, 7])}.items()}


@check("ex1-reverse", points=2)
def reversed_copy(seen):
    """dst holds src reversed."""
    expect_bytes(seen["dst"], SRC[::-1], "dst")


@check("ex2-sum", points=2)
def small_sum(seen):
    """checksum() adds the bytes."""
    expect_equal(seen["checksums"]["123"], 6, "checksum(bytes([1, 2, 3]))")
