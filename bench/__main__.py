"""`python -m bench`: run every benchmark and write docs/performance.md."""

import sys

from bench.run_all import main

sys.exit(main(sys.argv[1:] or None))
