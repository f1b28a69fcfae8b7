"""The ``combinators`` command: one sub-command per module that owns it.

Each sub-command lives beside the code it drives and exposes
``add_arguments(parser)`` and ``run(args) -> int``; this module only routes.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from combinators.errors import CombinatorsError

#: sub-command name -> (module, one-line help)
COMMANDS = {
    "demo": ("combinators.demo", "train a classifier out of core on the digits data"),
    "bench": ("combinators.bench", "same-run benchmarks against hand-written references"),
    "archive": ("combinators.memo.cli", "list, summarize or prune an LMDB memo archive"),
    "worker": ("combinators.execution.remote.worker", "serve stream activations to a ZMQ executor"),
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``combinators`` command."""
    parser = argparse.ArgumentParser(prog="combinators", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        sub_parser.set_defaults(_module=module_name)
        try:
            module = importlib.import_module(module_name)
        except ImportError:  # a sub-command whose module is not built yet
            continue
        module.add_arguments(sub_parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``combinators`` command; returns the process exit status (errors are raised)."""
    args = build_parser().parse_args(argv)
    module = importlib.import_module(args._module)
    return int(module.run(args) or 0)


def console(argv: list[str] | None = None) -> int:
    """`main` as a command: a `CombinatorsError` (a bad option, a checkpoint of another run) is printed as
    ``combinators: error: ...`` on stderr, exit status 2, as argparse does for its own errors; no traceback."""
    try:
        return main(argv)
    except CombinatorsError as error:
        print(f"combinators: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(console())
