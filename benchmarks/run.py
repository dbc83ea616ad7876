"""Run every benchmark in this folder side by side with its peers and print one table.

Each ``bench_*.py`` module exposes ``run(quick: bool = False) -> list[dict]`` with rows holding ``bench``,
``name``, ``value``, ``unit`` and optionally ``ratio`` (to the peer named in ``vs``). Timings are noisy on
shared machines: compare the ratios, measured in one run, not the absolute times.

    python benchmarks/run.py [--quick] [--only bvh] [--json out.json]
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller inputs and fewer repeats")
    ap.add_argument("--only", action="append", default=[], help="run only bench_<NAME>.py (repeatable)")
    ap.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(HERE))
    rows: list[dict] = []
    for path in sorted(HERE.glob("bench_*.py")):
        name = path.stem.removeprefix("bench_")
        if args.only and name not in args.only:
            continue
        print(f"== {name}", flush=True)
        module = importlib.import_module(path.stem)
        for row in module.run(quick=args.quick):
            row.setdefault("bench", name)
            rows.append(row)
            ratio = f"  ratio {row['ratio']:.2f}" if row.get("ratio") is not None else ""
            ratio += f" vs {row['vs']}" if row.get("vs") else ""
            print(f"  {row['name']:<48} {row['value']:>12.4g} {row.get('unit', ''):<8}{ratio}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
