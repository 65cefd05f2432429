"""What the headless C models that master memory share (the PL330, the xgmac, the ITS): the bus
their C side reads and writes through, either a flat memory of their own at bus address 0 (mapped
lazily, so a large size costs nothing until touched) or a bus they are given (the sim board puts
them behind its SMMU), and the CPU's reads and writes of that memory through the same bus."""
import operator

U32, U64 = 0xFFFFFFFF, (1 << 64) - 1


def check_int(value, what, hi=U32, lo=0, why=""):
    """value as an int in lo..hi: TypeError for a non-integer, ValueError out of range (rather
    than cffi's OverflowError)."""
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{what} must be an integer, not {type(value).__name__}") from None
    if not lo <= value <= hi:
        raise ValueError(f"{what} {value:#x} out of range {lo:#x}..{hi:#x}{why}")
    return value


class FlatBusModel:
    """Base of a C model on a `struct vfl_bus`. A subclass's __init__ calls _attach_bus(bus,
    memory_size) before it creates its C object, then hands it self._bus[0]."""

    def _attach_bus(self, bus, memory_size):
        from .._hw import ffi, lib
        self._ffi, self._lib = ffi, lib
        self._mem = None
        if bus is None:
            memory_size = check_int(memory_size, "memory_size", U64)
            self._mem = ffi.gc(lib.vfl_flatmem_new(memory_size), lib.vfl_flatmem_free)
            if self._mem == ffi.NULL:
                raise MemoryError(f"cannot map {memory_size} bytes of DMA memory")
            self._bus = ffi.new("struct vfl_bus *", lib.vfl_flatmem_bus(self._mem))
        else:
            self._bus = ffi.new("struct vfl_bus *", bus[0] if ffi.typeof(bus).kind == "pointer"
                                else bus)
            self._bus_owner = bus       # keep whatever the bus's ctx points into alive
        self.memory_size = memory_size if bus is None else None

    @classmethod
    def on_bus(cls, bus, **config):
        """A model whose every access goes through `bus` (a `struct vfl_bus` cdata or pointer)."""
        return cls(bus=bus, **config)

    def mem_write(self, addr, data):
        addr = check_int(addr, "address", U64)
        data = bytes(data)
        if self._lib.vfl_bus_write(self._bus, addr, data, len(data)) < 0:
            raise ValueError(f"bus error writing {len(data)} bytes at 0x{addr:x}")

    def mem_read(self, addr, n):
        addr, n = check_int(addr, "address", U64), check_int(n, "length", U64)
        buf = self._ffi.new("uint8_t[]", n)
        if self._lib.vfl_bus_read(self._bus, addr, buf, n) < 0:
            raise ValueError(f"bus error reading {n} bytes at 0x{addr:x}")
        return bytes(self._ffi.buffer(buf, n))

    def memory_view(self):
        """The flat memory as a writable buffer (standalone models only)."""
        if self._mem is None:
            raise TypeError(f"this {type(self).__name__} is on an external bus")
        lib = self._lib
        return self._ffi.buffer(lib.vfl_flatmem_base(self._mem), lib.vfl_flatmem_size(self._mem))
