"""vfiolab lab: open JupyterLab on the course's labs/ folder."""
import os
import sys

from ..paths import project_root

HELP = "open the labs in JupyterLab (extra options go to jupyter lab, e.g. --no-browser --port 8899)"


def add_arguments(parser):
    parser.add_argument("--root", help="folder that holds labs/ (default: this checkout)")
    parser.set_defaults(accepts_extra=True)


def run(args):
    root = os.path.abspath(args.root) if args.root else project_root()
    if root is None or not os.path.isdir(os.path.join(root, "labs")):
        print("vfiolab lab: no labs/ folder found. Run it from a vfiolab checkout "
              "or pass --root PATH_TO_CHECKOUT.", file=sys.stderr)
        return 2
    argv = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={root}",
            "--LabApp.default_url=/lab/tree/labs", *args.extra]
    if os.geteuid() == 0 and "--allow-root" not in argv:
        # Containers and fresh cloud machines often run as root; Jupyter refuses that by default.
        argv.append("--allow-root")
    sys.stdout.flush()
    # exec, so Ctrl-C and SIGTERM reach Jupyter itself and it shuts its kernels down cleanly.
    os.execv(sys.executable, argv)
