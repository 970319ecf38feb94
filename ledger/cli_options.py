"""The options several commands share, each declared once as an argparse parent parser.

A command lists the parents it takes (`ledger export` takes the store, --json, --as-of, --cutoff,
the dataset format and the output folder), so an option reads and behaves the same wherever it
appears and its help is written in one place.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledger.cli_plumbing import iso_date, output_path
from ledger.settings import Environment


@dataclass(frozen=True, slots=True)
class SharedOptions:
    store: argparse.ArgumentParser
    """--store and --trial: which ledger."""
    as_json: argparse.ArgumentParser
    """--json: one JSON document on stdout instead of text."""
    as_of: argparse.ArgumentParser
    """--as-of: transaction time, what the ledger knew then."""
    cutoff: argparse.ArgumentParser
    """--cutoff: valid time, clinical facts up to that day."""
    dataset_format: argparse.ArgumentParser
    """--format: csv, xpt or json (CDISC Dataset-JSON)."""
    out_folder: argparse.ArgumentParser
    """--out: the folder the files are written to (required)."""
    signing: argparse.ArgumentParser
    """--signing-key: the key that signs checkpoints of what the command records."""
    public_key: argparse.ArgumentParser
    """--public-key: the only key trusted for checkpoint signatures."""


def shared_options(environment: Environment) -> SharedOptions:
    """The shared options, their defaults from `environment`."""
    return SharedOptions(
        store=_parent(
            _Option(
                "--store", default=environment.store,
                help="SQLite file or postgresql:// URL (env LEDGER_STORE; default ./ledger.db)",
            ),
            _Option("--trial", help="trial id, when the store holds several"),
        ),
        as_json=_parent(_Option("--json", action="store_true", help="print one JSON document")),
        as_of=_parent(
            _Option("--as-of", metavar="T", help="ISO-8601 UTC instant: what the ledger knew then")
        ),
        cutoff=_parent(
            _Option("--cutoff", type=iso_date, metavar="D",
                    help="ISO date: clinical facts up to this day; follow-up censored there")
        ),
        dataset_format=_parent(
            _Option("--format", choices=["csv", "xpt", "json"], default="csv",
                    help="CSV, SAS v5 transport or CDISC Dataset-JSON 1.1")
        ),
        out_folder=_parent(
            _Option("--out", type=output_path, required=True, help="folder to write")
        ),
        signing=_parent(
            _Option(
                "--signing-key", type=Path, metavar="PEM", default=environment.signing_key,
                help="Ed25519 private key (PEM) that signs checkpoints (env LEDGER_SIGNING_KEY)",
            )
        ),
        public_key=_parent(
            _Option("--public-key", type=Path, metavar="PEM",
                    help="trust only this key for signatures")
        ),
    )


class _Option:
    """One option: `add_argument`'s arguments, kept until a parser declares it."""

    def __init__(self, flag: str, **settings: Any) -> None:
        self.flag = flag
        self.settings = settings


def _parent(*options: _Option) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False)
    for option in options:
        parser.add_argument(option.flag, **option.settings)
    return parser
