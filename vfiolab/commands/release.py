"""vfiolab release OUTDIR: the learners' version of the labs (no solutions, no hidden checks)."""
import sys

from ..grading.release import ReleaseError, checkout_labs, release

HELP = "write the learners' version of every lab into OUTDIR: solutions stripped, hidden checks left out"


def add_arguments(parser):
    parser.add_argument("outdir", help="folder to write the released labs into")
    parser.add_argument("labs", nargs="*", metavar="LAB",
                        help="lab folders to release (default: every lab under this checkout's labs/)")


def run(args):
    labs = args.labs or checkout_labs()
    if not labs:
        print("vfiolab release: no lab with a notebook under labs/; name lab folders to release",
              file=sys.stderr)
        return 2
    try:
        for folder in release(labs, args.outdir):
            print(f"released {folder}")
    except (ReleaseError, OSError) as e:
        print(f"vfiolab release: {e}", file=sys.stderr)
        return 1
    return 0
