"""What the ledger takes from its environment, read in one place and passed down.

`ledger` reads the environment once per command (`Environment.read`, in `ledger.cli.main`); the
options' defaults, the signing key and the traceback switch come from that one object. Two
readers keep their own, as the tools they follow do: Kafka's client settings
(`LEDGER_KAFKA_CONFIG`, `LEDGER_BOOTSTRAP`: `consumers._kafka.resolve_settings`) and libpq's
password lookup (`PGPASSWORD`, `PGPASSFILE`: `ledger.store`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ledger.store import DEFAULT_STORE

STORE_ENV = "LEDGER_STORE"
SIGNING_KEY_ENV = "LEDGER_SIGNING_KEY"
DEBUG_ENV = "LEDGER_DEBUG"


@dataclass(frozen=True, slots=True)
class Environment:
    store: str
    """`--store`'s default: LEDGER_STORE, else ./ledger.db."""
    store_from_environment: bool
    """Whether LEDGER_STORE named it (a password in it is nobody's command line)."""
    signing_key: Path | None
    """`--signing-key`'s default: LEDGER_SIGNING_KEY (None: checkpoints go unsigned, loudly)."""
    debug: bool
    """LEDGER_DEBUG: a failed command shows its traceback."""
    user: str
    """`--entered-by`'s default for `ledger init`: $USER."""

    @classmethod
    def read(cls, environ: Mapping[str, str] | None = None) -> Environment:
        values = os.environ if environ is None else environ
        named_key = values.get(SIGNING_KEY_ENV)
        return cls(
            store=values.get(STORE_ENV) or DEFAULT_STORE,
            store_from_environment=bool(values.get(STORE_ENV)),
            signing_key=Path(named_key) if named_key else None,
            debug=bool(values.get(DEBUG_ENV)),
            user=values.get("USER") or "ledger-cli",
        )
