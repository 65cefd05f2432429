"""vfiolab bench irqfd: a level interrupt's round trip into a KVM guest, irqfd + resamplefd beside
the same interrupt carried by user space, on the sim and the qemu board, medians side by side and
each board's ratio of the two (measured in the same run).

The device is edu's INTx (level, vfio-pci masks it as it fires) on both boards (the sim's virt
twin, the qemu board's real kernel with KVM nested under TCG); the guest is lab 03's
(vfiolab/guests/irq_guest.S). One round:
  irqfd       IRQ_RAISE (vfio-pci masks INTx and signals the trigger eventfd = the KVM irqfd),
              KVM_RUN to the guest's IAR report, IRQ_ACK, KVM_RUN to its EOI report (the
              resamplefd fires and vfio's virqfd unmasks INTx): no user-space step in between
  user space  IRQ_RAISE, poll + read the trigger eventfd, KVM_IRQ_LINE 1, KVM_RUN to the IAR,
              IRQ_ACK, KVM_IRQ_LINE 0, KVM_RUN to the EOI, VFIO_DEVICE_SET_IRQS unmask
"""
import statistics
import time

from .. import guests
from .. import platform as plat
from .. import uapi as U
from ..drivers import edu
from ..hw.kvm import Vmm
from ..vfio import Container, Group

HELP = "interrupt round trip into a KVM guest: irqfd + resamplefd vs the user-space path (sim, qemu)"
GSI = 5
UNMASK_EVENTFD = U.VFIO_IRQ_SET_DATA_EVENTFD | U.VFIO_IRQ_SET_ACTION_UNMASK
INTX = U.VFIO_PCI_INTX_IRQ_INDEX


def add_arguments(parser):
    parser.add_argument("--rounds", type=int, default=30, help="interrupts per path and board (default 30)")
    parser.add_argument("--board", choices=("both", "sim", "qemu"), default="both")


class EduInGuest:
    """edu bound to vfio-pci, its INTx on a trigger eventfd, lab 03's guest parked in WFI."""

    def __init__(self, board):
        self.board = board
        name = plat.first_device(board, (edu.VENDOR, edu.DEVICE), why="to time")
        plat.bind_to_vfio(board, name)
        self.container = Container(board)
        group = Group.of_device(board, name)
        group.set_container(self.container)
        self.container.set_iommu()
        self.device = group.device(name)
        self.fd = self.device._live_fd()
        bar0 = U.vfio_region_info(index=U.VFIO_PCI_BAR0_REGION_INDEX)
        board.ioctl(self.fd, U.VFIO_DEVICE_GET_REGION_INFO, bar0)
        self.regs = board.mmap(self.fd, 0x1000, bar0.offset)
        self.vmm = Vmm(board)
        self.vmm.load(guests.irq_guest())
        self.vmm.write32(guests.PARAMS, guests.ICFGR_LEVEL)
        self.expect(self.vmm.run(), "intr")
        self.trigger = board.eventfd()
        board.ioctl(self.fd, U.VFIO_DEVICE_SET_IRQS, U.irq_set_eventfds(INTX, [self.trigger]))
        self.resample = None

    @staticmethod
    def expect(exit, reason, addr=None):
        if exit.reason != reason or (addr is not None and exit.addr != addr):
            raise RuntimeError(f"the guest did not behave: expected {reason} at {addr}, got {exit}")

    def wire_irqfd(self):
        self.resample = self.board.eventfd()
        self.board.ioctl(self.fd, U.VFIO_DEVICE_SET_IRQS,
                         U.irq_set_eventfds(INTX, [self.resample], flags=UNMASK_EVENTFD))
        self.vmm.irqfd(self.trigger, GSI, resamplefd=self.resample)

    def irqfd_round(self):
        self.regs.write32(edu.IRQ_RAISE, 1)
        self.expect(self.vmm.run_until_mmio(), "mmio", guests.REPORT)
        self.regs.write32(edu.IRQ_ACK, 1)
        self.expect(self.vmm.run(), "mmio", guests.REPORT + 4)

    def user_space_round(self):
        self.regs.write32(edu.IRQ_RAISE, 1)
        if not self.board.poll([self.trigger], 5000):
            raise RuntimeError("edu's INTx never reached the trigger eventfd")
        self.board.read(self.trigger, 8)
        self.vmm.irq_line(GSI, 1)
        self.expect(self.vmm.run_until_mmio(), "mmio", guests.REPORT)
        self.regs.write32(edu.IRQ_ACK, 1)
        self.vmm.irq_line(GSI, 0)
        self.expect(self.vmm.run(), "mmio", guests.REPORT + 4)
        self.device.irq(INTX).unmask()

    def close(self):
        if self.resample is not None:
            self.vmm.irqfd(self.trigger, GSI, deassign=True)
        self.regs.close()
        self.vmm.close()
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


def measure(board, rounds):
    """(irqfd seconds, user-space seconds) on an open board: medians of `rounds` round trips."""
    bench = EduInGuest(board)
    try:
        user = round_times(bench.user_space_round, rounds)
        bench.wire_irqfd()
        irqfd = round_times(bench.irqfd_round, rounds)
    finally:
        bench.close()
    return statistics.median(irqfd), statistics.median(user)


def open_for(kind):
    import vfiolab
    return vfiolab.open_board("sim", layout="virt") if kind == "sim" else vfiolab.open_board("qemu", quiet=True)


def run(args):
    if args.rounds < 1:
        print("vfiolab bench irqfd: --rounds must be at least 1")
        return 2
    kinds = ("sim", "qemu") if args.board == "both" else (args.board,)
    rows = []
    for kind in kinds:
        try:
            with open_for(kind) as board:
                rows.append((kind, *measure(board, args.rounds)))
        except (FileNotFoundError, NotImplementedError) as e:   # no qemu-system-aarch64 here
            print(f"{kind}: not measured: {e}")
    if not rows:
        return 1
    print(f"edu INTx into a KVM guest, round trip (raise .. guest EOI), median of {args.rounds}:")
    print(f"  {'board':6} {'irqfd+resamplefd':>18} {'user space':>12} {'user/irqfd':>11}")
    for kind, irqfd, user in rows:
        print(f"  {kind:6} {irqfd * 1e6:15.1f} us {user * 1e6:9.1f} us {user / irqfd:10.2f}x")
    return 0
