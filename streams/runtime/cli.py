"""The `salewatch` command: worker, simulate, emit, backtest, top, review."""

from __future__ import annotations

import argparse
import importlib
import sys

# Each subcommand lives with its domain; its module offers add_arguments(parser) and run(args).
SUBCOMMANDS = {
    "simulate": ("simulator.cli", "generate Double 11 traffic with ground truth"),
    "emit": ("sdk.cli", "send events from a JSON-lines file or stdin"),
    "backtest": ("alerts.backtest", "replay windows through the alert detectors, score them"),
    "review": ("warroom.review.cli", "the post-sale review: HTML report and charts"),
    "top": ("warroom.top", "the live war room of a worker, in the terminal"),
}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["worker"]:
        # Faust owns the worker's command line (-l info, --web-port, ...).
        from streams.__main__ import main as worker_main

        sys.argv = ["salewatch", *argv]
        worker_main()
        return
    parser = argparse.ArgumentParser(prog="salewatch", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("worker", help="run a worker (python -m streams worker)")
    chosen = argv[0] if argv and argv[0] in SUBCOMMANDS else None
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub = commands.add_parser(name, help=help_text)
        if name == chosen:  # import only the command that runs: one broken module stays local
            importlib.import_module(module_name).add_arguments(sub)
    args = parser.parse_args(argv)
    module = importlib.import_module(SUBCOMMANDS[args.command][0])
    sys.exit(module.run(args))


if __name__ == "__main__":
    main()
