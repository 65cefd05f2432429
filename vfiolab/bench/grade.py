"""vfiolab bench grade: grade N copies of a lab's solution with `vfiolab grade` and with nbgrader's
autograde, in the same run, and print both side by side (total time, per-notebook median)."""
import csv
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HELP = "grade N copies of a lab with vfiolab grade and with nbgrader autograde, side by side"


def _default_lab():
    from ..paths import project_root
    root = project_root() or ""
    return os.path.join(root, "tests", "sample_lab", "99-sample")


def add_arguments(parser):
    parser.add_argument("--copies", "-n", type=int, default=100, help="notebooks to grade (default 100)")
    parser.add_argument("--lab", default=None,
                        help="lab folder whose solution is copied (default: tests/sample_lab/99-sample)")
    parser.add_argument("--jobs", "-j", type=int, default=os.cpu_count() or 1,
                        help="vfiolab grade's parallel notebooks (default: one per core)")
    parser.add_argument("--no-nbgrader", action="store_true", help="time vfiolab grade only")


def time_vfiolab(lab, copies, jobs, work):
    from ..grading.grader import Limits, grade_class
    subs = os.path.join(work, "vfiolab", "submissions")
    name = os.path.basename(lab)
    for i in range(copies):
        shutil.copytree(lab, os.path.join(subs, f"learner{i:03d}", name),
                        ignore=shutil.ignore_patterns("hidden_checks.py", "__pycache__"))
    start = time.perf_counter()
    graded, _, _ = grade_class(subs, os.path.join(work, "vfiolab", "grades"), [lab], jobs=jobs,
                               limits=Limits(cell_timeout=120, notebook_timeout=900), regrade=True)
    total = time.perf_counter() - start
    full = sum(r["points"] == r["max_points"] for r in graded)
    return total, statistics.median(r["seconds"] for r in graded), full


def time_nbgrader(lab, copies, work):
    course = os.path.join(work, "nbgrader")
    name = os.path.basename(lab)
    ignore = shutil.ignore_patterns("hidden_checks.py", "__pycache__")
    shutil.copytree(lab, os.path.join(course, "source", name), ignore=ignore)
    with open(os.path.join(course, "nbgrader_config.py"), "w") as f:
        f.write(f"c = get_config()\nc.CourseDirectory.course_id = 'bench'\n"
                f"c.CourseDirectory.root = {course!r}\n")
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])

    def nbgrader(*args):
        subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    nbgrader("generate_assignment", name, "--force")
    for i in range(copies):
        shutil.copytree(os.path.join(course, "source", name),
                        os.path.join(course, "submitted", f"learner{i:03d}", name))
    start = time.perf_counter()
    nbgrader("autograde", name, "--force")
    total = time.perf_counter() - start
    # autograde works through the notebooks one after another: the gaps between the times the
    # graded notebooks were written are the per-notebook times.
    written = sorted(os.path.getmtime(os.path.join(course, "autograded", s, name, f))
                     for s in os.listdir(os.path.join(course, "autograded"))
                     for f in os.listdir(os.path.join(course, "autograded", s, name)) if f.endswith(".ipynb"))
    gaps = [b - a for a, b in zip(written, written[1:])] or [total]
    nbgrader("export", "--to", os.path.join(course, "grades.csv"))
    rows = list(csv.DictReader(open(os.path.join(course, "grades.csv"))))
    full = sum(float(r["score"]) == float(r["max_score"]) for r in rows)
    return total, statistics.median(gaps), full


def run(args):
    lab = os.path.abspath(args.lab or _default_lab())
    if not os.path.isdir(lab):
        print(f"vfiolab bench grade: no lab folder {lab}", file=sys.stderr)
        return 2
    work = tempfile.mkdtemp(prefix="vfiolab-bench-grade-")
    try:
        print(f"grading {args.copies} copies of the {os.path.basename(lab)} solution on "
              f"{os.cpu_count()} cores", flush=True)
        rows = [("vfiolab grade", *time_vfiolab(lab, args.copies, args.jobs, work),
                 f"{args.jobs} at a time, sandboxed, public + hidden checks")]
        if not args.no_nbgrader:
            try:
                rows.append(("nbgrader autograde", *time_nbgrader(lab, args.copies, work),
                             "one at a time, no sandbox, public checks"))
            except (subprocess.CalledProcessError, OSError) as e:
                print(f"nbgrader could not run ({e}); is it installed? pip install nbgrader", file=sys.stderr)
        print(f"{'':<20}{'total':>10}{'per notebook':>14}{'full marks':>12}  how")
        for name, total, median, full, how in rows:
            print(f"{name:<20}{total:>9.1f}s{median:>13.2f}s{full:>8}/{args.copies:<3}  {how}")
        if len(rows) == 2:
            print(f"vfiolab grade takes {rows[0][1] / rows[1][1]:.2f}x nbgrader's total time "
                  f"and {rows[0][2] / rows[1][2]:.2f}x its per-notebook median")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)
