"""vfiolab bench memcpy: the ceiling, a plain memory copy through the C kernels' vfl_memcpy."""
from . import median_seconds

HELP = "bandwidth of a plain memory copy (the ceiling the DMA models are compared with)"


def add_arguments(parser):
    parser.add_argument("--mib", type=int, default=64, help="bytes to copy, in MiB (default 64)")
    parser.add_argument("--runs", type=int, default=5)


def memcpy_bandwidth(nbytes, runs=5):
    """Bytes per second of vfl_memcpy over nbytes, median of `runs`."""
    from .._hw import ffi, lib
    src = ffi.new("uint8_t[]", nbytes)
    dst = ffi.new("uint8_t[]", nbytes)
    return nbytes / median_seconds(lambda: lib.vfl_memcpy(dst, src, nbytes), runs)


def run(args):
    nbytes = args.mib << 20
    bw = memcpy_bandwidth(nbytes, args.runs)
    print(f"memcpy {args.mib} MiB: {bw / 1e9:.2f} GB/s (median of {args.runs})")
    return 0
