"""vfiolab bench pl330: our PL330 engine against a plain memcpy and against QEMU's PL330 model.

The same Linux-style memcpy microcode (vfiolab.hw.pl330.memcpy_program) in both of Linux's shapes
(DMALD; DMAST bursts as for r1p0 and later, and DMALD; DMARMB; DMAST; DMAWMB as for r0p0) runs on
our engine (PL330().run(), fast path on) and on QEMU's model (qemu-system-arm -M xilinx-zynq-a9, started with
DMAGO through the debug registers over qtest; QEMU runs the whole program inside that register
write, so its time is the write's round trip).
"""
import statistics
import time

from . import median_seconds

HELP = "PL330 engine copy bandwidth vs a plain memcpy and vs QEMU's PL330 model"

SHAPES = [(8, 16), (8, 4), (4, 16), (8, 1)]   # (beat bytes, beats per burst)
BODIES = [(False, "LD ST"), (True, "LD RMB ST WMB")]   # Linux's for r1p0 and later, for r0p0
PROGRAM, SRC, DST = 0x1000, 0x0100_0000, 0x0900_0000
QEMU_PL330 = 0xF8003000


def add_arguments(parser):
    parser.add_argument("--mib", type=int, default=32, help="bytes to copy, in MiB (default 32, "
                        "at most 96)")
    parser.add_argument("--runs", type=int, default=5, help="runs of our engine and memcpy")
    parser.add_argument("--qemu-runs", type=int, default=3, help="runs of QEMU's model "
                        "(0: skip QEMU)")


def engine_and_memcpy(program, nbytes, runs):
    """(engine bytes/s, memcpy bytes/s, median engine/memcpy ratio): the two are timed in turns,
    so both see the same load on a shared machine."""
    from .._hw import lib
    from ..hw.pl330 import PL330
    dma = PL330()
    dma.mem_write(PROGRAM, program)
    dma.mem_write(SRC, bytes(range(256)) * 4096)     # touch some pages; the rest is zero
    # The ceiling copies the same bytes between the same pages the engine uses.
    base = lib.vfl_flatmem_base(dma._mem)
    src, dst = base + SRC, base + DST

    def copy():
        dma.start(0, PROGRAM)
        dma.run()
        if dma.thread(0).state != 0:
            raise RuntimeError(f"PL330 engine did not finish: {dma.thread(0)}")

    def plain():
        lib.vfl_memcpy(dst, src, nbytes)

    engine, ceiling = [], []
    for _ in range(runs):
        engine.append(median_seconds(copy, 1))
        ceiling.append(median_seconds(plain, 1))
    ratios = [c / e for e, c in zip(engine, ceiling)]
    return (nbytes / statistics.median(engine), nbytes / statistics.median(ceiling),
            statistics.median(ratios))


def qemu_seconds(program, runs):
    from ..hw.pl330 import debug_instruction
    from ..qtest import QTest
    inst0, inst1 = debug_instruction(bytes([0xA0, 0]) + PROGRAM.to_bytes(4, "little"))
    times = []
    with QTest("qemu-system-arm", ["-M", "xilinx-zynq-a9", "-m", "512M"]) as q:
        q.write(PROGRAM, program)
        for _ in range(runs):
            q.writel(QEMU_PL330 + 0xD08, inst0)
            q.writel(QEMU_PL330 + 0xD0C, inst1)
            start = time.perf_counter()
            q.writel(QEMU_PL330 + 0xD04, 0)
            times.append(time.perf_counter() - start)
            if q.readl(QEMU_PL330 + 0x100) & 0xF:
                raise RuntimeError("QEMU's PL330 did not finish the copy")
    return statistics.median(times)


def run(args):
    from ..hw.pl330 import memcpy_program
    from ..qtest import find_qemu
    nbytes = args.mib << 20
    if not 0 < args.mib <= 96:
        print("vfiolab bench pl330: --mib must be 1..96")
        return 2
    qemu = args.qemu_runs > 0 and find_qemu("qemu-system-arm")
    print(f"PL330 memcpy microcode, {args.mib} MiB; medians of {args.runs} runs "
          f"(QEMU: {args.qemu_runs if qemu else 0}); engine and memcpy timed in turns")
    if args.qemu_runs > 0 and not qemu:
        print("  (qemu-system-arm is not installed: QEMU's model is not measured)")
    print(f"  {'burst':>10}  {'body':>13}  {'engine':>11}  {'memcpy':>11}  {'vs memcpy':>9}"
          f"  {'QEMU model':>11}  {'vs QEMU':>8}")
    for size, beats in SHAPES:
        for barriers, body in BODIES:
            program = memcpy_program(SRC, DST, nbytes, burst_size=size, burst_len=beats,
                                     barriers=barriers)
            ours, ceiling, ratio = engine_and_memcpy(program, nbytes, args.runs)
            line = (f"  {f'{beats}x{size * 8}bit':>10}  {body:>13}  {ours / 1e9:>6.2f} GB/s  "
                    f"{ceiling / 1e9:>6.2f} GB/s  {ratio:>8.2f}x")
            if qemu:
                theirs = nbytes / qemu_seconds(program, args.qemu_runs)
                line += f"  {theirs / 1e6:>6.1f} MB/s  {ours / theirs:>7.0f}x"
            print(line, flush=True)
    return 0
