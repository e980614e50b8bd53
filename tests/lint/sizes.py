"""One module, one responsibility: no product module passes MAX_LINES (tests, benchmarks
and fuzz harnesses aside). `python -m tests.lint.sizes` lists the ones that do."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]
PRODUCT = ("protocol", "agent", "central", "firmware_bridge", "runtime", "rtcc")
MAX_LINES = 400


def oversized(root: Path = ROOT, limit: int = MAX_LINES) -> list[tuple[str, int]]:
    found = []
    for package in PRODUCT:
        for path in sorted((root / package).rglob("*.py")):
            lines = len(path.read_text(encoding="utf-8").splitlines())
            if lines > limit:
                found.append((str(path.relative_to(root)), lines))
    return found


def main() -> int:
    found = oversized()
    for name, lines in found:
        print(f"{name}: {lines} lines (at most {MAX_LINES}): split it by responsibility")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
