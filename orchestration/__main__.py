"""`python -m orchestration`: the micro-batch runner (orchestration.runner), as `pulsetrace up`
starts it; `python -m orchestration marts-builder`: the child that runs the runner's builds of
the dbt marts.

Why not `-m orchestration.runner`: the pipeline's worker processes (orchestration.parallel)
are spawned, and a spawned child re-imports its parent's main module unless that is a
package's `__main__`. The runner's module loads every Dagster definition, the dbt project's
too, which a worker does not need: tens of seconds and ~150 MB each on this machine.
"""

import sys

from orchestration.runner import main, serve_marts_builds

if __name__ == "__main__":
    if sys.argv[1:] == ["marts-builder"]:
        sys.exit(serve_marts_builds())
    main()
