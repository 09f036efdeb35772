"""The representation export joins each run's stored C and S to the entries it belongs to."""

import numpy as np
import pandas as pd

from ui.results_view import representations_frame


def test_representations_frame_reads_every_run(tmp_path):
    paths = []
    for run in (1, 2):
        path = tmp_path / f"run-{run}.npz"
        np.savez(path, entry_id=np.array([10, 11]), split=np.array(["train", "test"]),
                 composition_repr=np.full((2, 3), run, dtype=np.float32), structure_repr=np.zeros((2, 3)),
                 composition_weight=np.array([1.0, 0.25]), has_structure=np.array([False, True]))
        paths.append(str(path))
    runs = pd.DataFrame({"run": [1, 2, 3], "mode": ["composition", "bimodal", "bimodal"], "seed": [0, 0, 1],
                         "representations": paths + [None]})
    entries = pd.DataFrame({"entry_id": [10, 11], "id": ["a", "b"], "formula": ["NaCl", "KCl"]})
    frame = representations_frame(runs, entries)
    assert len(frame) == 4 and list(frame.columns[:9]) == [
        "run", "mode", "seed", "entry_id", "id", "formula", "split", "has_structure", "w_c"]
    assert [c for c in frame.columns if c.startswith(("C_", "S_"))] == ["C_0", "C_1", "C_2", "S_0", "S_1", "S_2"]
    second = frame[(frame["run"] == 2) & (frame["id"] == "b")].iloc[0]
    assert second["C_1"] == 2.0 and second["w_c"] == 0.25 and second["formula"] == "KCl"
