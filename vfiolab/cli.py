"""The `vfiolab` command. Each subcommand is one module in vfiolab/commands/ that defines
HELP (one line), add_arguments(parser) and run(args) -> exit status; adding a module adds a command.
"""
import argparse
import importlib
import pkgutil
import sys

from . import commands


def build_parser():
    parser = argparse.ArgumentParser(prog="vfiolab", description="Hands-on labs on VFIO for ARM.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        name = getattr(module, "NAME", info.name)
        command = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(command)
        command.set_defaults(run=module.run)
    return parser


def main(argv=None):
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    if extra and not getattr(args, "accepts_extra", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    from .board import BoardUnavailable
    try:
        return args.run(args) or 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BoardUnavailable as e:       # a tool not installed here: say which, not a traceback
        from .lab_errors import UNAVAILABLE
        print(f"vfiolab {args.command}: {e}. {UNAVAILABLE.format(kind=e.kind)}", file=sys.stderr)
        return 1
