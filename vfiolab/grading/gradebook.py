"""What the grader writes, one file per learner and lab as each completes, then the whole gradebook.

    GRADES/results/<learner>/<lab>.json    the graded record (the source of everything below)
    GRADES/feedback/<learner>/<lab>.md     for the learner: points, pass/fail, hints; no check code
    GRADES/gradebook.csv, gradebook.json   one row per learner, lab and check
    GRADES/executed/<learner>/<lab>.ipynb  the notebook as it ran, for the instructor
Every file is written to a temporary name and renamed, so an interrupted run leaves no torn file.
"""
import csv
import io
import json
import os

COLUMNS = ["learner", "lab", "check", "points", "max_points", "hidden", "passed", "message"]


def _atomic_write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def result_path(out, learner, lab):
    return os.path.join(out, "results", learner, f"{lab}.json")


def feedback_path(out, learner, lab):
    return os.path.join(out, "feedback", learner, f"{lab}.md")


def read_record(out, learner, lab):
    try:
        with open(result_path(out, learner, lab)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def record(learner, lab, notebook, digest, status, notes, results):
    """The graded record of one learner's lab."""
    return {"learner": learner, "lab": lab, "notebook": notebook, "sha256": digest,
            "status": status, "notes": notes,
            "points": sum(r.earned for r in results), "max_points": sum(r.points for r in results),
            "checks": [{"check": r.id, "exercise": r.exercise, "points": r.earned,
                        "max_points": r.points, "hidden": r.hidden, "passed": r.passed,
                        "message": r.message} for r in results]}


def feedback_text(rec):
    """The learner's feedback: totals, notes, then each check with its hint (never its code).
    A hint that several checks share (not graded: the kernel died in cell 12) is said once."""
    lines = [f"# {rec['lab']}: {rec['points']:g} / {rec['max_points']:g} points",
             "", f"Learner: {rec['learner']}  ", f"Notebook: {rec['notebook'] or '(none)'}", ""]
    failed = [c for c in rec["checks"] if not c["passed"]]
    shared = {}
    for c in failed:
        shared.setdefault(c["message"], []).append(c["check"])
    shared = {m: ids for m, ids in shared.items() if len(ids) > 1}
    notes = list(rec["notes"]) + [f"{len(ids)} checks ({', '.join(ids)}): {m}"
                                  for m, ids in shared.items()]
    if notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    lines += ["## Checks", "", "| check | result | points | hint |", "|---|---|---|---|"]
    for c in rec["checks"]:
        hint = "" if c["passed"] else ("see the notes" if c["message"] in shared else
                                       c["message"].replace("|", "\\|").replace("\n", " "))
        lines.append(f"| {c['check']}{' (hidden)' if c['hidden'] else ''} | "
                     f"{'pass' if c['passed'] else 'fail'} | {c['points']:g}/{c['max_points']:g} | {hint} |")
    return "\n".join(lines) + "\n"


def write_record(out, rec):
    _atomic_write(result_path(out, rec["learner"], rec["lab"]), json.dumps(rec, indent=1))
    _atomic_write(feedback_path(out, rec["learner"], rec["lab"]), feedback_text(rec))


def all_records(out):
    root = os.path.join(out, "results")
    records = []
    if os.path.isdir(root):
        for learner in sorted(os.listdir(root)):
            folder = os.path.join(root, learner)
            for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
                if name.endswith(".json"):
                    rec = read_record(out, learner, name[:-5])
                    if rec:
                        records.append(rec)
    return records


def write_gradebook(out):
    """Rebuild gradebook.csv and gradebook.json from every record written so far."""
    records = all_records(out)
    rows = [{"learner": r["learner"], "lab": r["lab"], **{k: c[k] for k in COLUMNS[2:]}}
            for r in records for c in r["checks"]]
    text = io.StringIO()
    writer = csv.DictWriter(text, COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    _atomic_write(os.path.join(out, "gradebook.csv"), text.getvalue())
    summary = [{k: r.get(k) for k in ("learner", "lab", "notebook", "status", "points",
                                      "max_points", "notes", "detail", "tampering",
                                      "stopped_cell")} for r in records]
    _atomic_write(os.path.join(out, "gradebook.json"),
                  json.dumps({"rows": rows, "labs": summary}, indent=1))
    return records
