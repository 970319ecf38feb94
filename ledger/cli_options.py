"""The options several commands share, each declared once as an argparse parent parser.

A command lists the parents it takes (`ledger export` takes the store, --json, --as-of, --cutoff,
the dataset format and the output folder), so an option reads and behaves the same wherever it
appears and its help is written in one place.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ledger.cli_plumbing import iso_date
from ledger.store import environment_store

_Declare = Callable[[argparse.ArgumentParser], None]
"""Declares one or more options on a parser."""


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


def shared_options() -> SharedOptions:
    return SharedOptions(
        store=_parent(_store_options),
        as_json=_parent(_json_option),
        as_of=_parent(_as_of_option),
        cutoff=_parent(_cutoff_option),
        dataset_format=_parent(_format_option),
        out_folder=_parent(_out_option),
        signing=_parent(_signing_option),
        public_key=_parent(_public_key_option),
    )


def _parent(declare: _Declare) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False)
    declare(parser)
    return parser


def _store_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        default=environment_store(),
        help="SQLite file or postgresql:// URL (env LEDGER_STORE; default ./ledger.db)",
    )
    parser.add_argument("--trial", help="trial id, when the store holds several")


def _json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON document")


def _as_of_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--as-of", metavar="T", help="ISO-8601 UTC instant: what the ledger knew then"
    )


def _cutoff_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cutoff",
        type=iso_date,
        metavar="D",
        help="ISO date: clinical facts up to this day; follow-up censored there",
    )


def _format_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format",
        choices=["csv", "xpt", "json"],
        default="csv",
        help="CSV, SAS v5 transport or CDISC Dataset-JSON 1.1",
    )


def _out_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="folder to write")


def _signing_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--signing-key",
        type=Path,
        metavar="PEM",
        help="Ed25519 private key (PEM) that signs checkpoints (env LEDGER_SIGNING_KEY)",
    )


def _public_key_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--public-key", type=Path, metavar="PEM", help="trust only this key for signatures"
    )

