"""Benchmark of issue 6: match 5,000 formulas against the 2,433-structure library in under 10 s.

Formulas: the 4,604 experimental band-gap compositions (matbench_expt_gap) followed by OBELiX train
``Reduced Composition`` values until 5,000 (unparseable ones are skipped and counted). Library: the shared
``mp_structure_library.csv.gz`` (imported without deduplication: its MP ids are distinct materials; ``--dedup``
also times an import with StructureMatcher deduplication).

Printed: library import seconds, matching seconds, the ratio of matching time to the 10 s goal (< 1 is good),
and, as a peer measured in the same run, a naive matcher that scans every library entry for every formula
(run on the first ``--naive-rows`` formulas and scaled to 5,000), with the speed-up of the indexed matcher.

Run: ``/work/venv/bin/python bench/bench_matching.py [--dedup] [--data ../shared/data]`` from the repository root.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections import Counter
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cosnet_core.composition import FormulaError, parse_formula  # noqa: E402
from cosnet_core.matching import auto_accept, composition_distance, fractional_amounts, match_many  # noqa: E402
from cosnet_core.sources.local_library import StructureLibrary  # noqa: E402

GOAL_SECONDS = 10.0
N_FORMULAS = 5000


def load_formulas(data: Path) -> tuple[list[str], int]:
    """5,000 parseable formulas (band gap first, then OBELiX) and the number of unparseable ones skipped."""
    band_gap = pd.read_csv(data / "band_gap" / "matbench_expt_gap.csv")["composition"].astype(str).tolist()
    obelix = pd.read_csv(data / "li_conductivity" / "train.csv")["Reduced Composition"].astype(str).tolist()
    formulas, skipped = [], 0
    for text in band_gap + obelix:
        if len(formulas) == N_FORMULAS:
            break
        try:
            parse_formula(text)
        except FormulaError:
            skipped += 1
            continue
        formulas.append(text)
    return formulas, skipped


def naive_match(formulas: list[str], library: StructureLibrary, max_distance: float = 0.1) -> int:
    """Peer: for every formula, scan all entries (reduced formula equality, else same element set and distance)."""
    entries = [(entry.formula, set(library.fractions(entry)), library.fractions(entry)) for entry in library]
    hits = 0
    for text in formulas:
        composition = parse_formula(text)
        reduced = composition.reduced_formula
        own = fractional_amounts(composition)
        exact = [formula for formula, _, _ in entries if formula == reduced]
        if not exact:
            exact = [
                formula
                for formula, elements, fractions in entries
                if elements == set(own) and composition_distance(own, fractions) <= max_distance
            ]
        hits += bool(exact)
    return hits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("COSNET_SHARED_DATA", REPO.parent / "shared" / "data")))
    parser.add_argument("--dedup", action="store_true", help="also time an import with StructureMatcher dedup")
    parser.add_argument("--naive-rows", type=int, default=500)
    args = parser.parse_args()
    csv = args.data / "mp_structures" / "mp_structure_library.csv.gz"

    print(f"machine: {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
          f"date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    start = time.perf_counter()
    library = StructureLibrary.from_table(csv, deduplicate=False)
    import_s = time.perf_counter() - start
    print(f"library import (no dedup): {len(library)} entries, {len(library.formulas)} formulas in {import_s:.2f} s")
    if args.dedup:
        start = time.perf_counter()
        deduplicated = StructureLibrary.from_table(csv, deduplicate=True)
        print(f"library import (StructureMatcher dedup): {len(deduplicated)} entries, "
              f"{len(deduplicated.duplicates)} merged, in {time.perf_counter() - start:.2f} s")

    formulas, skipped = load_formulas(args.data)
    print(f"formulas: {len(formulas)} ({len(set(formulas))} distinct; {skipped} unparseable skipped)")

    start = time.perf_counter()
    results = match_many(formulas, [library])
    match_s = time.perf_counter() - start
    statuses = Counter(result.status for result in results)
    accepted = sum(auto_accept(result) is not None for result in results)
    print(f"statuses: {dict(statuses)}; auto-accepted (unambiguous rule): {accepted}")

    rows = formulas[: args.naive_rows]
    start = time.perf_counter()
    naive_match(rows, library)
    naive_s = (time.perf_counter() - start) * len(formulas) / len(rows)

    print(f"matching {len(formulas)} formulas: {match_s:.2f} s  -> ratio to the {GOAL_SECONDS:.0f} s goal: "
          f"{match_s / GOAL_SECONDS:.3f} ({'PASS' if match_s < GOAL_SECONDS else 'FAIL'})")
    print(f"peer (naive scan of every entry, {len(rows)} rows scaled to {len(formulas)}): {naive_s:.2f} s  "
          f"-> indexed matcher is {naive_s / match_s:.1f}x faster")


if __name__ == "__main__":
    main()
