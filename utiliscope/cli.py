"""The ``utiliscope`` command line."""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``utiliscope`` command."""
    parser = argparse.ArgumentParser(prog="utiliscope", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    quick = commands.add_parser("quickstart", help="fit a synthetic agent and print diagnostics")
    quick.add_argument("--seed", type=int, default=0)
    quick.add_argument("--draws", type=int, default=500)
    quick.add_argument("--tune", type=int, default=500)
    quick.add_argument("--chains", type=int, default=2)
    quick.add_argument("--sampler", choices=("pymc", "nutpie"), default="pymc")
    quick.add_argument("--no-progress", action="store_true", help="hide the sampler's progress bar")
    args = parser.parse_args(argv)
    if args.command == "quickstart":
        from utiliscope.quickstart import run

        run(args.seed, args.draws, args.tune, args.chains, args.sampler, progressbar=not args.no_progress)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
