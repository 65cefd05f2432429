"""vfiolab bench grade: grade N copies of each lab's solution with `vfiolab grade` and with
nbgrader's autograde on the same notebooks, in the same run, and print both side by side (total
time, time per notebook, per-notebook median, points), lab by lab and in total. By default: every
lab of the checkout with a notebook, and the sample lab (tests/sample_lab/99-sample).

Fair under a varying load (other people's jobs on the machine): the copies are graded in slices,
ours on slice k then nbgrader's on the same slice k, and so on, so that both sides see the same
spells of load; each side's load average (sampled every second while it runs) is printed beside
its time. Each slice is a separate run on both sides (`grade_class` in this process; `nbgrader
autograde --student <slice glob>`), so both pay their start-up once per slice.
"""
import csv
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from ..grading.defaults import default_jobs

HELP = "grade N copies of each lab with vfiolab grade and with nbgrader autograde, side by side"
CELL_TIMEOUT = 120  # seconds, on both sides (nbgrader's Execute.timeout, our --cell-timeout)


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
    parser.add_argument("--slice", type=int, default=20, metavar="K",
                        help="notebooks per slice: ours grade K, then nbgrader the same K (default 20)")
    parser.add_argument("--no-nbgrader", action="store_true", help="time vfiolab grade only")


class LoadSampler:
    """The 1-minute load average, sampled every second while a side runs."""

    def __init__(self):
        self.samples, self._stop = [], threading.Event()

    def __enter__(self):
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _sample(self):
        while True:
            self.samples.append(load_average())
            if self._stop.wait(1.0):
                return


class CpuAccount:
    """The CPU time of everything one side starts (its processes and all their descendants,
    whatever session they put themselves in), counted by a cgroup (v1 cpuacct) that this process
    joins while that side runs; children inherit it. Unlike wall time it does not depend on the
    load, nor on how Linux shares the CPU out under load (autogroup gives each session an equal
    share: our runners are four sessions and the factory a fifth, nbgrader is one). `seconds` is
    None where no such cgroup can be made (not root, or cgroup v2 only)."""

    ROOT = "/sys/fs/cgroup/cpuacct"

    def __init__(self, name):
        self.path, self.seconds = os.path.join(self.ROOT, f"vfiolab-bench-{os.getpid()}-{name}"), 0.0
        try:
            os.makedirs(self.path, exist_ok=True)
            self.home = os.path.join(self.ROOT, self._current().lstrip("/"))
        except OSError:
            self.path = self.seconds = None

    @staticmethod
    def _current():
        with open("/proc/self/cgroup") as f:
            for line in f:
                _, controllers, path = line.rstrip("\n").split(":", 2)
                if "cpuacct" in controllers.split(","):
                    return path
        raise OSError("no cpuacct cgroup")

    def _usage(self):
        with open(os.path.join(self.path, "cpuacct.usage")) as f:
            return int(f.read()) / 1e9

    @staticmethod
    def _move(folder):
        with open(os.path.join(folder, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))

    def __enter__(self):
        if self.path:
            self._move(self.path)
            self._start = self._usage()
        return self

    def __exit__(self, *exc):
        if self.path:
            self._move(self.home)
            self.seconds += self._usage() - self._start

    def remove(self, wait=10.0):
        """Once every process of this side has ended (the group cannot go before)."""
        deadline = time.monotonic() + wait
        while self.path:
            try:
                os.rmdir(self.path)
                return
            except OSError:
                if time.monotonic() > deadline:
                    print(f"warning: {self.path} still holds processes; remove it later",
                          file=sys.stderr)
                    return
                time.sleep(0.1)


def load_average():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


class Side:
    """One grader's figures for one lab, summed over its slices."""

    def __init__(self, name, how):
        self.name, self.how = name, how
        self.seconds, self.per_notebook, self.loads, self.points = 0.0, [], [], {}
        self.full = ""  # "100/100 full marks (35 points)"
        self.cpu = 0.0  # CPU seconds of its whole process tree, None if not measured

    def add(self, seconds, per_notebook, loads, points):
        self.seconds += seconds
        self.per_notebook += per_notebook
        self.loads += loads
        self.points.update(points)

    @property
    def load(self):
        return statistics.mean(self.loads) if self.loads else load_average()


def _learner(slice_index, i):
    return f"s{slice_index:02d}l{i:03d}"  # "s03*" is slice 3 (nbgrader's --student is a glob)


def _copy_lab(lab, dst):
    shutil.copytree(lab, dst, ignore=shutil.ignore_patterns("hidden_checks.py", "__pycache__"))


def public_points(rec):
    """The points a record's public checks earned: what nbgrader's check cells score."""
    return sum(c["points"] for c in rec["checks"] if not c["hidden"])


def grade_slice_ours(lab, learners, jobs, work):
    """Grade one slice with vfiolab grade: (seconds, per-notebook seconds, {learner: record})."""
    from ..grading.grader import Limits, grade_class
    name = os.path.basename(lab)
    subs = tempfile.mkdtemp(prefix="slice-", dir=work)
    for learner in learners:
        _copy_lab(lab, os.path.join(subs, learner, name))
    start = time.perf_counter()
    graded, _, warnings = grade_class(subs, os.path.join(work, "grades"), [lab], jobs=jobs,
                                      stream=open(os.devnull, "w"), regrade=True,
                                      limits=Limits(cell_timeout=CELL_TIMEOUT, notebook_timeout=900))
    seconds = time.perf_counter() - start
    for w in warnings:
        print(f"  warning from vfiolab grade: {w}", file=sys.stderr)
    return seconds, [r["seconds"] for r in graded], {r["learner"]: r for r in graded}


class NbgraderCourse:
    """An nbgrader course holding the lab (hidden checks left out: nbgrader has no sandbox to keep
    them from the learner's kernel), released once, and every copy submitted."""

    def __init__(self, lab, work):
        self.root, self.name = os.path.join(work, "nbgrader"), os.path.basename(lab)
        _copy_lab(lab, os.path.join(self.root, "source", self.name))
        with open(os.path.join(self.root, "nbgrader_config.py"), "w") as f:
            f.write(f"c = get_config()\nc.CourseDirectory.course_id = 'bench'\n"
                    f"c.CourseDirectory.root = {self.root!r}\n"
                    f"c.Execute.timeout = {CELL_TIMEOUT}\n")
        # nbgrader runs `alembic` by name: this interpreter's bin folder goes first on PATH
        self.env = dict(os.environ,
                        PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
        self.run("generate_assignment", self.name, "--force")

    def run(self, *args):
        done = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=self.root,
                              env=self.env, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"nbgrader {' '.join(args)} failed ({done.returncode}): "
                               + " / ".join((done.stdout + done.stderr).strip().splitlines()[-4:]))
        return done

    def submit(self, learner):
        shutil.copytree(os.path.join(self.root, "source", self.name),
                        os.path.join(self.root, "submitted", learner, self.name))

    def autograde(self, pattern, learners):
        """Autograde the learners matching pattern: (seconds, per-notebook seconds)."""
        start_wall, start = time.time(), time.perf_counter()
        self.run("autograde", self.name, "--force", f"--student={pattern}")
        seconds = time.perf_counter() - start
        # autograde works through the notebooks one after another: the gaps between the times the
        # graded notebooks were written are the per-notebook times (the first includes start-up).
        written = sorted(os.path.getmtime(os.path.join(self.root, "autograded", s, self.name, f))
                         for s in learners
                         for f in os.listdir(os.path.join(self.root, "autograded", s, self.name))
                         if f.endswith(".ipynb"))
        if len(written) != len(learners):
            raise RuntimeError(f"nbgrader autograded {len(written)} of {len(learners)} notebooks")
        return seconds, [b - a for a, b in zip([start_wall] + written, written)]

    def scores(self):
        """{learner: (score, max score)} from nbgrader's own gradebook."""
        out = os.path.join(self.root, "grades.csv")
        self.run("export", "--to", out)
        return {r["student_id"]: (float(r["score"]), float(r["max_score"]))
                for r in csv.DictReader(open(out))}


def bench_lab(lab, args):
    """Both sides on one lab, slice by slice: (ours, theirs or None, notes)."""
    name = os.path.basename(lab)
    work = tempfile.mkdtemp(prefix="vfiolab-bench-grade-")
    ours = Side("vfiolab grade", f"{args.jobs} at a time, sandboxed, public + hidden checks")
    theirs = None if args.no_nbgrader else \
        Side("nbgrader autograde", "one at a time, no sandbox, public checks")
    records = {}
    try:
        course = None
        if theirs:
            try:
                course = NbgraderCourse(lab, work)
            except (RuntimeError, OSError) as e:
                print(f"nbgrader could not run ({e}); is it installed? pip install nbgrader",
                      file=sys.stderr)
                theirs = None
        slices = [list(range(i, min(i + args.slice, args.copies)))
                  for i in range(0, args.copies, args.slice)]
        for k, indices in enumerate(slices):
            learners = [_learner(k, i) for i in indices]
            with LoadSampler() as load, args.cpu["ours"] as cpu:
                before = cpu.seconds
                seconds, times, graded = grade_slice_ours(lab, learners, args.jobs, work)
            ours.cpu = None if cpu.seconds is None else ours.cpu + cpu.seconds - before
            records.update(graded)
            ours.add(seconds, times, load.samples, {l: public_points(r) for l, r in graded.items()})
            line = (f"  {name} slice {k + 1}/{len(slices)}: vfiolab grade {seconds:.1f} s "
                    f"(load {statistics.mean(load.samples):.1f})")
            if theirs:
                for learner in learners:
                    course.submit(learner)
                with LoadSampler() as load, args.cpu["nbgrader"] as cpu:
                    before = cpu.seconds
                    seconds, times = course.autograde(f"s{k:02d}*", learners)
                theirs.cpu = None if cpu.seconds is None else theirs.cpu + cpu.seconds - before
                theirs.add(seconds, times, load.samples, {})
                line += f", nbgrader {seconds:.1f} s (load {statistics.mean(load.samples):.1f})"
            print(line, flush=True)  # a run stopped part way still shows what it measured
        if theirs:
            scores = course.scores()
            theirs.points = {learner: score for learner, (score, _) in scores.items()}
            theirs.full = _full_marks(scores.values())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ours.full = _full_marks([(r["points"], r["max_points"]) for r in records.values()])
    notes = []
    if theirs:
        differ = sorted(l for l in records if ours.points.get(l) != theirs.points.get(l))
        notes.append(f"{name}: the public checks' points agree on every notebook "
                     f"({len(records)} of {len(records)})" if not differ else
                     f"{name}: POINTS DIFFER on {len(differ)} notebooks (ours public / nbgrader): "
                     + ", ".join(f"{l} {ours.points.get(l)}/{theirs.points.get(l)}" for l in differ[:5]))
    return ours, theirs, notes


def _full_marks(scores):
    """"98/100 full marks (35 points)" for [(points, max points)]."""
    scores = list(scores)
    full = sum(points == top for points, top in scores)
    tops = sorted({top for _, top in scores})
    return f"{full}/{len(scores)} full marks ({'/'.join(f'{t:g}' for t in tops)} points)"


def _row(lab, side, copies):
    per = side.seconds / max(copies, 1)
    cpu = f"{side.cpu / max(copies, 1):>8.2f}s" if side.cpu is not None else f"{'-':>9}"
    return (f"{lab:<16}{side.name:<20}{side.seconds:>8.1f}s{per:>9.2f}s"
            f"{statistics.median(side.per_notebook):>9.2f}s{cpu}{side.load:>7.1f}  "
            f"{side.full}; {side.how}")


def run(args):
    labs = [os.path.abspath(lab) for lab in (args.lab or _default_labs())]
    missing = [lab for lab in labs if not os.path.isdir(lab)]
    if missing or not labs or args.copies < 1 or args.slice < 1:
        print(f"vfiolab bench grade: no lab folder {', '.join(missing) or '(none found)'}"
              if missing or not labs else "vfiolab bench grade: --copies and --slice must be >= 1",
              file=sys.stderr)
        return 2
    print(f"grading {args.copies} copies of each lab's solution on {os.cpu_count()} cores, in "
          f"slices of {args.slice} (ours, then nbgrader's on the same notebooks); cell time limit "
          f"{CELL_TIMEOUT} s on both sides; load average {load_average():.2f} at the start",
          flush=True)
    print(f"{'lab':<16}{'grader':<20}{'total':>9}{'/notebook':>10}{'median':>10}{'CPU/nb':>9}"
          f"{'load':>7}  points", flush=True)
    totals, notes = {}, []
    # multiprocessing's resource tracker outlives every slice (it ends after this process):
    # started here, it stays out of our side's group, which can then be removed at the end
    from multiprocessing import resource_tracker
    resource_tracker.ensure_running()
    args.cpu = {"ours": CpuAccount("ours"), "nbgrader": CpuAccount("nbgrader")}
    try:
        for lab in labs:
            name = os.path.basename(lab)
            ours, theirs, lab_notes = bench_lab(lab, args)
            notes += lab_notes
            for side in (ours, theirs) if theirs else (ours,):
                print(_row(name, side, args.copies), flush=True)
                total = totals.setdefault(side.name, Side(side.name, ""))
                total.full = ""
                total.add(side.seconds, side.per_notebook, side.loads, {})
                total.cpu = None if None in (total.cpu, side.cpu) else total.cpu + side.cpu
            if theirs:
                print(f"{'':<16}{'ratio':<20}{theirs.seconds / ours.seconds:>8.2f}x", flush=True)
    finally:
        _stop_forkserver()  # it sits in our side's group, which cannot go while it runs
        for account in args.cpu.values():
            account.remove()
    for note in notes:
        print(note)
    for total in totals.values():
        print(_row("all labs", total, args.copies * len(labs)).split(";")[0])
    if len(totals) == 2:
        ours, theirs = totals["vfiolab grade"], totals["nbgrader autograde"]
        print(f"vfiolab grade is {theirs.seconds / ours.seconds:.2f}x as fast as nbgrader autograde "
              f"in total ({ours.seconds:.1f} s against {theirs.seconds:.1f} s for {len(labs)} x "
              f"{args.copies} notebooks); load average at the end {load_average():.2f}")
        if ours.cpu and theirs.cpu:
            print(f"CPU time: {ours.cpu:.0f} s against {theirs.cpu:.0f} s: on an idle machine with "
                  f"{os.cpu_count()} cores that ours keeps busy and nbgrader's one process at a "
                  f"time, about {theirs.cpu / ours.cpu * os.cpu_count():.2f}x")
    print("per notebook: total / copies; median: ours, one notebook's time while "
          f"{args.jobs} run at once; nbgrader's, the gap between notebooks written one after "
          "another; CPU/nb: CPU seconds per notebook of that side's whole process tree. load: "
          "mean 1-minute load average while that side ran (each side's own processes included).")
    return 0


def _stop_forkserver():
    from multiprocessing import forkserver
    try:
        forkserver._forkserver._stop()
    except (AttributeError, OSError):
        pass
