"""Import direction, enforced on every test run (import-linter enforces it in lint too)."""

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
OURS = {"protocol", "agent", "central", "firmware_bridge", "runtime", "rtcc"}
ALLOWED = {
    "protocol": {"protocol"},
    "firmware_bridge": {"firmware_bridge"},
    "runtime": {"runtime", "protocol"},
    "agent": {"agent", "protocol", "firmware_bridge", "runtime"},
    "central": {"central", "protocol", "runtime"},
    "rtcc": OURS,
}


def imports(package: str) -> set[tuple[str, str]]:
    found = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {(str(path.relative_to(ROOT)), a.name.split(".")[0]) for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add((str(path.relative_to(ROOT)), node.module.split(".")[0]))
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_flow_one_way(package: str) -> None:
    bad = {(f, m) for f, m in imports(package) if m in OURS and m not in ALLOWED[package]}
    assert not bad, f"{package} imports what it must not: {sorted(bad)}"


def test_protocol_needs_only_pydantic_and_ed25519() -> None:
    """The contract is models; the evidence manifest's signatures add one crypto library."""
    third_party = {m for _, m in imports("protocol")} - set(sys.stdlib_module_names) - OURS
    assert third_party <= {"pydantic", "cryptography"}, third_party
