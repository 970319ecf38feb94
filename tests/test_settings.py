"""What the ledger takes from its environment (`ledger.settings`), read once per command."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.audit.checkpoints import key_id_of
from ledger.cli import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, main
from ledger.settings import Environment
from ledger.store import DEFAULT_STORE

ENVIRONMENTS = [
    pytest.param({}, Environment(DEFAULT_STORE, False, None, False, "ledger-cli"), id="nothing"),
    pytest.param(
        {"LEDGER_STORE": "/data/trial.db", "LEDGER_SIGNING_KEY": "/keys/ledger.pem",
         "LEDGER_DEBUG": "1", "USER": "crc.01"},
        Environment("/data/trial.db", True, Path("/keys/ledger.pem"), True, "crc.01"),
        id="everything",
    ),
    pytest.param(
        {"LEDGER_STORE": "", "LEDGER_SIGNING_KEY": "", "LEDGER_DEBUG": "", "USER": ""},
        Environment(DEFAULT_STORE, False, None, False, "ledger-cli"),
        id="set but empty",
    ),
]


@pytest.mark.parametrize(("environ", "expected"), ENVIRONMENTS)
def test_the_environment_read_row_by_row(environ: dict[str, str], expected: Environment) -> None:
    assert Environment.read(environ) == expected


def _signing_key(folder: Path) -> tuple[Path, str]:
    """A fresh Ed25519 key written as PKCS#8 PEM, and its key id."""
    key = Ed25519PrivateKey.generate()
    path = folder / "key.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return path, key_id_of(key.public_key())


def test_the_environment_names_the_store_and_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """LEDGER_STORE and LEDGER_SIGNING_KEY stand for --store and --signing-key: the trial is
    opened in that store, its checkpoint signed with that key, and no warning is printed."""
    store = tmp_path / "env.db"
    monkeypatch.setenv("LEDGER_STORE", str(store))
    key, key_id = _signing_key(tmp_path)
    monkeypatch.setenv("LEDGER_SIGNING_KEY", str(key))
    assert main(["init"]) == EXIT_OK
    assert "WARNING" not in capsys.readouterr().err
    assert main(["checkpoint", "--json"]) == EXIT_OK
    receipt = json.loads(capsys.readouterr().out)["ledger"]
    assert store.is_file()
    assert receipt["key_id"] == key_id and receipt["signature"]


def test_without_a_key_the_checkpoints_go_unsigned_loudly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("LEDGER_SIGNING_KEY", raising=False)
    assert main(["init", "--store", str(tmp_path / "plain.db")]) == EXIT_OK
    assert "WARNING: no signing key" in capsys.readouterr().err


def test_a_password_may_come_from_the_environment_but_not_the_command_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A URL with a password in LEDGER_STORE is nobody's command line; in --store it is refused
    before anything connects."""
    url = "postgresql://ledger:secret@127.0.0.1:1/ledger?connect_timeout=1"
    assert main(["cohorts", "--store", url]) == EXIT_BAD_INPUT
    assert "visible to every user" in capsys.readouterr().err
    monkeypatch.setenv("LEDGER_STORE", url)
    code = main(["cohorts"])
    err = capsys.readouterr().err
    assert "visible to every user" not in err
    assert code != EXIT_OK and "secret" not in err  # the server is not there; nor is the password


def test_ledger_debug_shows_the_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A command failing unexpectedly is one line, unless LEDGER_DEBUG asks for the traceback.
    (A file that is no store at all is bad input, exit 2: tests/test_cli_careless.py.)"""
    from ledger.ledger_reader import LedgerReader

    store = tmp_path / "ledger.db"
    assert main(["init", "--store", str(store)]) == EXIT_OK
    capsys.readouterr()

    def failing(*_: object) -> str:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(LedgerReader, "default_trial_id", failing)
    assert main(["cohorts", "--store", str(store)]) == EXIT_FAILED
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "OperationalError: disk I/O error" in err
    monkeypatch.setenv("LEDGER_DEBUG", "1")
    with pytest.raises(sqlite3.OperationalError, match="disk I/O error"):
        main(["cohorts", "--store", str(store)])
