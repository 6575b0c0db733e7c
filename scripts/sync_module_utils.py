"""Copy the runner's shared rules into the roles' module_utils (one source, no drift).

    python scripts/sync_module_utils.py          # write the copies
    python scripts/sync_module_utils.py --check  # exit 1 if a copy differs

tests/unit/test_redaction_rules.py runs the check.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADER = ("# GENERATED from incident_runner/redaction_rules.py by\n"
          "# scripts/sync_module_utils.py: edit the source, not this copy.\n")
COPIES = {
    ROOT / "incident_runner" / "redaction_rules.py":
        ROOT / "roles" / "redaction" / "module_utils" / "incident_redaction.py",
}


def expected(source: Path) -> str:
    return HEADER + source.read_text(encoding="utf-8")


def main(argv: list[str]) -> int:
    drift = []
    for source, copy in COPIES.items():
        want = expected(source)
        if "--check" in argv:
            if not copy.is_file() or copy.read_text(encoding="utf-8") != want:
                drift.append(str(copy.relative_to(ROOT)))
            continue
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_text(want, encoding="utf-8")
    if drift:
        print("out of date (run scripts/sync_module_utils.py): " + ", ".join(drift))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
