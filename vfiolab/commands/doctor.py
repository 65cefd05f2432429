"""vfiolab doctor: can each board (sim, qemu, host) run here, and if not, what to do."""
from .. import doctor

HELP = "tell, for each board (sim, qemu, host), whether it is usable here and what to install or do"


def add_arguments(parser):
    parser.add_argument("boards", nargs="*", metavar="BOARD",
                        help=f"boards to check: {', '.join(doctor.CHECKS)} (default: all)")
    parser.add_argument("--device", metavar="NAME",
                        help="host board: the device to assign, as /sys/bus/*/devices names it "
                             "(default: every group in /dev/vfio)")


def run(args):
    unknown = [b for b in args.boards if b not in doctor.CHECKS]
    if unknown:
        print(f"vfiolab doctor: unknown board {', '.join(unknown)}; boards are {', '.join(doctor.CHECKS)}")
        return 2
    reports = [doctor.check(kind, **({"device": args.device} if kind == "host" else {}))
               for kind in (args.boards or doctor.CHECKS)]
    print("\n".join(str(r) for r in reports))
    # Exit status: failure when a board asked for by name is unusable, or (no names) when even sim is.
    needed = reports if args.boards else reports[:1]
    return 0 if all(r.usable for r in needed) else 1
