"""The trial protocol a trial opens with: the bundled NCT05406206 definition, or a file's."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from ledger.aggregates.protocol import ProtocolDefinition


def bundled_protocol() -> ProtocolDefinition:
    text = resources.files("ledger").joinpath("protocols/NCT05406206.json").read_text()
    return ProtocolDefinition.from_mapping(json.loads(text))


def load_protocol(path: Path) -> ProtocolDefinition:
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"cannot read protocol {path}: {error}") from None
    return ProtocolDefinition.from_mapping(raw)
