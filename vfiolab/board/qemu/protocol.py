"""The wire between the host-side QemuBoard and the guest agent: length-prefixed marshal frames.

Frame: 4-byte little-endian length, then marshal (version 4) of a tuple of plain values (int, str,
bytes, tuples, lists, dicts, None), which both ends decode with the standard library alone.

host -> guest   (seq, op, args)
guest -> host   ("ok", seq, result)                       the call returned result
                ("oserror", seq, errno, strerror, filename) the guest kernel said no
                ("error", seq, exception type name, message)  bad arguments (TypeError, ...)
                ("event", guest_eventfd, count)           an eventfd in the guest fired
"""
import marshal
import struct

HEADER = struct.Struct("<I")
MAX_FRAME = 64 << 20


def encode(message):
    payload = marshal.dumps(message, 4)
    return HEADER.pack(len(payload)) + payload


class FrameReader:
    """Collects bytes as they arrive and yields whole messages."""

    def __init__(self):
        self._buf = bytearray()

    def feed(self, data):
        self._buf += data
        messages = []
        while len(self._buf) >= HEADER.size:
            n, = HEADER.unpack_from(self._buf)
            if n > MAX_FRAME:
                raise ValueError(f"frame of {n} bytes: the stream is out of step")
            if len(self._buf) < HEADER.size + n:
                break
            messages.append(marshal.loads(bytes(self._buf[HEADER.size:HEADER.size + n])))
            del self._buf[:HEADER.size + n]
        return messages
