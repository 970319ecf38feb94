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
