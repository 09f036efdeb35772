"""A study stored directly in the database with known predictions, for the Results and Predict page tests."""

from __future__ import annotations

import numpy as np

from db.engine import session_scope
from db.models import Dataset, DatasetVersion, Entry, EpochMetric, Prediction, Run, Structure, Study

FORMULAS = ["NaCl", "KCl", "LiF", "MgO", "CaO", "ZnS", "GaAs", "SiC", "AlN", "BN", "TiO2", "SnO2"]


def store_study(n_entries: int = 12, seeds=(0, 1), modes=("composition", "bimodal-aug"), results=None) -> int:
    """Store a finished study over ``n_entries`` rows; every third row has a structure; the last third is test;
    ``results`` (e.g. baselines) is stored as the study's results.

    Predictions are ``target + error`` with a deterministic error per (mode, seed, entry).
    """
    rng = np.random.default_rng(7)
    with session_scope() as session:
        version = DatasetVersion(
            dataset=Dataset(name="toy gaps"), number=1, target_name="Band gap", target_unit="eV",
            n_rows=n_entries, n_kept=n_entries,
        )
        structure = Structure(source="library", external_id="mp-22862", formula="NaCl", chemsys="Cl-Na", nsites=2,
                              cif="data_NaCl\n", content_hash="a" * 64)
        entries = []
        for i in range(n_entries):
            entries.append(Entry(
                dataset_version=version, row_number=i + 2, external_id=f"r{i}",
                raw_formula=FORMULAS[i % len(FORMULAS)] + ("" if i < len(FORMULAS) else str(i)),
                composition=FORMULAS[i % len(FORMULAS)], target=float(i % 5), status="kept",
                structure=structure if i % 3 == 0 else None,
            ))
        study = Study(name="toy", dataset_version=version, modes=list(modes), seeds=list(seeds), status="succeeded",
                      config={"epochs": 3}, results=dict(results or {}))
        session.add_all([study, *entries])
        session.flush()
        for mode in modes:
            for seed in seeds:
                run = Run(study=study, dataset_version_id=version.id, mode=mode, seed=seed, status="succeeded",
                          config={"lr": 0.01}, n_epochs=3, epochs_done=3, device="cpu")
                session.add(run)
                session.flush()
                for epoch in (1, 2, 3):
                    session.add(EpochMetric(run_id=run.id, epoch=epoch, train_loss=1.0 / epoch, val_mae=2.0 / epoch,
                                            seconds=0.1))
                for i, entry in enumerate(entries):
                    has = entry.structure is not None
                    error = float(rng.normal(0, 0.5 if mode == "composition" else 0.3))
                    session.add(Prediction(
                        run_id=run.id, entry_id=entry.id,
                        split="test" if i >= 2 * n_entries // 3 else ("val" if i >= n_entries // 2 else "train"),
                        target=entry.target, value=entry.target + error,
                        composition_weight=(0.4 + 0.1 * seed) if has and mode != "composition" else 1.0,
                        has_structure=has, structure_id=structure.id if has else None,
                    ))
        return study.id
