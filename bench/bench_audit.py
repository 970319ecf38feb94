"""What the Merkle log costs: hashing and signing on the write path, and `verify` against a scan.

Records the synthetic trial of ``bench_datasets.record_trial`` (``--subjects``, default 300) in
three ways, as ``ledger submit`` records (daily batches through ``LedgerService``), after a small
warm-up write of each and ``--write-repeat`` times each (default 2) in alternating order, keeping
the best run of each (so no way pays for imports or for running first):

* sealed and signed (Ed25519): what the ledger does;
* sealed, unsigned (no key);
* not sealed (``seal_batch`` replaced by a no-op): the ledger before the audit issue;

and reports each run's wall time and the overhead ratios (goal: sealed and signed < 1.10 x the
unsealed write). Then, on the signed store: the raw scan (every stored event of the trial read
and decoded by the store's own mapper) against ``verify`` of the same store (read, decode,
canonicalise, hash, rebuild the tree, check every checkpoint signature) in events/s, and their
ratio (goal: verify at least 0.5 x the raw scan rate).

Each figure is wall time; beside it, in brackets, the process CPU time of the same run, which a
busy shared machine disturbs less (the write's SQLite commits wait on the disk outside it).

Run: ``python bench/bench_audit.py [--subjects N] [--seed S]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_datasets

from ledger import audit_sealing
from ledger.aggregates import trial  # noqa: F401  (the scan decodes the Trial's events: their classes)
from ledger.aggregates.trial_topics import trial_aggregate_id
from ledger.application import LedgerService
from ledger.audit.checkpoints import Signer
from ledger.audit.inspection import verify_source
from ledger.ledger_reader import LedgerReader


def record(
    store: Path, subjects: int, seed: int, signer: Signer | None
) -> tuple[float, float, int]:
    real_service = LedgerService

    def with_signer(path: str, *args: Any, **kwargs: Any) -> LedgerService:
        return real_service(path, *args, signer=signer, **kwargs)

    with mock.patch.object(bench_datasets, "LedgerService", with_signer):
        started, cpu = time.perf_counter(), time.process_time()
        _, events = bench_datasets.record_trial(store, subjects, seed)
    return time.perf_counter() - started, time.process_time() - cpu, events


def best_of(action: Callable[[], Any], repeat: int) -> tuple[float, float]:
    """The shortest wall time and the shortest CPU time of `repeat` runs."""
    walls, cpus = [], []
    for _ in range(repeat):
        started, cpu = time.perf_counter(), time.process_time()
        action()
        walls.append(time.perf_counter() - started)
        cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--subjects", type=int, default=300)
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--repeat", type=int, default=3, help="runs of the scan and of verify")
    parser.add_argument("--write-repeat", type=int, default=2, help="runs of each write")
    args = parser.parse_args(argv)
    signer = Signer(Ed25519PrivateKey.generate())
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as scratch:
        folder = Path(scratch)

        def nothing(*_: Any, **__: Any) -> None:
            return None

        def no_seal(audit: Any, entries: Any, **_: Any) -> None:
            # Nothing hashed, signed or stored; the batch's entries still take a (blank) place
            # in the log, which the hand-over to the publisher pairs them with.
            audit.leaf_hashes.extend([""] * len(entries))

        def unsealed_write(store: Path, subjects: int) -> tuple[float, float, int]:
            with (
                mock.patch.object(audit_sealing, "seal_batch", no_seal),
                mock.patch.object(LedgerService, "_seal_earlier_entries", nothing),
                mock.patch.object(LedgerService, "_seal_earlier_rejections", nothing),
            ):
                return record(store, subjects, args.seed, None)

        variants: dict[str, Callable[[Path, int], tuple[float, float, int]]] = {
            "unsealed": unsealed_write,
            "unsigned": lambda store, n: record(store, n, args.seed, None),
            "signed": lambda store, n: record(store, n, args.seed, signer),
        }
        # Imports, caches and the protocol load are paid once here, not by whichever runs first;
        # then each write runs `--write-repeat` times, the order reversed every round, best kept.
        for name, write in variants.items():
            write(folder / f"warm-{name}.db", 5)
        walls: dict[str, list[float]] = {name: [] for name in variants}
        cpus: dict[str, list[float]] = {name: [] for name in variants}
        events = 0
        for round_ in range(args.write_repeat):
            order = list(variants) if round_ % 2 == 0 else list(reversed(variants))
            for name in order:
                store = folder / f"{name}.db"
                store.unlink(missing_ok=True)
                wall, cpu, events = variants[name](store, args.subjects)
                walls[name].append(wall)
                cpus[name].append(cpu)
        unsealed, unsealed_cpu = min(walls["unsealed"]), min(cpus["unsealed"])
        unsigned, unsigned_cpu = min(walls["unsigned"]), min(cpus["unsigned"])
        signed, signed_cpu = min(walls["signed"]), min(cpus["signed"])
        with LedgerReader(str(folder / "signed.db")) as service:
            trial_id = service.default_trial_id()
            recorder = service._app.recorder
            mapper = service._app.mapper
            aggregate_id = trial_aggregate_id(trial_id)

            def scan() -> int:
                return sum(1 for s in recorder.select_events(aggregate_id)
                           if mapper.to_domain_event(s) is not None)

            def verify() -> None:
                result = verify_source(service.audit_source(trial_id))
                assert result.intact, result.to_json_dict()["problems"][:3]

            raw, raw_cpu = best_of(scan, args.repeat)
            checked, checked_cpu = best_of(verify, args.repeat)
    print(f"synthetic trial: {args.subjects} subjects, {events:,} recorded events")
    print(f"write, not sealed     : {unsealed:7.2f} s  ({events / unsealed:9,.0f} events/s)"
          f"  [cpu {unsealed_cpu:.2f} s]")
    print(f"write, sealed unsigned: {unsigned:7.2f} s  ({events / unsigned:9,.0f} events/s)"
          f"  x{unsigned / unsealed:.3f}"
          f"  [cpu {unsigned_cpu:.2f} s x{unsigned_cpu / unsealed_cpu:.3f}]")
    print(f"write, sealed + signed: {signed:7.2f} s  ({events / signed:9,.0f} events/s)"
          f"  x{signed / unsealed:.3f}  (goal < 1.10)"
          f"  [cpu {signed_cpu:.2f} s x{signed_cpu / unsealed_cpu:.3f}]")
    print(f"raw scan + decode     : {events / raw:9,.0f} events/s ({raw:.3f} s)"
          f"  [cpu {raw_cpu:.3f} s]")
    print(f"verify                : {events / checked:9,.0f} events/s ({checked:.3f} s)"
          f"  [cpu {checked_cpu:.3f} s]")
    print(f"verify rate / scan rate: {raw / checked:.2f} (goal >= 0.5)"
          f"  [cpu {raw_cpu / checked_cpu:.2f}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
