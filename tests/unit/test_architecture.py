"""The import rules, enforced on every test run from their one source: the import-linter
contracts in pyproject.toml (which `make lint` checks too)."""

from __future__ import annotations

from pathlib import Path

import pytest
from importlinter.cli import lint_imports

from tests.lint.sizes import oversized

ROOT = Path(__file__).parents[2]


def lint(config: Path) -> int:
    return lint_imports(config_filename=str(config), no_cache=True, no_logo=True)


def test_every_import_contract_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    assert lint(ROOT / "pyproject.toml") == 0


def test_a_third_party_import_outside_the_allow_list_breaks_the_contract(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The allow-list contract is ours: prove it can fail (protocol does use cryptography)."""
    monkeypatch.chdir(ROOT)
    config = (ROOT / "pyproject.toml").read_text()
    narrowed = config.replace(
        'allowed_externals = ["pydantic", "cryptography"]', 'allowed_externals = ["pydantic"]'
    )
    assert narrowed != config
    (tmp_path / "pyproject.toml").write_text(narrowed)
    assert lint(tmp_path / "pyproject.toml") != 0


def test_no_product_module_passes_the_size_limit() -> None:
    assert oversized() == []


def test_size_check_names_a_module_over_the_limit(tmp_path: Path) -> None:
    (tmp_path / "agent").mkdir()
    (tmp_path / "agent" / "big.py").write_text("x = 1\n" * 401)
    (tmp_path / "agent" / "small.py").write_text("x = 1\n" * 400)
    assert oversized(tmp_path) == [("agent/big.py", 401)]
