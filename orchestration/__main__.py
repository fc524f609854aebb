"""`python -m orchestration`: the micro-batch runner (orchestration.runner), as `pulsetrace up`
starts it; `python -m orchestration refresh-marts`: one build of the dbt marts, as the runner
starts it.

Why not `-m orchestration.runner`: the pipeline's worker processes (orchestration.parallel)
are spawned, and a spawned child re-imports its parent's main module unless that is a
package's `__main__`. The runner's module loads every Dagster definition, the dbt project's
too, which a worker does not need: tens of seconds and ~150 MB each on this machine.
"""

import sys

from orchestration.runner import main, refresh_marts_once

if __name__ == "__main__":
    if sys.argv[1:] == ["refresh-marts"]:
        sys.exit(refresh_marts_once())
    main()
