"""Build and validate one large flow and nothing else, to count its instructions.

Wall-clock figures of the build swing with the load of a shared machine; the instructions it
executes do not. Run it under callgrind once with the shape and once with ``none`` (the same
imports, no build) and subtract::

    valgrind --tool=callgrind --callgrind-out-file=/dev/null python benchmarks/build_instructions.py chain 100000
    valgrind --tool=callgrind --callgrind-out-file=/dev/null python benchmarks/build_instructions.py none 0

``--no-gc`` turns the garbage collector off first (what the collector costs is the difference).
"""

from __future__ import annotations

import argparse
import gc

from engine_overhead import nbflow_flow

import nbflow  # noqa: F401  (imported in both runs: the subtraction leaves only the build)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("shape", choices=["chain", "fan", "none"])
    parser.add_argument("tasks", type=int)
    parser.add_argument("--no-gc", action="store_true")
    args = parser.parse_args()
    if args.no_gc:
        gc.disable()
    if args.shape != "none":
        nbflow_flow(args.shape, args.tasks).validate()
    print(f"built and validated: {args.shape}, {args.tasks:,} tasks (count the instructions with callgrind)")


if __name__ == "__main__":
    main()
