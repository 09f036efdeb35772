"""``python -m jobs executor``: run the jobs executor in the foreground (see :mod:`jobs.executor`)."""

import sys

from jobs.executor import main

USAGE = "usage: python -m jobs executor [--poll SECONDS] [--idle-exit SECONDS]"

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] != "executor":
        print(USAGE, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[2:]))
