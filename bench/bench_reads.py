"""Read commands as whole processes, on demo stores of two sizes, with their ratios in one run.

For a small and a large store (``ledger demo --subjects N --out DIR``, made once and reused), times
the best of ``--runs`` runs of each command as a separate process (what a user waits for):

* ``ledger cohorts`` and ``ledger history SUBJECT`` on both stores, and the large/small ratio
  (issue 8 goal 1: at most 1.5);
* on the large store ``ledger export`` in full and ``--as-of`` the record at 10 % of the log, and
  the ratio (goal 2: at most 0.2), with ``cohorts --as-of`` the same moment;
* ``ledger export --as-of`` the trial's first record: what any export costs before it reads a
  record (starting Python, imports, opening the store, define.xml), and the as-of/full ratio of
  what each costs beyond that (how the work grows with the prefix, without the fixed cost);
* the store's raw scan + decode (``json.loads`` of every stored row, in a process of its own) and
  the scan/export ratio (goal 3: at least 0.5), and the full export's peak memory (under 250 MB).

Run: ``python bench/bench_reads.py --small DIR100 --large DIR1000 [--runs 3]``; a DIR that holds
no ``ledger.db`` is made with ``ledger demo --subjects 100`` / ``1000 --seed 3`` first.

Before/after in one run: ``--baseline CMD`` also times another build's ``ledger`` (CMD is its
command line, e.g. for a worktree of an older commit made with ``git worktree add /tmp/base
COMMIT``: ``--baseline "env PYTHONPATH=/tmp/base python3 -P -m ledger.cli"``), each command
alternating between the two builds, and prints every figure and ratio for both.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCAN = (
    "import sqlite3,json,sys\nc=sqlite3.connect(sys.argv[1])\nn=0\n"
    "for (s,) in c.execute('select state from stored_events'):\n    json.loads(s); n+=1\nprint(n)"
)


def ensure_store(folder: Path, subjects: int) -> Path:
    store = folder / "ledger.db"
    if not store.is_file():
        print(f"making {folder} (ledger demo --subjects {subjects} --seed 3) ...", flush=True)
        subprocess.run(
            ["ledger", "demo", "--subjects", str(subjects), "--out", str(folder), "--seed", "3"],
            check=True, capture_output=True,
        )
    return store


Builds = list[tuple[str, list[str]]]
"""(name, the command line that runs that build's ``ledger``), in the order they alternate."""


def best(builds: Builds, tail: list[str], runs: int) -> dict[str, tuple[float, float]]:
    """Per build: the best wall time of `runs` runs of ``ledger <tail>`` as a process, and its
    largest peak memory in MB; the builds alternate run by run so noise falls on all alike."""
    times: dict[str, list[float]] = {name: [] for name, _ in builds}
    peaks = dict.fromkeys(times, 0.0)
    for _ in range(runs):
        for name, command in builds:
            seconds, peak = run_once([*command, *tail])
            times[name].append(seconds)
            peaks[name] = max(peaks[name], peak)
    return {name: (min(times[name]), peaks[name]) for name in times}


def run_once(args: list[str]) -> tuple[float, float]:
    """Wall time and peak memory (MB) of one process, which must succeed."""
    with tempfile.TemporaryFile() as errors:
        started = time.perf_counter()
        process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=errors)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode:
            errors.seek(0)
            sys.exit(f"{' '.join(args)} failed: {errors.read().decode()[-300:]}")
    return seconds, usage.ru_maxrss / 1024


def moment_at(store: Path, fraction: float) -> str:
    """recorded_at of the trial's record at `fraction` of its log (as the perf-read check picks)."""
    con = sqlite3.connect(store)
    trial, size = con.execute(
        "select originator_id, max(originator_version) from stored_events group by originator_id"
        " order by 2 desc limit 1"
    ).fetchone()
    (state,) = con.execute(
        "select state from stored_events where originator_id=? and originator_version=?",
        (trial, max(1, int(size * fraction))),
    ).fetchone()
    con.close()
    return str(json.loads(state)["timestamp"]["_data_"]).replace("+00:00", "Z")


def first_subject(store: Path) -> str:
    """The first subject the demo enrolled (the same history length in both stores)."""
    with (store.parent / "submissions.jsonl").open() as lines:
        return str(json.loads(next(lines))["subject_id"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=Path, required=True)
    parser.add_argument("--large", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--baseline", help="another build's ledger command line, timed alike")
    args = parser.parse_args()
    small, large = ensure_store(args.small, 100), ensure_store(args.large, 1000)
    builds: Builds = [("now", ["ledger"])]
    if args.baseline:
        builds.insert(0, ("baseline", shlex.split(args.baseline)))
    runs = args.runs
    figures: dict[str, dict[str, tuple[float, float]]] = {}
    for name, store in (("100", small), ("1000", large)):
        figures[f"cohorts {name}"] = best(builds, ["cohorts", "--store", str(store), "--json"],
                                          runs)
        figures[f"history {name}"] = best(
            builds, ["history", first_subject(store), "--store", str(store), "--json"], runs
        )
    t10 = moment_at(large, 0.1)
    with tempfile.TemporaryDirectory() as out:
        figures["cohorts as-of 10%"] = best(
            builds, ["cohorts", "--store", str(large), "--as-of", t10, "--json"], runs
        )
        figures["export"] = best(builds, ["export", "--store", str(large), "--out", f"{out}/f"],
                                 runs)
        figures["export as-of 10%"] = best(
            builds, ["export", "--store", str(large), "--as-of", t10, "--out", f"{out}/p"], runs
        )
        opening = moment_at(large, 0.0)
        figures["export at opening"] = best(
            builds, ["export", "--store", str(large), "--as-of", opening, "--out", f"{out}/o"],
            runs,
        )
    scan = best([("raw scan", [sys.executable, "-c", SCAN, str(large)])], [], runs)
    scan_seconds = scan["raw scan"][0]
    print(f"{'raw scan':>20}: {scan_seconds:6.2f} s")
    for build, _ in builds:
        seconds = {name: by_build[build][0] for name, by_build in figures.items()}
        print(f"--- {build}")
        for name, value in seconds.items():
            print(f"{name:>20}: {value:6.2f} s")
        print(f"{'export peak':>20}: {figures['export'][build][1]:6.0f} MB (goal < 250)")
        print(f"cohorts 1000/100: x{seconds['cohorts 1000'] / seconds['cohorts 100']:.2f} (<= 1.5)")
        print(f"history 1000/100: x{seconds['history 1000'] / seconds['history 100']:.2f} (<= 1.5)")
        part = seconds["export as-of 10%"] / seconds["export"]
        print(f"export as-of 10% / full: x{part:.2f} (<= 0.2)")
        fixed = seconds["export at opening"]
        beyond = (seconds["export as-of 10%"] - fixed) / (seconds["export"] - fixed)
        print(f"  beyond the fixed {fixed:.2f} s: as-of 10% / full x{beyond:.2f}")
        print(f"raw scan / export: {scan_seconds / seconds['export']:.2f} (>= 0.5)")


if __name__ == "__main__":
    main()
