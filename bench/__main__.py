"""`python -m bench`: run every benchmark and write docs/performance.md.

`--only scheduler` runs only the scheduler comparison (bench/scheduler.py, its own section of the page);
`--only processes` only the others (bench/run_all.py). Other arguments go to the one that runs.
"""

import sys

from bench import run_all, scheduler

args = sys.argv[1:]
only = None
if "--only" in args:
    at = args.index("--only")
    only, args = args[at + 1], args[:at] + args[at + 2 :]
if only not in (None, "scheduler", "processes"):
    sys.exit(f"--only takes scheduler or processes, not {only!r}")
code = 0
if only in (None, "processes"):
    code = run_all.main(args)
if only in (None, "scheduler") and code == 0:
    code = scheduler.main(args if only else [])
sys.exit(code)
