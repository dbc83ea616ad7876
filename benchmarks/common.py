"""What the bench scripts share: the data folder, a median timer, and printing rows (``{name, value, unit,
ratio, vs}``) as a table."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def data_root() -> Path:
    """The real data folder: OPTIQ_TEST_DATA, default ``../shared/data`` beside the repository."""
    return Path(os.environ.get("OPTIQ_TEST_DATA") or ROOT.parent / "shared" / "data")


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``repeats`` calls of ``fn`` after one warm-up call (caches, lazy imports)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def print_rows(title: str, rows: list[dict]) -> None:
    """A header line, then one aligned line per row with its ratio and the peer it is measured against."""
    width = max(len(r["name"]) for r in rows)
    print(title)
    print(f"{'measurement':<{width}}  {'value':>10}  {'unit':<9} ratio")
    for r in rows:
        vs = f" (vs {r['vs']})" if r.get("vs") else ""
        ratio = r.get("ratio", "")
        print(f"{r['name']:<{width}}  {r['value']:>10}  {r.get('unit', ''):<9} {ratio}{vs}")


def write_section(path: Path, start: str, end: str, title: str, command: str, lines: list[str]) -> None:
    """Replace the text between the markers ``start`` and ``end`` in ``path`` (append it when they are absent)
    with ``title``, the exact ``command`` and ``lines``; written atomically (temp file + rename)."""
    section = [start, title, "", "Command:", "", "```", command, "```", "", *lines, end]
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if start in text and end in text:
        text = text[:text.index(start)] + "\n".join(section) + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + "\n".join(section) + "\n"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def finish_experiment(script: str, argv: list[str], lines: list[str], results: list[dict], json_path: Path,
                      write_results: Callable[[list[str], str, Path], None], results_md: Path) -> None:
    """An experiment's end: print its table, write every number to ``json_path`` and the table with the exact
    command (``script`` and its arguments ``argv``) into ``results_md``."""
    import json
    import shlex

    command = f"OPTIQ_TEST_DATA=/work/shared/data .venv/bin/python benchmarks/{script} " + \
        " ".join(shlex.quote(a) for a in argv)
    print("\n".join(lines))
    json_path.write_text(json.dumps(results, indent=1))
    write_results(lines, command.strip(), results_md)


def bench_main(run: Callable[..., list[dict]], description: str, quick_help: str, argv: list[str] | None = None) -> int:
    """A bench script's command line: ``--quick``, then one line per row of ``run(quick=...)`` (name, value, unit,
    ratio to the peer)."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help=quick_help)
    args = parser.parse_args(argv)
    for r in run(quick=args.quick):
        print(f"{r['name']:<64} {r['value']:>8} {r['unit']:<9} x{r['ratio']} vs {r['vs']}")
    return 0
