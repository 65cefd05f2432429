"""vfiolab grade SUBMISSIONS --out GRADES: run and grade a class's notebooks."""
import os
import signal
import sys

from ..grading.defaults import default_jobs

HELP = ("grade SUBMISSIONS/<learner>/<lab>/<notebook>.ipynb: each notebook runs sandboxed with time "
        "limits, then public and hidden checks; writes a gradebook and feedback into --out")


def add_arguments(parser):
    parser.add_argument("submissions", help="folder of <learner>/<lab-folder>/<notebook>.ipynb")
    parser.add_argument("--out", required=True, metavar="GRADES",
                        help="folder for gradebook.csv/.json, feedback/ and results/")
    parser.add_argument("--labs", nargs="+", metavar="LAB",
                        help="the instructor's lab folders, with hidden checks "
                             "(default: every lab under this checkout's labs/)")
    parser.add_argument("--jobs", "-j", type=int, default=default_jobs(),
                        help="notebooks graded at once (default: two per core)")
    parser.add_argument("--cell-timeout", type=float, default=60, metavar="S",
                        help="seconds a cell may run before it is interrupted (default 60)")
    parser.add_argument("--timeout", type=float, default=600, metavar="S",
                        help="seconds a whole notebook may run (default 600)")
    parser.add_argument("--regrade", action="store_true",
                        help="grade again what is already graded (default: skip unchanged submissions)")


def _stop(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


def run(args):
    from ..grading.grader import Limits, grade_class  # nbformat: seconds to import, so not for --help
    from ..grading.lab import LabError
    from ..grading.release import checkout_labs
    labs = args.labs or checkout_labs()
    if not labs:
        print("vfiolab grade: no lab with a notebook found; pass --labs LAB_FOLDER ...", file=sys.stderr)
        return 2
    if not os.path.isdir(args.submissions):
        print(f"vfiolab grade: no folder {args.submissions}", file=sys.stderr)
        return 2
    # A shutdown (SIGTERM, as at a reboot) stops the run as Ctrl-C does: what is done stays done.
    signal.signal(signal.SIGTERM, _stop)
    try:
        graded, skipped, warnings = grade_class(
            args.submissions, args.out, labs, jobs=args.jobs, regrade=args.regrade,
            limits=Limits(cell_timeout=args.cell_timeout, notebook_timeout=args.timeout))
    except LabError as e:
        print(f"vfiolab grade: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # the grader said what is recorded and how to go on
        return 130
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    for rec in sorted(graded + skipped, key=lambda r: (r["learner"], r["lab"])):
        print(f"{rec['learner']:<20} {rec['lab']:<20} {rec['points']:>5g} / {rec['max_points']:<5g} "
              f"{'' if rec['status'] == 'ok' else rec['status']}")
    print(f"graded {len(graded)}, skipped {len(skipped)} already graded (--regrade to redo); "
          f"gradebook: {os.path.join(args.out, 'gradebook.csv')}")
    return 0
