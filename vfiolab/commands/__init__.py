"""Subcommands of the `vfiolab` tool, one module each (see vfiolab/cli.py)."""
