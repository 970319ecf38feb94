"""A store written with envelope version 1 opens, exports and verifies now that the demo sends v2.

Why there is no `class_version` upcaster: the stored `Trial.SubjectEnrolled` and
`Trial.AdverseEventReported` events kept their attributes; version 2 only adds keys inside their
`data`, which every reader takes with `.get` (absent = blank), and `schema_version` is not stored.
So a version-1 event already reads as version 2 with those fields absent (contract §9). These tests
hold that: the seed-12 demo's history sent as version 1 (its v2 fields dropped) and as the demo
sends it give the same datasets except the v2 columns, which are blank for version 1.
"""

from __future__ import annotations

import gzip
import itertools
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.aggregates.facts import ADVERSE_EVENT_REPORTED, SUBJECT_ENROLLED
from ledger.application import LedgerService
from ledger.audit.checkpoints import Signer
from ledger.cli import main
from ledger.demo import run_demo
from ledger.ledger_reader import LedgerReader
from ledger.projections.datasets import build_datasets
from ledger.projections.define_xml import DEFINE_NAME, validate_define_xml
from tests.builders import TRIAL_ID, Script

SIGNER = Signer(Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
CUTOFF = "2026-06-30"
BATCH = 1000  # as `ledger submit` records them
V2_DATA = {
    SUBJECT_ENROLLED: ("birth_date", "age", "sex", "race", "ecog", "weight_kg", "height_cm"),
    ADVERSE_EVENT_REPORTED: ("meddra_pt", "meddra_soc"),
}
# Dataset columns that only envelope v2 fills; every other column must not notice the version.
V2_COLUMNS = {
    "adsl": ("AGE", "AGEU", "SEX", "RACE", "BRTHDT", "ECOGBL", "WEIGHTBL", "HEIGHTBL", "BMIBL"),
    "adae": ("AEDECOD", "AEBODSYS"),
    "adtte": (),
    "adrs": (),
}


def as_version_1(line: str) -> str:
    """The same submission as a version-1 integrator sends it: v2 fields dropped."""
    envelope = json.loads(line)
    if envelope["schema_version"] == 2:
        dropped = V2_DATA.get(envelope["type"], ())
        envelope["data"] = {k: v for k, v in envelope["data"].items() if k not in dropped}
        envelope["schema_version"] = 1
    return json.dumps(envelope, sort_keys=True)


def after_the_demo() -> Callable[[], datetime]:
    """A clock after every demo date, a microsecond per reading: both stores record alike."""
    counter = itertools.count()
    start = datetime(2026, 7, 1, tzinfo=UTC)
    return lambda: start + timedelta(microseconds=next(counter))


def record(store: Path, lines: list[str]) -> int:
    """`ledger submit` of `lines` into a new signed store; the number of rejections."""
    with LedgerService(str(store), clock=after_the_demo(), signer=SIGNER) as service:
        service.ensure_trial()
        return sum(
            len(service.submit_many(lines[start : start + BATCH]).rejected)
            for start in range(0, len(lines), BATCH)
        )


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The seed-12 demo's submissions recorded twice: as sent (v2) and downgraded to v1."""
    root = tmp_path_factory.mktemp("upcast")
    demo = run_demo(root / "demo", seed=12)
    sent = demo.submissions_file.read_text().splitlines()
    assert sum('"schema_version": 2' in line for line in sent) > 27
    (root / "public-key.pem").write_text(SIGNER.public_key_pem)
    stores = {"v1": root / "v1.db", "v2": root / "v2.db"}
    assert record(stores["v1"], [as_version_1(line) for line in sent]) == 0
    assert record(stores["v2"], sent) == 0
    return stores


def export(store: Path, out: Path) -> dict[str, pd.DataFrame]:
    """`ledger export` of the store as CSV, read back by name."""
    code = main(["export", "--store", str(store), "--cutoff", CUTOFF, "--out", str(out)])
    assert code == 0
    return {name: pd.read_csv(out / f"{name}.csv", dtype=str) for name in V2_COLUMNS}


def test_version_1_events_are_stored_as_they_always_were(stores: dict[str, Path]) -> None:
    """A v1 enrollment's stored data is its cohort alone, and a v1 AE report has no coding."""
    with LedgerReader(str(stores["v1"])) as service:
        entries = list(service.entries(TRIAL_ID))
    enrolled = [e.data for e in entries if e.type == SUBJECT_ENROLLED]
    reported = [e.data for e in entries if e.type == ADVERSE_EVENT_REPORTED]
    assert len(enrolled) == 27 and reported
    assert all(set(data) == {"cohort"} for data in enrolled)
    assert not any({"meddra_pt", "meddra_soc"} & set(data) for data in reported)


def test_a_version_1_store_exports_like_version_2_without_its_fields(
    stores: dict[str, Path], tmp_path: Path
) -> None:
    """v1 and v2 stores export the same datasets but for the v2 columns, blank for v1."""
    old, new = export(stores["v1"], tmp_path / "v1"), export(stores["v2"], tmp_path / "v2")
    for name, v2_only in V2_COLUMNS.items():
        assert list(old[name].columns) == list(new[name].columns), name
        pd.testing.assert_frame_equal(old[name].drop(columns=list(v2_only)),
                                      new[name].drop(columns=list(v2_only)))
        assert old[name][list(v2_only)].isna().all().all(), name
        assert new[name][list(v2_only)].notna().any().all(), name


def test_a_version_1_store_verifies(stores: dict[str, Path], capsys: Any) -> None:
    """`ledger verify` of the v1 store against its public key: intact, exit 0."""
    public_key = stores["v1"].parent / "public-key.pem"
    code = main(["verify", "--store", str(stores["v1"]), "--public-key", str(public_key), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert (code, report["intact"], report["problems"]) == (0, True, [])
    assert report["size"] > 2800


# --- A store written by the code before envelope version 2 -----------------------------------

OLD_STORE = Path(__file__).parent / "fixtures" / "v1_store" / "ledger.db.gz"
OLD_ROOT = "18e9a30e2fe0de84befa371723225746036806c5008fa3c3cba2205a950c00e4"


@pytest.fixture
def old_store(tmp_path: Path) -> Path:
    """A copy of the store commit d0c9248 wrote (tests/fixtures/v1_store), and its public key."""
    store = tmp_path / "ledger.db"
    store.write_bytes(gzip.decompress(OLD_STORE.read_bytes()))
    (tmp_path / "public-key.pem").write_text(SIGNER.public_key_pem)
    return store


def _verify(store: Path, capsys: Any) -> dict[str, Any]:
    code = main(["verify", "--store", str(store), "--public-key",
                 str(store.parent / "public-key.pem"), "--json"])
    report: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert (code, report["intact"], report["problems"]) == (0, True, [])
    return report


def test_a_store_written_before_version_2_verifies_and_exports(
    old_store: Path, tmp_path: Path, capsys: Any
) -> None:
    """The old file, untouched, verifies to the root it had, and exports in every format with
    a schema-valid define.xml: its subjects there, the v2 columns blank."""
    before = old_store.read_bytes()
    assert _verify(old_store, capsys)["root"] == OLD_ROOT
    for fmt in ("csv", "xpt", "json"):
        out = tmp_path / fmt
        assert main(["export", "--store", str(old_store), "--format", fmt,
                     "--out", str(out)]) == 0
        assert validate_define_xml((out / DEFINE_NAME).read_bytes()) == []
        manifest = json.loads((out / "manifest.json").read_text())
        assert (manifest["ledger_position"], manifest["root"]) == (926, OLD_ROOT)
    capsys.readouterr()
    adsl = pd.read_csv(tmp_path / "csv" / "adsl.csv", dtype=str)
    assert len(adsl) == 15
    assert adsl[list(V2_COLUMNS["adsl"])].isna().all().all()
    assert old_store.read_bytes() == before  # reading never rewrites the old file


def test_a_store_written_before_version_2_takes_version_2_submissions(
    old_store: Path, capsys: Any
) -> None:
    """Today's code appends a v2 enrollment to the old store; it still verifies, and the new
    subject's demographics reach ADSL next to the old subjects' blanks."""
    with LedgerReader(str(old_store)) as service:
        last_day = max(e.occurred_on for e in service.entries(TRIAL_ID) if e.occurred_on)
    envelope = Script().envelope(
        SUBJECT_ENROLLED, "03-099", last_day,
        {"cohort": "C", "age": 61, "sex": "F", "race": "ASIAN", "ecog": 0,
         "weight_kg": 70.0, "height_cm": 170.0},
        schema_version=2, event_id="f1f1f1f1-0000-4000-8000-000000000001",
    )
    with LedgerService(str(old_store), clock=after_the_demo(), signer=SIGNER) as service:
        result = service.submit(json.dumps(envelope))
        assert not result.rejected, result.message
        datasets = build_datasets(service.entries(TRIAL_ID), as_of=None, cutoff=None)
    assert _verify(old_store, capsys)["size"] > 926
    adsl = datasets.adsl.set_index("SUBJID")
    assert (adsl.loc["03-099", "AGE"], adsl.loc["03-099", "SEX"]) == (61, "F")
    assert len(adsl) == 16 and adsl.drop(index="03-099")["SEX"].isna().all()


def test_schema_prints_both_envelope_versions(capsys: Any) -> None:
    """`ledger schema` accepts a version-1 enrollment, a version-2 one with its baseline
    characteristics and a version-2 AE report with MedDRA coding; no version 3."""
    from jsonschema import Draft202012Validator

    assert main(["schema"]) == 0
    validator = Draft202012Validator(json.loads(capsys.readouterr().out))
    script = Script()
    v1 = script.enroll("01-001", "A", datetime(2026, 1, 5).date())
    v2 = script.envelope(SUBJECT_ENROLLED, "01-002", datetime(2026, 1, 5).date(), {
        "cohort": "A", "birth_date": "1960-02-01", "sex": "M", "race": "WHITE", "ecog": 1,
        "weight_kg": 80.5, "height_cm": 181.0,
    }, schema_version=2)
    ae = script.envelope(ADVERSE_EVENT_REPORTED, "01-002", datetime(2026, 1, 9).date(), {
        "ae_id": "AE-1", "term": "nausea", "grade": 1, "serious": False, "related": True,
        "meddra_pt": "Nausea", "meddra_soc": "Gastrointestinal disorders",
    }, schema_version=2)
    for envelope in (v1, v2, ae):
        assert validator.is_valid(envelope), list(validator.iter_errors(envelope))
    assert not validator.is_valid({**v2, "schema_version": 3})
    assert not validator.is_valid({**v2, "data": {**v2["data"], "sex": "male"}})
