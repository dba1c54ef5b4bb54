"""The last step of ``make bench``: every benchmark's ratios and targeted figures in one table,
read from build/bench/<name>.json, with each target beside its value and whether it is met.

Run: ``python -m bench.summary confirm_path http_confirm ...`` (the benchmarks to list).
"""

from __future__ import annotations

import json
import sys

from bench.common import OUTPUT, describe_target


def lines(name: str) -> list[tuple[str, float, str, str]]:
    """(measure, value, unit, target verdict) for one benchmark's ratios and targeted rows."""
    path = OUTPUT / f"{name}.json"
    if not path.exists():
        return [(f"(no {path.name}: the benchmark did not run)", float("nan"), "", "")]
    data = json.loads(path.read_text())
    found = [
        (row["measure"], row["value"], row["unit"], describe_target(row["value"], row["target"]))
        for row in data["rows"]
        if row.get("target")
    ]
    targets = data.get("targets", {})
    found += [
        (ratio, value, "x", describe_target(value, targets.get(ratio)))
        for ratio, value in data["ratios"].items()
    ]
    return found


def main(names: list[str]) -> int:
    """Print the table; exit status 1 when a target is not met, so a run can be checked."""
    table = [(name, *line) for name in names for line in lines(name)]
    width = max([len(f"{n}: {m.strip()}") for n, m, *_ in table] + [20])
    print("\n== summary: every ratio, and each target beside its value")
    for name, measure, value, unit, verdict in table:
        label = f"{name}: {measure.strip()}"
        print(f"  {label:<{width}}  {value:>10.3f} {unit:<6} {verdict}".rstrip())
    return 1 if any("NOT MET" in verdict for *_, verdict in table) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
