"""Censored rows (targets that are bounds) are never scored in Table 1 and are marked in the parity plot
(issue 16 item 4), on the page, in the Results' Table 1 and in the study results the jobs store."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sqlalchemy import select, update

from cosnet_core.report import table1
from db.engine import session_scope
from db.models import Entry, Prediction, Run
from db.results import study_predictions
from tests.pages.results_fixtures import store_study


def _censor_first_test_row(study_id: int) -> int:
    """Mark entry r8 (a test row) as an upper bound and make every prediction of it 100 off."""
    with session_scope() as session:
        entry = session.scalars(select(Entry).where(Entry.external_id == "r8")).one()
        entry.extra = {**(entry.extra or {}), "censored": "<"}
        run_ids = session.scalars(select(Run.id).where(Run.study_id == study_id)).all()
        session.execute(update(Prediction).where(Prediction.entry_id == entry.id, Prediction.run_id.in_(run_ids))
                        .values(value=Prediction.target + 100.0))
        return entry.id


def test_table1_leaves_censored_test_rows_out_and_counts_them(app_env):
    study_id = store_study(n_entries=12)
    before = table1(study_predictions(study_id)).long.set_index(["subset", "mode"])
    censored_id = _censor_first_test_row(study_id)
    predictions = study_predictions(study_id)
    assert set(predictions.loc[predictions["entry_id"] == censored_id, "censored"]) == {"<"}
    assert predictions.loc[predictions["entry_id"] != censored_id, "censored"].isna().all()
    result = table1(predictions)
    after = result.long.set_index(["subset", "mode"])
    assert result.n_censored_excluded == 1
    assert after.loc[("all", "composition"), "n"] == before.loc[("all", "composition"), "n"] - 1 == 3
    # the numbers are those of the three measured test rows: the 100-off prediction of the bound never counts
    test = predictions[(predictions["split"] == "test") & (predictions["entry_id"] != censored_id)]
    per_run = test[test["mode"] == "composition"].groupby("run_id").apply(
        lambda run: float(np.abs(run["prediction"] - run["target"]).mean()), include_groups=False)
    assert after.loc[("all", "composition"), "mae_mean"] == pytest.approx(per_run.mean())
    assert after.loc[("all", "composition"), "mae_mean"] < 5
    assert after.loc[("all", "composition:ensemble"), "n"] == 3

    # the study results the jobs store (metrics.json's twin) agree
    from pymatgen.core import Lattice
    from pymatgen.core import Structure as Crystal

    from db.models import Structure
    from jobs.training import compute_study_results

    with session_scope() as session:  # Table 2 reads the structure's CIF: give the fixture's a real one
        cif = Crystal(Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]).to(fmt="cif")
        session.execute(update(Structure).values(cif=cif))

    stored = compute_study_results(f"sqlite:///{app_env / 'cosnet.db'}", study_id)
    assert stored["table1"]["composition"]["all"]["n"] == 3
    assert stored["table1"]["composition"]["all"]["n_censored_excluded"] == 1
    assert stored["table1"]["composition"]["all"]["mae_mean"] == pytest.approx(per_run.mean())
    assert stored["ensemble"]["composition"]["all"]["n_censored_excluded"] == 1


def test_the_results_page_says_so_and_marks_the_bound_in_the_parity_plot(app_test):
    study_id = store_study(n_entries=12)
    _censor_first_test_row(study_id)
    at = app_test()
    at.switch_page("pages/results.py")
    at.run()
    assert not at.exception, at.exception
    assert any("1 test row(s) hold a bound" in i.value for i in at.info)
    assert at.dataframe[0].value.loc["complete", "test rows"] == 3
    charts = [json.loads(c.proto.spec) for c in at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart")]
    parity = next(c for c in charts if "Parity" in json.dumps(c.get("title", "")))
    layer = next(layer for layer in parity["layer"] if "shape" in layer.get("encoding", {}))
    assert layer["encoding"]["shape"]["scale"]["range"] == ["circle", "triangle-down"]
    # the rows behind it: the bound r8 is drawn as a bound, r9 as a measurement
    from cosnet_core.report import per_sample
    from db.results import study_entries
    from ui.results_view import parity_chart

    samples = per_sample(study_predictions(study_id), "composition").merge(study_entries(study_id), on="entry_id")
    chart = parity_chart(samples[samples["split"] == "test"], "gap (eV)").to_dict()
    values = next(rows for rows in chart["datasets"].values() if rows and "value" in rows[0])
    kinds = {row["id"]: row["value"] for row in values}
    assert kinds == {"r8": "bound (censored, not scored)", "r9": "measurement", "r10": "measurement",
                     "r11": "measurement"}
