"""`python -m orchestration`: the micro-batch runner (orchestration.runner), as `pulsetrace up`
starts it.

Why not `-m orchestration.runner`: the pipeline's worker processes (orchestration.parallel)
are spawned, and a spawned child re-imports its parent's main module unless that is a
package's `__main__`. The runner's module loads every Dagster definition, the dbt project's
too, which a worker does not need: tens of seconds and ~150 MB each on this machine.
"""

from orchestration.runner import main

if __name__ == "__main__":
    main()
