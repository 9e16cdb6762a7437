"""The `softgrade` command line: one subcommand per thing a user does.

Each command lives in its own module; only the chosen one is imported, so that
`softgrade --help` or `softgrade release` do not pay for importing torch.
"""

import argparse
import importlib
import os
import sys

# name -> (module, one-line help), in the order users meet them.
COMMANDS = {
    "doctor": ("grader.doctor", "check that this machine can grade (run it first)"),
    "release": ("grader.release", "make the student notebook from the instructor's source notebook"),
    "check": ("grader.check", "check a notebook against its public tests (students)"),
    "grade": ("grader.grade", "grade one submission: hidden tests, budgets, reports"),
    "grade-batch": ("grader.batch", "grade a folder of submissions in parallel into a CSV"),
    "gradescope-zip": ("grader.gradescope_zip", "build the Gradescope autograder zip"),
    "report": ("grader.report", "a class report (HTML and pictures) from grade-batch's CSV"),
    "train": ("grader.train", "train the reference softmax regression on Fashion-MNIST"),
}


def chosen_command(argv):
    """The subcommand named in argv, if any (the first word that is not an option)."""
    return next((word for word in argv if not word.startswith("-")), None)


def build_parser(argv):
    parser = argparse.ArgumentParser(
        prog="softgrade",
        description="Auto-graded softmax regression (d2l chapter 3): the reference "
                    "solution, the student notebook and its grader.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = chosen_command(argv)
    for name, (module_name, help_line) in COMMANDS.items():
        if name == chosen:
            module = importlib.import_module(module_name)
            sub = subparsers.add_parser(name, help=help_line, description=module.DESCRIPTION,
                                        formatter_class=argparse.RawDescriptionHelpFormatter)
            module.add_arguments(sub)
        else:
            subparsers.add_parser(name, help=help_line)
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    module = importlib.import_module(COMMANDS[args.command][0])
    try:
        return module.run(args)
    except KeyboardInterrupt:
        print("softgrade: interrupted", file=sys.stderr)
        return 130
    except module.USER_ERRORS as err:
        # Problems the user can fix (a missing file, no data, no GPU): one line
        # and exit code 2, never a traceback.
        print(f"softgrade {args.command}: error: {err}", file=sys.stderr)
        return 2


def entry_point():
    """The `softgrade` command: main(), then an exit that skips the interpreter's
    teardown, which takes about a second once torch and its compiler stack are loaded.
    Every file the command wrote is closed by then."""
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    entry_point()
