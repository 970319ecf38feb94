"""The fuzz corpus: every hostile or careless input named in issue 12, plus seeded mutations of
valid submissions of every type and version.

`python3 -m tests.fuzz.corpus` rewrites `tests/fuzz/corpus.jsonl` (raw bytes, one case a line;
the same seed gives the same file). Tests read the stored file, so a figure measured on it is
reproducible; `valid_envelopes()` and `mutate()` are also what the Hypothesis tests start from.
"""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path
from typing import Any

CORPUS = Path(__file__).with_name("corpus.jsonl")
SEED = 20250304
MUTATIONS = 1400

UUID = "0b6f2c1e-8f3e-4a51-9a57-2f1a7c4d9e10"
TARGET = "7d0c5a52-3e0b-4f7e-8d7a-6f1b2c3d4e5f"
BASELINE = {
    "age": 61,
    "sex": "F",
    "race": "ASIAN",
    "ecog": 1,
    "weight_kg": 58.5,
    "height_cm": 161,
}
DATA: dict[str, dict[str, Any]] = {
    "subject.enrolled": {"cohort": "A"},
    "haic.administered": {"cycle": 1, "oxaliplatin_mg_m2": 85, "fluorouracil_mg_m2": 2000},
    "fruquintinib.dosed": {"dose_mg": 4},
    "dose.modified": {"dose_mg": 3},
    "adverse_event.reported": {
        "ae_id": "AE-01",
        "term": "hypertension",
        "grade": 3,
        "serious": False,
        "related": True,
    },
    "adverse_event.updated": {"ae_id": "AE-01", "grade": 2, "resolved": False},
    "dlt.adjudicated": {"ae_id": "AE-01", "dlt": True},
    "tumor.assessed": {
        "baseline": False,
        "target_lesions": [
            {"lesion_id": "T1", "diameter_mm": 31.5, "nodal": False},
            {"lesion_id": "T2", "diameter_mm": None, "nodal": True},
        ],
        "non_target": "NON_CR_NON_PD",
        "new_lesions": False,
        "investigator_response": "SD",
    },
    "anticancer_therapy.started": {"therapy": "TAS-102 + bevacizumab"},
    "treatment.discontinued": {"reason": "toxicity"},
    "subject.alive": {},
    "subject.died": {"cause": "disease progression"},
    "subject.withdrawn": {"reason": "lost_to_follow_up"},
    "record.corrected": {"target_event_id": TARGET, "data": {"dose_mg": 3}},
    "record.voided": {"target_event_id": TARGET},
}
V2_DATA = {
    "subject.enrolled": {"cohort": "A", **BASELINE},
    "adverse_event.reported": {
        **DATA["adverse_event.reported"],
        "meddra_pt": "Hypertension",
        "meddra_soc": "Vascular disorders",
    },
}


def envelope(kind: str, version: int = 1, **overrides: Any) -> dict[str, Any]:
    """A valid submission of `kind` in `version`, with `overrides` applied to the envelope."""
    amendment = kind.startswith("record.")
    data = V2_DATA.get(kind, DATA[kind]) if version == 2 else DATA[kind]
    document: dict[str, Any] = {
        "event_id": UUID,
        "type": kind,
        "schema_version": version,
        "trial_id": "NCT05406206",
        "subject_id": "01-003",
        "occurred_on": "2025-03-04",
        "source": "edc-site-01",
        "entered_by": "inv.li",
        "reason": "source data verification" if amendment else None,
        "data": copy.deepcopy(data),
    }
    document.update(overrides)
    return document


def valid_envelopes() -> list[dict[str, Any]]:
    return [envelope(kind, version) for kind in DATA for version in (1, 2)]


def _line(document: Any) -> bytes:
    return json.dumps(document, ensure_ascii=False).encode("utf-8", "surrogatepass")


def named_cases() -> list[tuple[str, bytes]]:
    """Each case issue 12 names, as the bytes a client would send."""
    dose = envelope("fruquintinib.dosed")
    enrolled = envelope("subject.enrolled")
    ae = envelope("adverse_event.reported")
    raw_ok = _line(enrolled)
    return [
        ("valid enrollment", raw_ok),
        ("lone surrogate in subject_id", _line(envelope("subject.alive", subject_id="abc\udfff"))),
        ("lone surrogate escaped", raw_ok.replace(b'"01-003"', b'"abc\\udfff"')),
        ("nested 1000 deep", b"[" * 1000 + b"]" * 1000),
        ("nested 20000 deep", b'{"a":' * 20_000 + b"1" + b"}" * 20_000),
        ("4301-digit integer", raw_ok.replace(b'"cohort": "A"', b'"cohort": ' + b"9" * 4301)),
        ("invalid UTF-8", raw_ok.replace(b"inv.li", b"inv.\xff\xfe")),
        ("NUL byte raw", raw_ok.replace(b"inv.li", b"inv.\x00li")),
        ("NUL escaped", raw_ok.replace(b"inv.li", b"inv.\\u0000li")),
        ("huge line", b'{"pad": "' + b"x" * 70_000 + b'"}'),
        ("padded valid line", raw_ok[:-1] + b" " * 70_000 + b"}"),
        ("NaN", _line(dose).replace(b'"dose_mg": 4', b'"dose_mg": NaN')),
        ("Infinity", _line(dose).replace(b'"dose_mg": 4', b'"dose_mg": Infinity')),
        ("-Infinity", _line(dose).replace(b'"dose_mg": 4', b'"dose_mg": -Infinity')),
        ("1e400", _line(dose).replace(b'"dose_mg": 4', b'"dose_mg": 1e400')),
        ("duplicate key", raw_ok.replace(b'"cohort": "A"', b'"cohort": "A", "cohort": "B"')),
        ("BOM", b"\xef\xbb\xbf" + raw_ok),
        ("empty", b""),
        ("whitespace only", b"  \t \r "),
        ("not an object", b"[]"),
        ("not JSON", b"{not json"),
        ("dose as string", _line(envelope("fruquintinib.dosed", data={"dose_mg": "4"}))),
        ("dose as true", _line(envelope("fruquintinib.dosed", data={"dose_mg": True}))),
        ("dose 1e300", _line(envelope("fruquintinib.dosed", data={"dose_mg": 1e300}))),
        (
            "grade as string",
            _line(envelope("adverse_event.reported", data={**ae["data"], "grade": "3"})),
        ),
        ("schema_version true", _line(envelope("subject.enrolled", schema_version=True))),
        ("schema_version string", _line(envelope("subject.enrolled", schema_version="1"))),
        ("schema_version 3", _line(envelope("subject.enrolled", schema_version=3))),
        ("date 0001-01-01", _line(envelope("subject.alive", occurred_on="0001-01-01"))),
        ("date with time", _line(envelope("subject.alive", occurred_on="2025-03-04T10:00:00"))),
        ("date 2025-02-30", _line(envelope("subject.alive", occurred_on="2025-02-30"))),
        ("zero-width in subject_id", _line(envelope("subject.alive", subject_id="01\u200b003"))),
        ("full-width subject_id", _line(envelope("subject.alive", subject_id="０１-００３"))),
        (
            "NUL in term",
            _line(envelope("adverse_event.reported", data={**ae["data"], "term": "a\x00b"})),
        ),
        (
            "RLO in term",
            _line(envelope("adverse_event.reported", data={**ae["data"], "term": "a\u202eb"})),
        ),
        (
            "150 U-umlaut term",
            _line(envelope("adverse_event.reported", data={**ae["data"], "term": "Ü" * 150})),
        ),
        (
            "201-char term",
            _line(envelope("adverse_event.reported", data={**ae["data"], "term": "x" * 201})),
        ),
        ("event_id not a UUID", _line(envelope("subject.alive", event_id="evt-1"))),
        ("event_id uppercase", _line(envelope("subject.alive", event_id=UUID.upper()))),
        ("event_id braces", _line(envelope("subject.alive", event_id="{" + UUID + "}"))),
        ("subject_id trailing newline", _line(envelope("subject.alive", subject_id="01-003\n"))),
        ("source trial-ledger", _line(envelope("subject.alive", source="trial-ledger"))),
    ]


_ODD_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    1,
    2,
    3.0,
    3.5,
    50,
    50.0001,
    1e300,
    -1e-300,
    10**30,
    "",
    " ",
    "4",
    "3",
    "true",
    "x" * 201,
    "x" * 200,
    "a\u202eb",
    "a\u200bb",
    "ｆｕｌｌ",
    "abc\udfff",
    "a\x00b",
    "a\tb",
    " lead",
    "trail ",
    "e\u0301",
    "0001-01-01",
    "2025-03-04T00:00:00",
    "2025-02-29",
    "2024-02-29",
    "2100-01-01",
    "1999-12-31",
    UUID,
    UUID.upper(),
    "evt-1",
    "A",
    "EXPANSION",
    "F",
    "ASIAN",
    "PD",
    [],
    {},
    [1],
    {"x": 1},
    "01-003\n",
    "\ufeffA",
]


def _leaves(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path] if path else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _leaves(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _leaves(value, (*path, index))
    return found


def _set(node: Any, path: tuple[Any, ...], value: Any) -> None:
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value


def _delete(node: Any, path: tuple[Any, ...]) -> None:
    for step in path[:-1]:
        node = node[step]
    if isinstance(node, dict):
        del node[path[-1]]
    else:
        node.pop(path[-1])


def mutate(document: dict[str, Any], rng: random.Random) -> bytes:
    """One seeded mutation of a valid submission, as the bytes that would be sent."""
    document = copy.deepcopy(document)
    paths = _leaves(document)
    path = rng.choice(paths)
    action = rng.randrange(10)
    if action < 6:
        _set(document, path, rng.choice(_ODD_VALUES))
    elif action == 6:
        _delete(document, path)
    elif action == 7:
        target = document if rng.random() < 0.5 else document["data"]
        target[rng.choice(["extra", "Cohort", "dose", "schema_version"])] = 1
    elif action == 8:
        document["type"] = rng.choice(list(DATA))
    else:
        document["schema_version"] = rng.choice([1, 2, 3, 1.0, "1", True, None, 0])
    raw = _line(document)
    if rng.random() < 0.05:
        raw = raw[: rng.randrange(len(raw))]
    if rng.random() < 0.05:
        at = rng.randrange(len(raw))
        raw = raw[:at] + bytes([rng.randrange(256)]) + raw[at + 1 :]
    return raw


def corpus_lines() -> list[tuple[str, bytes]]:
    rng = random.Random(SEED)
    cases = named_cases()
    cases += [
        (f"valid {doc['type']} v{doc['schema_version']}", _line(doc)) for doc in valid_envelopes()
    ]
    bases = valid_envelopes()
    cases += [(f"mutation {n}", mutate(rng.choice(bases), rng)) for n in range(MUTATIONS)]
    return [(name, raw) for name, raw in cases if b"\n" not in raw]


def read_corpus() -> list[bytes]:
    """The stored corpus, line by line, as raw bytes."""
    return CORPUS.read_bytes().split(b"\n")[:-1]


if __name__ == "__main__":
    CORPUS.write_bytes(b"".join(raw + b"\n" for _name, raw in corpus_lines()))
    print(f"{len(read_corpus())} lines in {CORPUS}")
