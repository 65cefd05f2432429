"""vfiolab bench board: what a lab waits for on the qemu board, beside the sim board's figures.

The same four operations on both boards, through the library a lab uses (platform, vfio, the
edu driver), so only the board underneath differs:
  boot      open_board() until the board answers (qemu: warm image cache, QEMU to agent ready)
  ioctl     one VFIO_GET_API_VERSION round trip on the container fd
  register  one 32-bit read of edu's BAR0 through the mmap'd mapping
  dma+msi   a 4 KiB edu DMA to the device and back, each completion MSI waited for on an eventfd
Medians of several runs. (QEMU's edu model completes a DMA 100 ms of virtual time after the
command, so its DMA figure is dominated by that timer, not by VFIO.)
"""
import os
import statistics
import sys
import time

from .. import platform as plat
from .. import uapi as U
from ..drivers import edu
from ..vfio import Container, Group
from . import median_seconds

HELP = "qemu board speeds (boot, ioctl, register read, 4 KiB DMA with MSI) beside the sim board's"

# How the sim board is asked to be the qemu board's twin (virt layout, edu on PCI).
SIM_TWIN_OPTIONS = ({"layout": "virt"},)
IOVA, DMA_BYTES = 0x100000, 4096


def add_arguments(parser):
    parser.add_argument("--runs", type=int, default=9, help="runs per operation (default 9)")
    parser.add_argument("--boots", type=int, default=3, help="qemu boots to time (default 3)")
    parser.add_argument("--gic", choices=("its", "v2m"), default="its")


class EduSession:
    """The lab's flow on edu through the friendly layer: bind to vfio-pci, container, group,
    device, EduDriver (BAR0, bus mastering, MSI on an eventfd), one buffer mapped at IOVA."""

    def __init__(self, board):
        self.board = board
        name = plat.first_device(board, (edu.VENDOR, edu.DEVICE), why="to time")
        plat.bind_to_vfio(board, name)
        self.container = Container(board)
        group = Group.of_device(board, name)
        group.set_container(self.container)
        self.container.set_iommu()
        self.driver = edu.EduDriver(group.device(name))
        self.driver.init()
        self.buf = board.alloc(2 * DMA_BYTES)
        self.container.map_dma(self.buf.vaddr, IOVA, 2 * DMA_BYTES)

    def dma(self, src, dst, count, to_ram):
        self.driver.transfer(src, dst, count, to_ram)
        self.driver.wait_irq(10000)

    def round_trip(self):
        """RAM -> edu -> RAM, 4 KiB less 1 byte (QEMU 7.2's edu rejects a DMA ending at its
        buffer's very end: REFERENCE.md section 8)."""
        n = DMA_BYTES - 8
        self.buf[0:n] = bytes((i * 13) & 0xFF for i in range(n))
        self.dma(IOVA, edu.BUFFER, n, to_ram=False)
        self.dma(edu.BUFFER, IOVA + DMA_BYTES, n, to_ram=True)
        if bytes(self.buf[DMA_BYTES:DMA_BYTES + n]) != bytes(self.buf[0:n]):
            raise AssertionError("the DMA round trip did not bring the data back")


def open_sim_twin(gic):
    """The sim board configured as the qemu board's twin, or (None, why not)."""
    import vfiolab
    why = "the sim board is not part of this vfiolab yet"
    for options in SIM_TWIN_OPTIONS:
        try:
            return vfiolab.open_board("sim", gic=gic, allow_unsafe_interrupts=gic == "v2m",
                                      **options), None
        except NotImplementedError as e:
            return None, str(e) or why
        except TypeError as e:
            why = f"the sim board takes no virt-twin option this benchmark knows ({e})"
        except (ImportError, AttributeError) as e:
            return None, f"the sim board is not ready yet: {e}"
    return None, why


def measure(open_fn, runs, boots):
    """{operation: median seconds} for a board that open_fn() opens (and times)."""
    boot_times, boot_cpu = [], []
    board = None
    for i in range(boots):
        if board is not None:
            board.close()
        start = time.perf_counter()
        board = open_fn()
        boot_times.append(time.perf_counter() - start)
        boot_cpu.append(qemu_cpu_seconds(board))
    try:
        session = EduSession(board)
        return {
            "boot": statistics.median(boot_times),
            "boot cpu": statistics.median(boot_cpu) if None not in boot_cpu else None,
            "ioctl": median_seconds(lambda: board.ioctl(session.container.fd, U.VFIO_GET_API_VERSION), runs),
            "register": median_seconds(lambda: session.driver.bar.read32(edu.ID), runs),
            "dma+msi": median_seconds(session.round_trip, runs),
        }
    finally:
        board.close()


def qemu_cpu_seconds(board):
    """CPU time QEMU has used so far (user + system), or None for boards without a QEMU.

    On a busy machine the wall-clock boot grows with the load; QEMU's own CPU time does not."""
    pid = getattr(board, "qemu_pid", None)
    if not pid:
        return None
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _fmt(seconds):
    if seconds is None:
        return "-"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} us"


def run(args):
    import vfiolab
    from ..board.qemu import image
    image.ensure_image()  # a warm cache: the boot figure must not include the first download
    # With a GICv2m, VFIO attaches a group only with allow_unsafe_interrupts (no MSI isolation).
    unsafe = args.gic == "v2m"
    print(f"vfiolab bench board: gic={args.gic}{' (allow_unsafe_interrupts)' if unsafe else ''}, "
          f"medians of {args.runs} runs "
          f"({args.boots} boots for the qemu board)", flush=True)
    qemu = measure(lambda: vfiolab.open_board("qemu", gic=args.gic, allow_unsafe_interrupts=unsafe,
                                              quiet=True), args.runs, args.boots)
    sim_board, why = open_sim_twin(args.gic)
    sim = None
    if sim_board is not None:
        sim_board.close()
        try:
            sim = measure(lambda: open_sim_twin(args.gic)[0], args.runs, args.boots)
        except Exception as e:  # the sim is young: report, but keep the qemu figures
            why = f"the sim board failed the edu flow: {type(e).__name__}: {e}"
    print(f"{'operation':10} {'qemu':>12} {'sim':>12} {'qemu/sim':>10}")
    for op in ("boot", "ioctl", "register", "dma+msi"):
        s = sim[op] if sim else None
        ratio = f"{qemu[op] / s:.0f}x" if s else "-"
        print(f"{op:10} {_fmt(qemu[op]):>12} {_fmt(s):>12} {ratio:>10}")
    goal = "meets" if qemu["boot"] <= 5 else "misses"
    print(f"qemu boot to ready {_fmt(qemu['boot'])}: {goal} the 5 s goal "
          f"(QEMU used {_fmt(qemu['boot cpu'])} of CPU; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs)")
    if sim is None:
        print(f"sim column skipped: {why}", file=sys.stderr)
    return 0
