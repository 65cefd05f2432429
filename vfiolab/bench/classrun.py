"""vfiolab bench classrun: a whole class graded end to end, measured: N learners x every lab.

It writes a class folder (SUBMISSIONS/<learner>/<lab>/<notebook>) in which learner i hands in, by
i % 10: 0-4 the solution, 5-7 the released (blank) notebook, 8 the solution with os._exit() in the
cell before the last exercise's, 9 the solution with a cell that replaces a vfiolab function.
Then it runs `vfiolab grade` on it as its own process and samples, every half second, the resident
memory of the grader's whole process tree (runners, kernel factory, kernels) and the load average.
With --interrupt-after N the grader is stopped (SIGINT to its process group, as Ctrl-C; or SIGKILL
with --kill) once N notebooks are recorded, then started again on the same folders: the second
run must skip exactly what the first recorded and leave those records untouched.
Printed: wall time, notebooks per second, peak RSS of the tree and of its largest process, the
most processes at once, the load average, and the points each kind of submission got.
"""
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from ..grading.defaults import default_jobs

HELP = "grade a whole synthetic class (N learners x every lab) end to end: time, memory, resume"
KINDS = ["solution"] * 5 + ["blank"] * 3 + ["late os._exit", "tampered"]
TAMPER = ("import vfiolab.grading.observations as _o\n"
          "_o.observe_all = lambda observers, ns: {}  # the grader must catch this")


def add_arguments(parser):
    parser.add_argument("--learners", "-n", type=int, default=300, help="learners (default 300)")
    parser.add_argument("--lab", nargs="+", default=None, metavar="LAB",
                        help="the instructor's lab folders (default: every lab under labs/)")
    parser.add_argument("--folder", metavar="DIR",
                        help="where the class and its grades go (default: a new temporary folder, "
                             "removed at the end); an existing one is graded again, resuming")
    parser.add_argument("--jobs", "-j", type=int, default=default_jobs(),
                        help="notebooks graded at once (default: two per core)")
    parser.add_argument("--interrupt-after", type=int, metavar="N",
                        help="stop the grader once N notebooks are recorded, then resume it")
    parser.add_argument("--kill", action="store_true",
                        help="with --interrupt-after: SIGKILL (a machine that went down) instead "
                             "of SIGINT (Ctrl-C)")


def make_class(labs, learners, root):
    """SUBMISSIONS under root: {(learner, lab): kind}. The labs' released files are not copied:
    the grader supplies them from the instructor's lab folder."""
    import nbformat

    from ..grading.lab import Lab
    from ..grading.release import release_lab
    from ..grading.verdict import exercise_ends
    kinds = {}
    for path in labs:
        lab = Lab(path)
        solution = nbformat.read(lab.file(lab.notebook), as_version=4)
        blank = nbformat.read(os.path.join(release_lab(lab, os.path.join(root, "release")),
                                           lab.notebook), as_version=4)
        ends = exercise_ends(solution, {c.exercise for c in lab.load(hidden=True)[0]})
        last = max(ends, key=ends.get)
        first = min(i for i, c in enumerate(solution.cells)
                    if str(c.metadata.get("nbgrader", {}).get("grade_id", "")).split("-")[0] == last)
        late = nbformat.from_dict(solution)
        late.cells.insert(first, nbformat.v4.new_code_cell("import os\nos._exit(1)"))
        tampered = nbformat.from_dict(solution)
        tampered.cells.insert(2, nbformat.v4.new_code_cell(TAMPER))
        books = {"solution": solution, "blank": blank, "late os._exit": late, "tampered": tampered}
        for i in range(learners):
            learner, kind = f"learner{i:03d}", KINDS[i % len(KINDS)]
            folder = os.path.join(root, "submissions", learner, lab.name)
            os.makedirs(folder, exist_ok=True)
            nbformat.write(books[kind], os.path.join(folder, lab.notebook))
            kinds[(learner, lab.name)] = kind
    return kinds


def _process_tree(root_pid):
    children = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    parent = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(name))
    tree, todo = [], [root_pid]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += children.get(pid, [])
    return tree


def _memory_kib(pid):
    """(RSS, PSS) of a process in KiB: PSS shares each page among the processes that map it, so
    forked kernels (copy-on-write pages of the factory) are not counted once per process."""
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss  # 0 once it ended


class TreeSampler:
    """Peak RSS of a process tree (the sum, and its largest process), most processes, load."""

    def __init__(self, pid):
        self.pid, self.peak_kib, self.peak_pss_kib, self.largest_kib = pid, 0, 0, 0
        self.most, self.loads = 0, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            memory = [_memory_kib(p) for p in _process_tree(self.pid)]
            sizes = [rss for rss, _ in memory]
            self.peak_kib = max(self.peak_kib, sum(sizes))
            self.peak_pss_kib = max(self.peak_pss_kib, sum(pss for _, pss in memory))
            self.largest_kib = max(self.largest_kib, max(sizes, default=0))
            self.most = max(self.most, len(sizes))
            with open("/proc/loadavg") as f:
                self.loads.append(float(f.read().split()[0]))
            self._stop.wait(0.5)

    def stop(self):
        self._stop.set()
        self._thread.join()


def recorded(out):
    """{(learner, lab): mtime} of every record written so far."""
    found, results = {}, os.path.join(out, "results")
    for learner in os.listdir(results) if os.path.isdir(results) else []:
        for name in os.listdir(os.path.join(results, learner)):
            if name.endswith(".json"):
                found[(learner, name[:-5])] = os.stat(os.path.join(results, learner, name)).st_mtime_ns
    return found


def grade(root, labs, jobs, log, stop_after=None, sig=signal.SIGINT):
    """One `vfiolab grade` run, sampled: (seconds, sampler, exit code, records at the stop)."""
    out = os.path.join(root, "grades")
    command = [sys.executable, "-m", "vfiolab", "grade", os.path.join(root, "submissions"),
               "--out", out, "--labs", *labs, "--jobs", str(jobs)]
    start = time.perf_counter()
    with open(log, "a") as stderr:
        grader = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr,
                                  start_new_session=True)
    sampler, at_stop = TreeSampler(grader.pid), None
    shown = _show_progress(log, 0, echo=False)  # the lines of an earlier run are not shown again
    while grader.poll() is None:
        time.sleep(0.5)
        shown = _show_progress(log, shown)
        if stop_after is not None and at_stop is None and len(recorded(out)) >= stop_after:
            at_stop = recorded(out)
            os.killpg(grader.pid, sig)
    sampler.stop()
    _show_progress(log, shown, last=True)
    return time.perf_counter() - start, sampler, grader.returncode, at_stop


def _show_progress(log, shown, every=50, last=False, echo=True):
    """Echo the grader's progress line every `every` notebooks (its own count, time and ETA),
    and every other line it wrote (skipped, interrupted, warnings)."""
    with open(log, errors="replace") as f:
        lines = [line.rstrip() for line in f if line.strip()]
    for line in lines[shown:] if echo else []:
        progress = line.startswith("[") and "/" in line
        if not progress or int(line[1:line.index("/")]) % every == 0 or (last and line is lines[-1]):
            print("  " + line, flush=True)
    return len(lines)


def _mib(kib):
    return f"{kib / 1024:.0f} MiB"


def run(args):
    from ..grading.release import checkout_labs
    labs = [os.path.abspath(lab) for lab in (args.lab or checkout_labs())]
    if not labs or args.learners < 1:
        print("vfiolab bench classrun: no lab folder (pass --lab LAB ...) or --learners < 1",
              file=sys.stderr)
        return 2
    root = os.path.abspath(args.folder) if args.folder else tempfile.mkdtemp(prefix="vfiolab-class-")
    log = os.path.join(root, "grade.log")
    total = args.learners * len(labs)
    if not os.path.isdir(os.path.join(root, "submissions")):
        os.makedirs(root, exist_ok=True)
        start = time.perf_counter()
        make_class(labs, args.learners, root)
        print(f"class written: {args.learners} learners x {len(labs)} labs = {total} notebooks in "
              f"{root}/submissions ({time.perf_counter() - start:.0f} s)", flush=True)
    kinds = {(f"learner{i:03d}", os.path.basename(lab)): KINDS[i % len(KINDS)]
             for i in range(args.learners) for lab in labs}
    before = recorded(os.path.join(root, "grades"))
    print(f"vfiolab grade, {args.jobs} at a time, on {os.cpu_count()} cores; {len(before)} "
          f"notebooks recorded before; the grader's log: {log}", flush=True)
    runs = []
    sig = signal.SIGKILL if args.kill else signal.SIGINT
    # Started in the background by a shell (nohup ... &), we and so the grader would ignore
    # SIGINT, and the Ctrl-C below would do nothing: a handler of ours is reset by exec, an
    # ignored signal is not (seen: the first measured class run went on past its stop).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    seconds, sampler, code, at_stop = grade(root, labs, args.jobs, log, args.interrupt_after, sig)
    runs.append((seconds, sampler, code))
    if at_stop is not None:
        stopped = recorded(os.path.join(root, "grades"))
        print(f"stopped with {signal.Signals(sig).name} once {len(at_stop)} were recorded; the "
              f"grader exited {code} with {len(stopped)} recorded; resuming", flush=True)
        seconds, sampler, code, _ = grade(root, labs, args.jobs, log)
        runs.append((seconds, sampler, code))
        after = recorded(os.path.join(root, "grades"))
        rewritten = [k for k, mtime in stopped.items() if after.get(k) != mtime]
        print(f"resumed: {len(stopped)} records from before the stop untouched"
              if not rewritten else f"RESUME REGRADED {len(rewritten)} recorded notebooks: "
              f"{rewritten[:5]}", flush=True)
    wall = sum(s for s, _, _ in runs)
    graded_now = len(recorded(os.path.join(root, "grades"))) - len(before)
    print(f"wall time {wall:.0f} s over {len(runs)} run(s) (exit codes "
          f"{', '.join(str(c) for _, _, c in runs)}): {graded_now} notebooks graded, "
          f"{graded_now / wall:.2f} notebooks/s ({wall / max(graded_now, 1):.2f} s each)")
    print(f"peak memory of the grader's process tree: PSS {_mib(max(s.peak_pss_kib for _, s, _ in runs))}"
          f", RSS summed {_mib(max(s.peak_kib for _, s, _ in runs))} (counts shared pages once per process) "
          f"(largest process {_mib(max(s.largest_kib for _, s, _ in runs))}, at most "
          f"{max(s.most for _, s, _ in runs)} processes); load average mean "
          f"{statistics.mean(l for _, s, _ in runs for l in s.loads):.1f}, max "
          f"{max(l for _, s, _ in runs for l in s.loads):.1f}")
    _tally(root, kinds)
    if not args.folder:
        import shutil
        shutil.rmtree(root, ignore_errors=True)
    return 0


def _tally(root, kinds):
    """Points per kind of submission, from the records: each kind must get what it deserves."""
    by_kind = {}
    for (learner, lab), kind in kinds.items():
        try:
            with open(os.path.join(root, "grades", "results", learner, f"{lab}.json")) as f:
                rec = json.load(f)
        except (OSError, ValueError):
            by_kind.setdefault((kind, lab), []).append(None)
            continue
        by_kind.setdefault((kind, lab), []).append((rec["points"], rec["max_points"], rec["status"]))
    for (kind, lab), recs in sorted(by_kind.items(), key=lambda kv: (kv[0][1], KINDS.index(kv[0][0]))):
        done = [r for r in recs if r]
        seen = sorted({f"{p:g}/{m:g} {s}" for p, m, s in done})
        print(f"  {lab:<18} {kind:<14} {len(done):>4} graded: {', '.join(seen) or '-'}"
              + (f"; {len(recs) - len(done)} not recorded" if len(done) < len(recs) else ""))
