"""In-kernel overhead of ``%%task`` on a trivial cell, over the same cell run plainly.

A real IPython shell runs ``x = 1`` as a plain cell and as ``%%task`` cell many
times (median per cell); the difference is what turning a cell into a task
costs: parsing options, analysis, the task run with its states and events,
and writing outputs back. Also measured: a plain cell with nbflow loaded (the
extension's post-run hook reads every cell to explain hidden dependencies).

    python benchmarks/magic_overhead.py [--repeat 2000]
"""

from __future__ import annotations

import argparse
import statistics
import time

from IPython.core.interactiveshell import InteractiveShell


def median_cell_time(shell: InteractiveShell, source: str, repeat: int) -> float:
    for _ in range(50):  # warm caches (analysis is memoised per source, like in a real session)
        shell.run_cell(source, cell_id="bench")
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        shell.run_cell(source, cell_id="bench")
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=2000)
    args = parser.parse_args()

    shell = InteractiveShell.instance()
    plain_without = median_cell_time(shell, "x = 1", args.repeat)
    shell.run_cell("%load_ext nbflow")
    plain_with = median_cell_time(shell, "x = 1", args.repeat)
    task = median_cell_time(shell, "%%task t\nx = 1", args.repeat)
    widget_shown = None
    if shell.run_cell("%flow show", silent=True).success:
        widget_shown = median_cell_time(shell, "%%task t\nx = 1", args.repeat)

    print(f"plain cell, nbflow not loaded : {plain_without * 1e3:7.3f} ms")
    print(
        f"plain cell, nbflow loaded     : {plain_with * 1e3:7.3f} ms  (+{(plain_with - plain_without) * 1e3:.3f} ms)"
    )
    print(
        f"%%task cell                   : {task * 1e3:7.3f} ms  (+{(task - plain_with) * 1e3:.3f} ms over plain)"
    )
    if widget_shown is not None:
        print(
            f"%%task cell, widget shown     : {widget_shown * 1e3:7.3f} ms  (+{(widget_shown - plain_with) * 1e3:.3f} ms over plain)"
        )


if __name__ == "__main__":
    main()
