"""vfiolab bench NAME: benchmarks, one module each in vfiolab/bench/ (add_arguments, run, HELP)."""
import importlib
import pkgutil

from .. import bench

HELP = "run a benchmark and print it beside its reference (memcpy, QEMU's model, nbgrader)"


def _benchmarks():
    return {m.name: importlib.import_module(f"{bench.__name__}.{m.name}")
            for m in pkgutil.iter_modules(bench.__path__)}


def add_arguments(parser):
    sub = parser.add_subparsers(dest="benchmark", metavar="NAME")
    for name, module in sorted(_benchmarks().items()):
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(bench_run=module.run)


def run(args):
    if not getattr(args, "bench_run", None):
        print("vfiolab bench: name a benchmark: " + ", ".join(sorted(_benchmarks())))
        return 2
    return args.bench_run(args)
