"""Read commands as whole processes, on demo stores of two sizes, with their ratios in one run.

For a small and a large store (``ledger demo --subjects N --out DIR``, made once and reused), times
the best of ``--runs`` runs of each command as a separate process (what a user waits for):

* ``ledger cohorts`` and ``ledger history SUBJECT`` on both stores, and the large/small ratio
  (issue 8 goal 1: at most 1.5);
* on the large store ``ledger export`` in full and ``--as-of`` the record at 10 % of the log, and
  the ratio (goal 2: at most 0.2), with ``cohorts --as-of`` the same moment;
* the store's raw scan + decode (``json.loads`` of every stored row, in a process of its own) and
  the scan/export ratio (goal 3: at least 0.5), and the full export's peak memory (under 250 MB).

Run: ``python bench/bench_reads.py --small DIR100 --large DIR1000 [--runs 3]``; a DIR that holds
no ``ledger.db`` is made with ``ledger demo --subjects 100`` / ``1000 --seed 3`` first.
"""

from __future__ import annotations

import argparse
import json
import resource
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


def best(args: list[str], runs: int) -> tuple[float, float]:
    """Best wall time of `runs` runs of the process, and its peak memory in MB (largest run)."""
    times = []
    peak = 0.0
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        started = time.perf_counter()
        done = subprocess.run(args, capture_output=True, timeout=900, check=False)
        times.append(time.perf_counter() - started)
        if done.returncode:
            sys.exit(f"{' '.join(args)} failed: {done.stderr.decode()[-300:]}")
        after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        peak = max(peak, after / 1024, before / 1024)
    return min(times), peak


def moment_at(store: Path, fraction: float) -> str:
    """recorded_at of the trial's record at `fraction` of its log (as the perf-read check picks)."""
    con = sqlite3.connect(store)
    trial, size = con.execute(
        "select originator_id, max(originator_version) from stored_events group by originator_id"
        " order by 2 desc limit 1"
    ).fetchone()
    (state,) = con.execute(
        "select state from stored_events where originator_id=? and originator_version=?",
        (trial, int(size * fraction)),
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
    args = parser.parse_args()
    small, large = ensure_store(args.small, 100), ensure_store(args.large, 1000)
    runs = args.runs
    figures: dict[str, float] = {}
    for name, store in (("100", small), ("1000", large)):
        figures[f"cohorts {name}"], _ = best(["ledger", "cohorts", "--store", str(store), "--json"],
                                             runs)
        figures[f"history {name}"], _ = best(
            ["ledger", "history", first_subject(store), "--store", str(store), "--json"], runs
        )
    t10 = moment_at(large, 0.1)
    with tempfile.TemporaryDirectory() as out:
        figures["cohorts as-of 10%"], _ = best(
            ["ledger", "cohorts", "--store", str(large), "--as-of", t10, "--json"], runs
        )
        figures["export"], export_peak = best(
            ["ledger", "export", "--store", str(large), "--out", f"{out}/full"], runs
        )
        figures["export as-of 10%"], _ = best(
            ["ledger", "export", "--store", str(large), "--as-of", t10, "--out", f"{out}/part"],
            runs,
        )
    figures["raw scan"], _ = best([sys.executable, "-c", SCAN, str(large)], runs)
    for name, seconds in figures.items():
        print(f"{name:>20}: {seconds:6.2f} s")
    print(f"{'export peak':>20}: {export_peak:6.0f} MB (goal < 250)")
    print(f"cohorts 1000/100: x{figures['cohorts 1000'] / figures['cohorts 100']:.2f} (<= 1.5)")
    print(f"history 1000/100: x{figures['history 1000'] / figures['history 100']:.2f} (<= 1.5)")
    part = figures["export as-of 10%"] / figures["export"]
    print(f"export as-of 10% / full: x{part:.2f} (<= 0.2)")
    print(f"raw scan / export: {figures['raw scan'] / figures['export']:.2f} (>= 0.5)")


if __name__ == "__main__":
    main()
