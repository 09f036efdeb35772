"""How long the Results page takes to render a study over a 6,000-row dataset (goal: under 2 s).

The study has the paper's protocol shape: 3 modes x 5 seeds = 15 runs, each with a prediction for every one of
the 6,000 rows (90,000 prediction rows), 200 epochs of curves per run. The page is rendered with Streamlit's
AppTest (the whole script: queries, Table 1, per-sample ensemble, charts, tables), cold (first render in a fresh
process cache) and warm (a rerun, as when a user changes a filter). The peer measured in the same run is the
Training page's empty state, i.e. the fixed cost of a Streamlit script run on this machine.

    python bench/bench_results_page.py [--rows 6000]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODES = ("composition", "bimodal-aug", "bimodal")
SEEDS = (0, 1, 2, 3, 4)


def build_study(n_rows: int) -> None:
    """Insert a finished 3 x 5 study over ``n_rows`` entries with bulk inserts."""
    from sqlalchemy import insert

    from db.engine import get_engine, session_scope
    from db.models import Dataset, DatasetVersion, Entry, EpochMetric, Prediction, Run, Structure, Study

    rng = np.random.default_rng(0)
    with session_scope() as session:
        version = DatasetVersion(dataset=Dataset(name="bench"), number=1, target_name="Band gap", target_unit="eV",
                                 n_rows=n_rows, n_kept=n_rows)
        structure = Structure(source="library", formula="NaCl", chemsys="Cl-Na", nsites=2, cif="x",
                              content_hash="b" * 64)
        study = Study(name="bench", dataset_version=version, modes=list(MODES), seeds=list(SEEDS),
                      status="succeeded")
        session.add_all([study, structure])
        session.flush()
        version_id, study_id, structure_id = version.id, study.id, structure.id
    targets = rng.uniform(0, 5, n_rows)
    has = rng.random(n_rows) < 0.4
    engine = get_engine()
    with engine.begin() as connection:
        connection.execute(insert(Entry), [
            {"dataset_version_id": version_id, "row_number": i + 2, "external_id": f"r{i}",
             "raw_formula": f"Na{i % 7 + 1}Cl{i % 5 + 1}", "composition": "NaCl", "target": float(targets[i]),
             "status": "kept", "extra": {}, "match_state": "accepted" if has[i] else "unmatched",
             "structure_id": structure_id if has[i] else None}
            for i in range(n_rows)
        ])
        entry_ids = [row[0] for row in connection.exec_driver_sql(
            "SELECT id FROM entries WHERE dataset_version_id = ? ORDER BY id", (version_id,))]
        splits = np.where(np.arange(n_rows) % 5 == 0, "test", np.where(np.arange(n_rows) % 5 == 1, "val", "train"))
        for mode in MODES:
            for seed in SEEDS:
                run_id = connection.execute(insert(Run).values(
                    study_id=study_id, dataset_version_id=version_id, mode=mode, seed=seed, status="succeeded",
                    config={"lr": 0.01}, structure_decisions={}, test_metrics={}, n_epochs=200, epochs_done=200,
                    requested_device="auto", cancel_requested=False,
                )).inserted_primary_key[0]
                connection.execute(insert(EpochMetric), [
                    {"run_id": run_id, "epoch": e, "train_loss": 1 / e, "val_mae": 1 / e + 0.3, "seconds": 0.5}
                    for e in range(1, 201)
                ])
                noise = rng.normal(0, 0.4, n_rows)
                connection.execute(insert(Prediction), [
                    {"run_id": run_id, "entry_id": entry_ids[i], "split": str(splits[i]), "target": float(targets[i]),
                     "value": float(targets[i] + noise[i]), "has_structure": bool(has[i]),
                     "composition_weight": 0.6 if has[i] and mode != "composition" else 1.0,
                     "structure_id": structure_id if has[i] else None}
                    for i in range(n_rows)
                ])


def render_seconds(page: str, repeats: int) -> list[float]:
    """Wall seconds of AppTest renders of ``page``: the first cold, the rest warm reruns."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.run()
    at.switch_page(page)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - start)
        assert not at.exception, at.exception
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=6000)
    parser.add_argument("--repeats", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        os.environ["COSNET_DATA_DIR"] = folder
        os.environ["COSNET_DATABASE_URL"] = f"sqlite:///{folder}/bench.db"
        from db.engine import upgrade_database

        upgrade_database()
        start = time.perf_counter()
        build_study(args.rows)
        print(f"stored a 3 modes x 5 seeds study over {args.rows} rows in {time.perf_counter() - start:.1f} s")
        results = render_seconds("pages/results.py", args.repeats)
        peer = render_seconds("pages/training.py", args.repeats)
    cold, warm = results[0], statistics.median(results[1:])
    peer_warm = statistics.median(peer[1:])
    print(f"machine: {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    print(f"Results page, cold render: {cold:.2f} s  (goal < 2 s: {'met' if cold < 2 else 'NOT met'})")
    print(f"Results page, warm rerun:  {warm:.2f} s")
    print(f"peer: empty Training page rerun {peer_warm:.3f} s; Results warm / peer = {warm / peer_warm:.1f}x")


if __name__ == "__main__":
    main()
