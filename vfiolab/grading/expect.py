"""Assertions for checks whose failure message is a precise hint: observed versus expected."""
from .checks import Fail


def _show(value, limit=64):
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def expect_equal(observed, expected, what):
    """Fail unless observed == expected, naming `what` and both values."""
    if observed != expected:
        raise Fail(f"{what}: observed {_show(observed)}, expected {_show(expected)}")


def expect_bytes(observed, expected, what):
    """Fail unless two byte strings are equal, pointing at the first differing byte."""
    observed, expected = bytes(observed), bytes(expected)
    if observed == expected:
        return
    for offset, (o, e) in enumerate(zip(observed, expected)):
        if o != e:
            differing = sum(a != b for a, b in zip(observed, expected))
            raise Fail(f"{what}: first difference at byte {offset} (0x{offset:x}): observed 0x{o:02x}, "
                       f"expected 0x{e:02x}; {differing} of {min(len(observed), len(expected))} "
                       "bytes differ")
    raise Fail(f"{what}: {len(observed)} bytes observed, {len(expected)} expected "
               f"(the first {min(len(observed), len(expected))} agree)")


def expect_bits(observed, expected, mask, what):
    """Fail unless the bits under `mask` of a register value are as expected."""
    if (observed & mask) != (expected & mask):
        raise Fail(f"{what}: observed 0x{observed:08x}, expected 0x{expected & mask:08x} "
                   f"under mask 0x{mask:08x} (bits 0x{(observed ^ expected) & mask:08x} differ)")


def expect(condition, hint):
    """Fail with `hint` unless condition holds."""
    if not condition:
        raise Fail(hint)
