"""The collector: the grader's last cell in a learner's kernel, and what it sends back.

After the learner's cells the grader executes one cell of its own. It carries, as literals, the
tamper check (tamper.py's source), the fingerprints of installed vfiolab, a one-time nonce and the
lab's public checks.py; so none of it comes from a file or a module the notebook could have changed.
The cell verifies the loaded code, runs the lab's observers on the notebook's namespace, verifies
again (observers call learner code, and the collector's own module was imported in between), and displays one JSON output tagged with the nonce. The grader
reads only that output of that cell, and judges it in its own process.
"""
import json
import os
import sysconfig

from . import tamper

MIME = "application/vnd.vfiolab.snapshot+json"


def library_roots():
    """Where trusted library code lives: this interpreter's stdlib and site-packages."""
    paths = sysconfig.get_paths()
    return sorted({os.path.realpath(paths[k]) for k in ("stdlib", "platstdlib", "purelib", "platlib")})


def package_fingerprints():
    import vfiolab
    return tamper.fingerprint_package(os.path.dirname(os.path.realpath(vfiolab.__file__)))


_CELL = """# vfiolab grader: observe what the cells above did
def _vfiolab_grader_cell():
    import json
    from IPython import get_ipython
    from IPython.display import display
    t = {"__name__": "vfiolab_grader_tamper"}
    exec(compile(@TAMPER@, "<vfiolab grader>", "exec"), t)
    prints, roots = json.loads(@PRINTS@), @ROOTS@
    problems = t["find_tampering"](prints, "vfiolab", roots)
    data = {}
    if not problems:
        from vfiolab.grading.collector import observe_notebook  # verified again below
        data = observe_notebook(@CHECKS@, get_ipython().user_ns)
        problems = t["find_tampering"](prints, "vfiolab", roots)
    cells = getattr(get_ipython().compile, "_filename_map", {})  # a cell's file -> its In[n]
    for name, number in cells.items():
        problems = [p.replace(name, "cell In[%s]" % number) for p in problems]
    display({@MIME@: {"nonce": @NONCE@, "tampering": problems,
                      "observations": {} if problems else data}}, raw=True)
_vfiolab_grader_cell()
del _vfiolab_grader_cell
"""


def collector_source(checks_source, nonce, prints, roots):
    """The source of the grader's cell (see the module docstring): everything as literals (the
    fingerprints as one JSON string: IPython's input transformers took 0.12 s over the same dict
    written as a Python literal, 0.01 s over the string)."""
    values = {"@TAMPER@": open(tamper.__file__).read(), "@PRINTS@": json.dumps(prints), "@ROOTS@": list(roots),
              "@CHECKS@": checks_source, "@MIME@": MIME, "@NONCE@": nonce}
    source = _CELL
    for token, value in values.items():
        source = source.replace(token, repr(value))
    return source


def observe_notebook(checks_source, user_ns):
    """Kernel side, after verification: run the lab's observers on the notebook's namespace."""
    import types

    from .checks import observers_in
    from .observations import observe_all
    module = types.ModuleType("vfiolab_lab_checks")
    exec(compile(checks_source, "checks.py", "exec"), vars(module))
    return observe_all(observers_in(vars(module)), user_ns)


def find_snapshot(cell, nonce):
    """The collector's output in its executed cell: (observations, tampering) or None."""
    for output in cell.get("outputs", []):
        payload = output.get("data", {}).get(MIME)
        if isinstance(payload, dict) and payload.get("nonce") == nonce:
            return payload.get("observations", {}), payload.get("tampering", [])
    return None
