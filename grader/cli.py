"""The `softgrade` command line: one subcommand per thing a user does."""

import argparse
import sys

from solutions.data import DataNotFoundError
from solutions.device import DeviceUnavailableError

from . import train

COMMANDS = {"train": train}


# Problems the user can fix (missing data, no GPU, unwritable output): reported as
# a message and exit code 2, never as a traceback.
USER_ERRORS = (DataNotFoundError, DeviceUnavailableError, OSError)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="softgrade",
        description="Auto-graded softmax regression (d2l chapter 3): the reference "
                    "solution, the student notebook and its grader.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module in COMMANDS.items():
        sub = subparsers.add_parser(name, help=module.HELP, description=module.DESCRIPTION,
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(sub)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command].run(args)
    except KeyboardInterrupt:
        print("softgrade: interrupted", file=sys.stderr)
        return 130
    except USER_ERRORS as err:
        print(f"softgrade {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
