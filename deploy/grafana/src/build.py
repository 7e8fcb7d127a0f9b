"""Write every Guichet dashboard to ``deploy/grafana/<uid>.json``.

    python deploy/grafana/src/build.py          # write the files
    python deploy/grafana/src/build.py --check  # exit 1 if a committed file differs

tests/deploy/test_dashboards.py runs the same comparison.
"""

from __future__ import annotations

import sys
from pathlib import Path

from dashboards import draws, programme, sale_day
from dashboards.common import render

OUT = Path(__file__).resolve().parents[1]
MODULES = (sale_day, draws, programme)


def dashboards() -> dict[str, str]:
    """File name → JSON text of every dashboard."""
    return {f"{module.UID}.json": render(module.build()) for module in MODULES}


def main(argv: list[str]) -> int:
    built = dashboards()
    if "--check" in argv:
        stale = [
            name
            for name, text in built.items()
            if not (OUT / name).exists() or (OUT / name).read_text() != text
        ]
        for name in stale:
            print(f"deploy/grafana/{name} differs from its source: run build.py", file=sys.stderr)
        return 1 if stale else 0
    for name, text in built.items():
        (OUT / name).write_text(text)
        print(f"wrote deploy/grafana/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
