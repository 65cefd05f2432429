"""vfiolab bench grade: grade N copies of each lab's solution with `vfiolab grade` and with
nbgrader's autograde, in the same run, and print both side by side (total time, per-notebook
median), lab by lab and in total. By default: every lab of the checkout with a notebook, and the
sample lab (tests/sample_lab/99-sample)."""
import csv
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from ..grading.defaults import default_jobs

HELP = "grade N copies of each lab with vfiolab grade and with nbgrader autograde, side by side"


def _default_labs():
    from ..grading.release import checkout_labs
    from ..paths import project_root
    sample = os.path.join(project_root() or "", "tests", "sample_lab", "99-sample")
    return checkout_labs() + ([sample] if os.path.isdir(sample) else [])


def add_arguments(parser):
    parser.add_argument("--copies", "-n", type=int, default=100,
                        help="notebooks to grade per lab (default 100)")
    parser.add_argument("--lab", nargs="+", default=None, metavar="LAB",
                        help="lab folders whose solution is copied (default: every lab under "
                             "labs/ with a notebook, and tests/sample_lab/99-sample)")
    parser.add_argument("--jobs", "-j", type=int, default=default_jobs(),
                        help="vfiolab grade's parallel notebooks (default: two per core)")
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
                               stream=open(os.devnull, "w"),
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
    labs = [os.path.abspath(lab) for lab in (args.lab or _default_labs())]
    missing = [lab for lab in labs if not os.path.isdir(lab)]
    if missing or not labs:
        print(f"vfiolab bench grade: no lab folder {', '.join(missing) or '(none found)'}",
              file=sys.stderr)
        return 2
    print(f"grading {args.copies} copies of each lab's solution on {os.cpu_count()} cores "
          f"(load average {open('/proc/loadavg').read().split()[0]} at the start)", flush=True)
    rows = []  # (lab, grader, total, median, full, how)
    print(f"{'lab':<18}{'grader':<20}{'total':>9}{'per notebook':>14}{'full marks':>12}  how",
          flush=True)

    def show(row):  # each figure as soon as it is measured: a long run shows what it has
        rows.append(row)
        lab, grader, total, median, full, how = row
        print(f"{lab:<18}{grader:<20}{total:>8.1f}s{median:>13.2f}s{full:>8}/{args.copies:<3}  "
              f"{how} (load {open('/proc/loadavg').read().split()[0]})", flush=True)

    for lab in labs:
        name = os.path.basename(lab)
        work = tempfile.mkdtemp(prefix="vfiolab-bench-grade-")
        try:
            show((name, "vfiolab grade", *time_vfiolab(lab, args.copies, args.jobs, work),
                  f"{args.jobs} at a time, sandboxed, public + hidden checks"))
            if not args.no_nbgrader:
                try:
                    show((name, "nbgrader autograde", *time_nbgrader(lab, args.copies, work),
                          "one at a time, no sandbox, public checks"))
                except (subprocess.CalledProcessError, OSError) as e:
                    print(f"nbgrader could not run ({e}); is it installed? pip install nbgrader",
                          file=sys.stderr)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    totals = {}
    for lab, grader, total, *_ in rows:
        totals[grader] = totals.get(grader, 0) + total
    for grader, total in totals.items():
        print(f"{'all labs':<18}{grader:<20}{total:>8.1f}s")
    if len(totals) == 2:
        ours, theirs = totals["vfiolab grade"], totals["nbgrader autograde"]
        print(f"vfiolab grade is {theirs / ours:.2f}x as fast as nbgrader autograde in total "
              f"({ours:.1f} s against {theirs:.1f} s for {len(labs)} x {args.copies} notebooks); "
              f"load average at the end {open('/proc/loadavg').read().split()[0]}")
    return 0
