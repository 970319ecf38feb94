"""`ledger broker` and Kafka client files, as a careless operator uses them (no broker needed:
each case is refused, or decided, before one is started or dialled)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from consumers._kafka import KafkaConfigError, load_client_properties
from consumers.cli import cmd_broker_start
from ledger.cli import main
from ledger.cli_plumbing import EXIT_BAD_INPUT


def test_a_client_file_naming_a_ca_that_is_not_there_is_refused_at_once(tmp_path: Path) -> None:
    """`ssl.ca.location` of a missing file: the client waited out 30 s, then reported a failed
    login. It is refused when the file is read, naming the setting."""
    config = tmp_path / "site.properties"
    config.write_text(
        "bootstrap.servers=127.0.0.1:1\nsecurity.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n"
        f"sasl.username=edc-site-01\nsasl.password=x\nssl.ca.location={tmp_path}/none.crt\n"
    )
    with pytest.raises(KafkaConfigError, match=r"ssl\.ca\.location .*none\.crt is not a file"):
        load_client_properties(config)


def test_an_empty_data_directory_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--data ""` (an unset variable) used the working folder for the broker's files."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stopped:
        main(["broker", "start", "--data", ""])
    assert stopped.value.code == EXIT_BAD_INPUT
    assert "--data: an empty path" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("recorded", "given", "started"),
                         [(3, None, 3), (None, None, 1), (1, 3, 3)])
def test_start_without_nodes_restarts_a_recorded_cluster_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    recorded: int | None, given: int | None, started: int,
) -> None:
    """`ledger broker start --data D` of a stopped 3-node cluster said "holds a 3-node cluster,
    not 1; stop it and use another directory": the advice abandoned its data. An omitted
    `--nodes` means as recorded (one for a new directory); a given one is passed on as is."""
    from deploy import broker

    asked: list[int] = []

    def start(directory: Path, nodes: int, **_: Any) -> Any:
        asked.append(nodes)
        raise broker.BrokerError("stopped here: the test needs only the node count")

    monkeypatch.setattr(broker, "load", lambda _d: None if recorded is None else
                        SimpleNamespace(nodes=[object()] * recorded))
    monkeypatch.setattr(broker, "start", start)
    with pytest.raises(Exception, match="stopped here"):
        cmd_broker_start(tmp_path / "kafka", given)
    assert asked == [started]
