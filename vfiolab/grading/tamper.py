"""Is the code loaded in a learner's kernel the code that is installed?

The grader fingerprints vfiolab's installed source (a hash of every code object, by qualified
name). After the learner's cells it sends this module's own source into the kernel, so the
verification does not run code the notebook could have replaced, and `find_tampering` compares:
  - every function reachable from a loaded vfiolab module or class must be vfiolab's own code,
    unchanged, or library code from the installed Python (stdlib, site-packages);
  - every other loaded library module must not hold functions defined in the notebook;
  - no trace/profile function or foreign import hook may be installed.
Standard library only: this file runs inside the learner's kernel.
Limits: it sees Python-level patching (assignment, __code__ swaps, wrappers, import hooks), not
memory pokes through ctypes; the board state itself lives in that kernel.
"""
import hashlib
import os
import sys
import types

# Methods that dataclasses/namedtuple generate with exec(): their code claims the file "<string>".
_GENERATED = {"__init__", "__repr__", "__eq__", "__hash__", "__setattr__", "__delattr__", "__lt__",
              "__le__", "__gt__", "__ge__", "__new__", "__getstate__", "__setstate__", "__match_args__",
              "__replace__", "__create_fn__", "_make", "_replace", "_asdict", "__getnewargs__"}


_hashed = {}  # id(code) -> (code, hash): code objects are immutable, and kept alive here


def code_hash(code):
    """A stable hash of a code object: bytecode, names and constants (nested code by name)."""
    known = _hashed.get(id(code))
    if known is not None and known[0] is code:
        return known[1]
    h = hashlib.sha256(code.co_code)
    h.update(repr((code.co_names, code.co_varnames, code.co_freevars, code.co_cellvars)).encode())
    for const in code.co_consts:
        h.update(_const_text(const).encode())
    _hashed[id(code)] = (code, h.hexdigest()[:20])
    return _hashed[id(code)][1]


def _const_text(const):
    """A constant as text, the same in every process (a frozenset's order depends on hashing)."""
    if isinstance(const, types.CodeType):
        return "code:" + code_qualname(const)
    if isinstance(const, frozenset):
        return "frozenset(" + ",".join(sorted(_const_text(c) for c in const)) + ")"
    if isinstance(const, tuple):
        return "(" + ",".join(_const_text(c) for c in const) + ")"
    return repr(const)


def code_qualname(code):
    return getattr(code, "co_qualname", code.co_name)


def fingerprint_file(path):
    """{qualname: hash} for every code object compiled from a source file."""
    with open(path, "rb") as f:
        top = compile(f.read(), path, "exec", dont_inherit=True)
    found, todo = {}, [top]
    while todo:
        code = todo.pop()
        found.setdefault(code_qualname(code), []).append(code_hash(code))
        todo.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
    return found


def fingerprint_package(package_dir):
    """{real path of each .py file under package_dir: fingerprint_file(path)}."""
    prints = {}
    for folder, dirs, files in os.walk(package_dir):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            if name.endswith(".py"):
                path = os.path.realpath(os.path.join(folder, name))
                try:
                    prints[path] = fingerprint_file(path)
                except (SyntaxError, OSError, ValueError):
                    prints[path] = {}
    return prints


def _functions_of(value):
    """The plain functions a module attribute or class attribute carries."""
    if isinstance(value, (staticmethod, classmethod)):
        value = value.__func__
    if isinstance(value, property):
        return [f for f in (value.fget, value.fset, value.fdel) if f is not None]
    if isinstance(value, types.MethodType):
        value = value.__func__
    out = []
    while isinstance(value, types.FunctionType) and value not in out:
        out.append(value)
        value = getattr(value, "__wrapped__", None)
    return out


def find_tampering(prints, package, library_roots):
    """Why the running interpreter's code differs from what is installed, or [] if it does not.

    prints: fingerprint_package() of the installed package; package: its name ("vfiolab");
    library_roots: folders of trusted library code (stdlib, site-packages).
    """
    roots = tuple(os.path.join(os.path.realpath(r), "") for r in library_roots)
    problems = []
    real_paths = {}

    def realpath(path):  # one lstat walk per file, not per function (was 70% of the check's time)
        real = real_paths.get(path)
        if real is None:
            real = real_paths[path] = os.path.realpath(path)
        return real

    def judge_function(f, where):
        code = f.__code__
        fname = code.co_filename
        real = realpath(fname) if not fname.startswith("<") else fname
        if real in prints:
            if code_hash(code) not in prints[real].get(code_qualname(code), ()):
                problems.append(f"{where} is not the installed code of {code_qualname(code)} "
                                f"({os.path.basename(fname)})")
        elif fname.startswith("<frozen ") or real.startswith(roots):
            pass
        elif fname == "<string>" and f.__name__ in _GENERATED:
            pass
        else:
            problems.append(f"{where} was replaced by code from {fname}")

    def judge_namespace(ns, where, own):
        for name, value in list(ns.items()):
            for f in _functions_of(value):
                judge_function(f, f"{where}.{name}")
            if own and isinstance(value, type) and value.__module__ == where:
                judge_namespace(dict(vars(value)), f"{where}.{name}", False)

    for name, module in list(sys.modules.items()):
        if not isinstance(module, types.ModuleType) or name == "__main__":
            continue
        ns = vars(module)
        ours = name == package or name.startswith(package + ".")
        if ours:
            spec = getattr(module, "__spec__", None)
            origin = realpath(spec.origin) if spec and spec.origin else ""
            if origin.endswith(".py") and origin not in prints:
                problems.append(f"module {name} is not installed code ({origin or 'no file'})")
                continue
            judge_namespace(ns, name, True)
            # a def or class of the source that is gone or no longer a function is replaced too
            for qualname in prints.get(origin, {}):
                if "." in qualname or qualname.startswith("<"):
                    continue
                value = ns.get(qualname)
                if value is not None and not isinstance(value, (type, types.FunctionType)) \
                        and not callable(value):
                    problems.append(f"{name}.{qualname} was replaced by a {type(value).__name__}")
        else:
            file = getattr(module, "__file__", None) or ""
            if realpath(file).startswith(roots):
                judge_namespace(ns, name, False)

    if sys.gettrace() is not None or sys.getprofile() is not None:
        problems.append("a trace or profile function is installed (sys.settrace/sys.setprofile)")
    for hook in list(sys.meta_path) + list(sys.path_hooks):
        if isinstance(hook, types.FunctionType):
            judge_function(hook, "an import hook")
            continue
        cls = hook if isinstance(hook, type) else type(hook)
        for attr in ("find_spec", "find_module", "__call__"):
            for f in _functions_of(vars(cls).get(attr)):
                judge_function(f, f"import hook {cls.__name__}.{attr}")
    return problems
