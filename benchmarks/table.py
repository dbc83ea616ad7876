"""Printing benchmark rows (``{name, value, unit, ratio, vs}``) as a table, for each bench script's main()."""

from __future__ import annotations


def print_rows(title: str, rows: list[dict]) -> None:
    """A header line, then one aligned line per row with its ratio and the peer it is measured against."""
    width = max(len(r["name"]) for r in rows)
    print(title)
    print(f"{'measurement':<{width}}  {'value':>10}  {'unit':<9} ratio")
    for r in rows:
        vs = f" (vs {r['vs']})" if r.get("vs") else ""
        ratio = r.get("ratio", "")
        print(f"{r['name']:<{width}}  {r['value']:>10}  {r.get('unit', ''):<9} {ratio}{vs}")
