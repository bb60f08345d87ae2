"""`python -m bench`: run every benchmark and write docs/performance.md.

`--only scheduler` runs only the scheduler comparison (bench/scheduler.py, its own section of the page);
`--only parse` only the DAG-parse scale comparison (bench/parse_scale.py, its own section; a real manifest with
`--real-manifest PATH` or IDBT_BENCH_REAL_MANIFEST); `--only processes` only the others (bench/run_all.py).
Other arguments go to the one that runs.
"""

import sys

from bench import parse_scale, run_all, scheduler

args = sys.argv[1:]
only = None
if "--only" in args:
    at = args.index("--only")
    only, args = args[at + 1], args[:at] + args[at + 2 :]
if only not in (None, "scheduler", "processes", "parse"):
    sys.exit(f"--only takes scheduler, processes or parse, not {only!r}")
code = 0
if only in (None, "processes"):
    code = run_all.main(args)
if only in (None, "parse") and code == 0:
    code = parse_scale.main(args if only else [])
if only in (None, "scheduler") and code == 0:
    code = scheduler.main(args if only else [])
sys.exit(code)
