"""vfiolab bench irqfd: a level interrupt's round trip into a KVM guest, irqfd + resamplefd beside
the same interrupt carried by user space, medians side by side and their ratio (same run).

One round, on the sim board's xgmac (vfio-platform, level-triggered, automasked) and lab 03's
guest (vfiolab/guests/irq_guest.S) under the board's /dev/kvm:
  irqfd       raise the line (VFIO masks it, signals the trigger eventfd = KVM irqfd), KVM_RUN to
              the guest's IAR report, ack the device, KVM_RUN to its EOI report (the resamplefd
              fires, VFIO's virqfd unmasks): no user-space step between the raise and the EOI
  user space  raise, poll + read the trigger eventfd, KVM_IRQ_LINE 1, KVM_RUN to the IAR, ack,
              KVM_IRQ_LINE 0, KVM_RUN to the EOI, VFIO_DEVICE_SET_IRQS unmask
The qemu board's real KVM is the point of the comparison (REFERENCE.md section 10 saw 1.2-2.0 ms
per irqfd cycle under nested TCG), but that board does not carry KVM through its agent yet, so
only the sim is measured; the command says so instead of printing a figure it does not have.
"""
import statistics
import time

from .. import guests
from .. import platform as plat
from .. import uapi as U
from ..hw import xgmac as X
from ..hw.kvm import Vmm
from ..vfio import Container, Group

HELP = "interrupt round trip into a KVM guest: irqfd + resamplefd vs the user-space path"
DEVICE = "fff50000.ethernet"
GSI = 5
UNMASK_EVENTFD = U.VFIO_IRQ_SET_DATA_EVENTFD | U.VFIO_IRQ_SET_ACTION_UNMASK


def add_arguments(parser):
    parser.add_argument("--rounds", type=int, default=200, help="interrupts per path (default 200)")
    parser.add_argument("--board", choices=("sim", "qemu"), default="sim")


class XgmacInGuest:
    """The xgmac bound to vfio-platform, its IRQ index 0 and lab 03's guest parked in WFI."""

    def __init__(self, board):
        self.board = board
        plat.bind_to_vfio(board, DEVICE)
        self.container = Container(board)
        group = Group.of_device(board, DEVICE)
        group.set_container(self.container)
        self.container.set_iommu()
        self.device = group.device(DEVICE)
        self.fd = self.device._live_fd()
        self.regs = board.mmap(self.fd, 0x1000, 0)
        self.vmm = Vmm(board)
        self.vmm.load(guests.irq_guest())
        self.vmm.write32(guests.PARAMS, guests.ICFGR_LEVEL)
        self.expect(self.vmm.run(), "intr")
        self.trigger = board.eventfd()
        self.board.ioctl(self.fd, U.VFIO_DEVICE_SET_IRQS, U.irq_set_eventfds(0, [self.trigger]))
        self.resample = None

    @staticmethod
    def expect(exit, reason, addr=None):
        if exit.reason != reason or (addr is not None and exit.addr != addr):
            raise RuntimeError(f"the guest did not behave: expected {reason} at {addr}, got {exit}")

    def raise_line(self):
        self.regs.write32(X.DMA_INTR_ENA, X.STATUS["TPS"])
        self.regs.write32(X.DMA_CONTROL, X.DMA_CONTROL_ST)
        self.regs.write32(X.DMA_CONTROL, 0)

    def ack(self):
        self.regs.write32(X.DMA_STATUS, X.STATUS["TPS"])

    def wire_irqfd(self):
        self.resample = self.board.eventfd()
        self.board.ioctl(self.fd, U.VFIO_DEVICE_SET_IRQS, U.irq_set_eventfds(0, [self.resample], flags=UNMASK_EVENTFD))
        self.vmm.irqfd(self.trigger, GSI, resamplefd=self.resample)

    def unwire_irqfd(self):
        self.vmm.irqfd(self.trigger, GSI, deassign=True)
        self.board.ioctl(self.fd, U.VFIO_DEVICE_SET_IRQS, U.irq_set_eventfds(0, [-1], flags=UNMASK_EVENTFD))
        self.board.close(self.resample)

    def irqfd_round(self):
        self.raise_line()
        self.expect(self.vmm.run(), "mmio", guests.REPORT)
        self.ack()
        self.expect(self.vmm.run(), "mmio", guests.REPORT + 4)

    def user_space_round(self):
        self.raise_line()
        if not self.board.poll([self.trigger], 1000):
            raise RuntimeError("the device's interrupt never reached the eventfd")
        self.board.read(self.trigger, 8)
        self.vmm.irq_line(GSI, 1)
        self.expect(self.vmm.run(), "mmio", guests.REPORT)
        self.ack()
        self.vmm.irq_line(GSI, 0)
        self.expect(self.vmm.run(), "mmio", guests.REPORT + 4)
        self.device.irq(0).unmask()

    def close(self):
        self.regs.close()
        self.vmm.close()
        self.board.close(self.trigger)
        self.device.close()
        self.container.close()


def round_times(fn, rounds):
    fn()                                         # warm-up
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def measure_sim(rounds):
    """(irqfd seconds, user-space seconds): medians of `rounds` round trips each."""
    import vfiolab
    with vfiolab.open_board("sim") as board:
        bench = XgmacInGuest(board)
        try:
            user = round_times(bench.user_space_round, rounds)
            bench.wire_irqfd()
            irqfd = round_times(bench.irqfd_round, rounds)
            bench.unwire_irqfd()
        finally:
            bench.close()
    return statistics.median(irqfd), statistics.median(user)


def run(args):
    if args.rounds < 1:
        print("vfiolab bench irqfd: --rounds must be at least 1")
        return 2
    if args.board == "qemu":
        print("vfiolab bench irqfd --board qemu: not measured: the qemu board's agent does not carry KVM "
              "yet (fds from KVM ioctls, eventfds inside kvm_irqfd, a KVM_RUN that blocks; issue 15)")
        return 1
    irqfd, user = measure_sim(args.rounds)
    print(f"interrupt round trip into a KVM guest, sim board, median of {args.rounds}:")
    print(f"  irqfd + resamplefd   {irqfd * 1e6:9.1f} us")
    print(f"  user space path      {user * 1e6:9.1f} us")
    print(f"  user space / irqfd   {user / irqfd:9.2f}x")
    return 0
