"""vfiolab lab: open JupyterLab on the learner's workspace (or, with --instructor, on labs/)."""
import os
import sys

from .. import workspace
from ..grading.release import ReleaseError, lab_folders
from ..paths import project_root

HELP = ("open the labs in JupyterLab: your own copy of them in ~/vfiolab-work ($VFIOLAB_WORK); "
        "extra options go to jupyter lab, e.g. --no-browser --port 8899")


def add_arguments(parser):
    parser.add_argument("--root", help="folder that holds labs/ (default: this checkout)")
    parser.add_argument("--work", help=f"your work folder (default: ${workspace.ENV_VAR} or ~/vfiolab-work)")
    parser.add_argument("--fresh", action="store_true",
                        help="start from clean copies: the old work folder is renamed aside, not deleted")
    parser.add_argument("--instructor", action="store_true",
                        help="open the instructor's sources (solutions, hidden checks) in labs/ instead")
    parser.set_defaults(accepts_extra=True)


def run(args):
    root = os.path.abspath(args.root) if args.root else project_root()
    if root is None or not os.path.isdir(os.path.join(root, "labs")):
        print("vfiolab lab: no labs/ folder found. Run it from a vfiolab checkout "
              "or pass --root PATH_TO_CHECKOUT.", file=sys.stderr)
        return 2
    if args.instructor:
        print(f"vfiolab lab: the instructor's sources in {root}/labs (solutions and hidden checks "
              "included; learners get `vfiolab lab` without --instructor)")
        argv, env = workspace.server_command(root, args.extra, learner=False,
                                             default_url="/lab/tree/labs")
    else:
        try:
            work = workspace.prepare(args.work, lab_folders(os.path.join(root, "labs")), args.fresh)
        except (ReleaseError, OSError) as e:
            print(f"vfiolab lab: could not prepare your work folder: {e}", file=sys.stderr)
            return 1
        describe(work)
        argv, env = workspace.server_command(work, args.extra)
    sys.stdout.flush()
    # exec, so Ctrl-C and SIGTERM reach Jupyter itself and it shuts its kernels down cleanly.
    os.execve(sys.executable, argv, env)


def describe(work):
    if work.set_aside:
        print(f"vfiolab lab: your previous work folder is kept at {work.set_aside}")
    print(f"vfiolab lab: your work folder is {work.path}")
    if work.added:
        print(f"    new labs copied in: {', '.join(work.added)}")
    if work.kept:
        print(f"    your labs, left as you left them: {', '.join(work.kept)}")
    print("    to start a lab again from a clean copy: `vfiolab lab --fresh` (renames this folder "
          "aside), or move that lab's folder away and run `vfiolab lab`")
