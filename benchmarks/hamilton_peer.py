"""Hamilton (sf-hamilton) as a peer of nbflow's local engine: the same no-op chains and fans.

Hamilton builds its DAG from function signatures, so each task is a generated function
whose parameters name its upstream functions; ``Driver.execute`` runs the whole graph in
this process, one node after another, as nbflow's ``local`` executor does. Runs in the
venv ``benchmarks/.venv-hamilton`` (installed on first use by ``ensure_hamilton``), in a
process of its own, and prints one JSON line: seconds per ``shape:n`` case (median of
``--repeat``), building the driver outside the timing, then building it alone.

    benchmarks/.venv-hamilton/bin/python benchmarks/hamilton_peer.py chain:1000 fan:1000 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
HAMILTON_VENV = HERE / ".venv-hamilton"
HAMILTON_REQUIREMENT = "sf-hamilton==1.90.0"


def ensure_hamilton() -> Path:
    """The Hamilton venv's Python, made on first use."""
    python = HAMILTON_VENV / "bin" / "python"
    if not python.exists():
        print(f"installing Hamilton into {HAMILTON_VENV} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(HAMILTON_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", HAMILTON_REQUIREMENT], check=True)
    return python


def time_hamilton(specs: list[str], repeat: int) -> dict[str, dict[str, float]]:
    """Seconds per case (``run``) and to build its driver (``build``), from the Hamilton venv."""
    python = ensure_hamilton()
    done = subprocess.run(
        [str(python), __file__, *specs, "--repeat", str(repeat)], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def _module(shape: str, n: int) -> Any:
    """A module of ``n`` no-op functions wired as a chain or a fan (by parameter names)."""
    from hamilton import ad_hoc_utils

    source = ["def t0() -> int:\n    return 0\n"]  # Hamilton needs type hints
    for i in range(1, n):
        upstream = f"t{i - 1}" if shape == "chain" else "t0"
        source.append(f"def t{i}({upstream}: int) -> int:\n    return 0\n")
    namespace: dict[str, Any] = {}
    exec("\n".join(source), namespace)  # noqa: S102 - generated no-op functions, nothing else
    return ad_hoc_utils.create_temporary_module(*(namespace[f"t{i}"] for i in range(n)))


def _case(shape: str, n: int, repeat: int) -> dict[str, float]:
    from hamilton import driver

    module = _module(shape, n)
    start = time.perf_counter()
    dr = driver.Builder().with_modules(module).build()
    build = time.perf_counter() - start
    # The chain's last task needs every other; a fan's leaves are all wanted.
    wanted = [f"t{n - 1}"] if shape == "chain" else [f"t{i}" for i in range(1, n)] or ["t0"]
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        dr.execute(wanted)
        runs.append(time.perf_counter() - start)
    return {"run": statistics.median(runs), "build": build}


def main() -> None:
    """Time each ``shape:n`` case given on the command line; print one JSON line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("cases", nargs="+", metavar="SHAPE:N")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 50_000))  # Hamilton walks a chain recursively
    out = {}
    for case in args.cases:
        shape, n = case.split(":")
        out[case] = _case(shape, int(n), args.repeat)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
