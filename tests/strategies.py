"""Hypothesis strategies: random streams of integrator submissions, valid and not."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from hypothesis import strategies as st

from tests.builders import Script


@dataclass(frozen=True)
class Step:
    action: str
    subject: int
    cohort: str
    doses: int
    dlt: bool | None
    day: int


steps = st.builds(
    Step,
    action=st.sampled_from(
        ["enroll", "enroll", "course", "course", "withdraw", "duplicate", "void", "late_dlt"]
    ),
    subject=st.integers(min_value=1, max_value=30),
    cohort=st.sampled_from(["A", "B", "C", "EXPANSION"]),
    doses=st.sampled_from([10, 15, 16, 21]),
    dlt=st.sampled_from([None, None, True, False]),
    day=st.integers(min_value=0, max_value=400),
)


def submissions_for(plan: list[Step]) -> list[dict[str, Any]]:
    """Turn a plan into envelopes; some will be refused, which is part of what is tested."""
    script = Script()
    day0 = date(2024, 1, 1)
    sent: list[dict[str, Any]] = []
    enrolled: dict[str, str] = {}
    for step in plan:
        subject_id = f"01-{step.subject:03d}"
        on = day0 + timedelta(days=step.day)
        if step.action == "enroll":
            envelope = script.enroll(subject_id, step.cohort, on)
            enrolled.setdefault(subject_id, step.cohort)
            sent.append(envelope)
        elif step.action == "course":
            sent += script.cycle_one(
                subject_id, enrolled.get(subject_id, "A"), on, doses=step.doses, dlt=step.dlt
            )
        elif step.action == "withdraw":
            sent.append(
                script.envelope(
                    "subject.withdrawn", subject_id, on, {"reason": "lost_to_follow_up"}
                )
            )
        elif step.action == "duplicate" and sent:
            sent.append(sent[step.day % len(sent)])
        elif step.action == "void":
            targets = [e for e in sent if e["type"] == "dlt.adjudicated"]
            if targets:
                target = targets[step.day % len(targets)]
                sent.append(
                    script.envelope(
                        "record.voided",
                        target["subject_id"],
                        on,
                        {"target_event_id": target["event_id"]},
                        reason="adjudication entered in error",
                    )
                )
        elif step.action == "late_dlt":
            sent.append(
                script.envelope(
                    "adverse_event.reported",
                    subject_id,
                    on,
                    {
                        "ae_id": f"AE-L{step.day}",
                        "term": "diarrhoea",
                        "grade": 3,
                        "serious": False,
                        "related": True,
                    },
                )
            )
            sent.append(
                script.envelope(
                    "dlt.adjudicated",
                    subject_id,
                    on,
                    {"ae_id": f"AE-L{step.day}", "dlt": bool(step.dlt)},
                )
            )
    return sent
