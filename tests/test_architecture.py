"""Dependencies point inward: the layers import only what the architecture allows."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def files(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def test_aggregates_import_only_the_standard_library_and_the_domain_module() -> None:
    """ledger/aggregates imports the standard library, eventsourcing.domain and itself only."""
    import sys

    allowed_third_party = {"eventsourcing.domain"}
    for path in files("ledger/aggregates"):
        for module in imported_modules(path):
            top = module.split(".")[0]
            if module.startswith("ledger.aggregates") or top in sys.stdlib_module_names:
                continue
            assert module in allowed_third_party, f"{path.name} imports {module}"


@pytest.mark.parametrize(
    ("package", "owners"),
    [
        pytest.param("kafka", ("consumers",), id="kafka only in consumers"),
        pytest.param("pandas", ("ledger/projections",), id="pandas only in projections"),
        pytest.param("lifelines", ("ledger/projections",), id="lifelines only in projections"),
        pytest.param("matplotlib", ("ledger/projections",), id="matplotlib only in projections"),
        pytest.param("scipy", ("ledger/projections",), id="scipy only in projections"),
    ],
)
def test_heavy_packages_stay_in_their_layer(package: str, owners: tuple[str, ...]) -> None:
    """Each adapter package is imported only in the layer that owns it."""
    for folder in ("ledger", "consumers", "deploy"):
        for path in files(folder):
            if any(str(path.relative_to(ROOT)).startswith(owner) for owner in owners):
                continue
            offenders = {m for m in imported_modules(path) if m.split(".")[0] == package}
            assert not offenders, f"{path.relative_to(ROOT)} imports {offenders}"


def test_the_domain_never_imports_the_adapters() -> None:
    """Nothing in ledger/ imports consumers/ or deploy/ (the CLI wires them lazily)."""
    for path in files("ledger"):
        if path.name == "cli.py":
            continue
        for module in imported_modules(path):
            assert not module.startswith(("consumers", "deploy")), f"{path.name} imports {module}"



READ_COMMAND_IMPORTS = """
import sys
from ledger.cli import main

code = main(sys.argv[1:])
print(" ".join(sorted(sys.modules)))
sys.exit(code)
"""
"""Runs one `ledger` command, then prints every module it imported on the last line."""


_NEVER_FOR_READS = frozenset({
    "cryptography", "kafka", "consumers", "stamina", "ledger.audit.inspection",
    "ledger.audit.sealing", "ledger.schemas.submissions", "ledger.aggregates.trial",
    "ledger.application", "ledger.recording", "ledger.aggregates.intake",
    "ledger.aggregates.audit_log",
})
"""What no read command imports: the signing key, Kafka, the verifier, the wire parser, the
recording side (`LedgerService`: a read opens a `LedgerReader`) and the aggregates' event classes
(stored rows are read by their topics and ids, `trial_topics`, `log_ids`)."""


@pytest.mark.parametrize(
    ("command", "unused"),
    [
        pytest.param(("cohorts", "--json"), {"pandas", "importlib.metadata"}, id="cohorts"),
        pytest.param(("history", "01-001", "--json"), {"pandas", "importlib.metadata"},
                     id="history"),
        pytest.param(("export", "--format", "csv", "--out", "{out}"),
                     {"pandas", "numpy", "lifelines", "matplotlib", "scipy"}, id="export csv"),
        pytest.param(("export", "--format", "json", "--out", "{out}"),
                     {"pandas", "numpy", "lifelines", "matplotlib", "scipy"}, id="export json"),
    ],
)
def test_a_read_command_imports_only_what_it_uses(
    tmp_path: Path, command: tuple[str, ...], unused: set[str]
) -> None:
    """Read commands start without the verifier, the signing key, the wire parser, Kafka, the
    recording side or the aggregates' classes (`_NEVER_FOR_READS`); cohorts and history without
    pandas, an export to CSV or Dataset-JSON without pandas or numpy (only the transport file and
    the analyses need frames)."""
    import subprocess
    import sys
    from datetime import date

    from ledger.cli import main
    from tests.builders import Script, lines

    store, submissions = str(tmp_path / "ledger.db"), tmp_path / "in.jsonl"
    submissions.write_text("\n".join(lines([Script().enroll("01-001", "A", date(2025, 1, 6))])))
    assert main(["submit", str(submissions), "--store", store]) == 0
    arguments = [part.format(out=tmp_path / "out") for part in command]
    run = subprocess.run(
        [sys.executable, "-c", READ_COMMAND_IMPORTS, *arguments, "--store", store],
        capture_output=True, text=True, check=False, cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr
    imported = set(run.stdout.splitlines()[-1].split())
    assert "ledger.trial_reading" in imported
    assert imported & (unused | _NEVER_FOR_READS) == set()
