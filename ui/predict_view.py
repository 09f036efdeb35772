"""Helpers of the Predict page: load models once, read an uploaded batch with per-row reasons, predict in chunks."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd
import streamlit as st

from cosnet_core.artifact import ArtifactError, Ensemble, load_artifact
from cosnet_core.data import Sample
from cosnet_core.embeddings import load_element_embedding
from cosnet_core.ingest import IngestError, IngestLimits, read_cif_zip
from cosnet_core.tabular import MAX_ABS_TARGET, TableError, read_table

NOT_FINITE = ("prediction: the model gives no usable value for this row (NaN, infinite or beyond ±1e15, the "
              "largest target a model learns from); it is not shown")
RESULT_COLUMNS = ["line", "id", "composition", "prediction", "prediction_std", "has_structure", "w_c", "reason"]


@st.cache_resource(show_spinner="Loading the model…", max_entries=4)
def load_models(paths: tuple[str, ...]) -> Ensemble:
    """The artifacts at ``paths`` as one ensemble (loaded with ``weights_only=True``), cached per process."""
    return Ensemble([load_artifact(path) for path in paths])


def predict_in_chunks(
    ensemble: Ensemble, samples: Sequence[Sample], progress: Callable[[float], None], chunk: int = 256
) -> pd.DataFrame:
    """Ensemble predictions (mean, std, w_C) of ``samples``, reporting the fraction done after each chunk."""
    parts = []
    for start in range(0, len(samples), chunk):
        parts.append(ensemble.predict(samples[start:start + chunk]))
        progress(min(1.0, (start + chunk) / max(len(samples), 1)))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=RESULT_COLUMNS)


def read_batch(
    table_bytes: bytes,
    table_name: str,
    *,
    formula_col: str,
    id_col: str | None,
    structure_col: str | None,
    cif_zip: bytes | None,
    embedding_name: str,
) -> tuple[list[Sample], pd.DataFrame]:
    """Read an uploaded table (and CIF zip) into samples plus one error row per refused line.

    Raises:
        IngestError / TableError: the file as a whole is unusable (too large, unreadable, missing column, bad zip).
    """
    limits = IngestLimits.from_env()
    if len(table_bytes) > limits.max_upload_bytes:
        raise IngestError(f"the table is larger than the limit of {limits.max_upload_bytes // 2**20} MB")
    suffix = ".tsv" if table_name.lower().endswith(".tsv") else ".csv"
    with tempfile.TemporaryDirectory(prefix="cosnet-predict-") as folder:
        table_path = Path(folder) / f"table{suffix}"
        table_path.write_bytes(table_bytes)
        structures_dir = None
        if structure_col:
            structures_dir = Path(folder) / "cifs"
            structures_dir.mkdir()
            for name, data in (read_cif_zip(cif_zip, limits) if cif_zip else {}).items():
                (structures_dir / PurePosixPath(name).name).write_bytes(data)
        result = read_table(
            table_path, formula_col=formula_col, id_col=id_col, structure_col=structure_col,
            structures_dir=structures_dir, embedding=load_element_embedding(embedding_name),
        )
    return result.samples, result.errors


def batch_result(samples: Sequence[Sample], predicted: pd.DataFrame, errors: pd.DataFrame) -> pd.DataFrame:
    """Predicted rows first, then the refused rows with their line and reason, in one table."""
    good = predicted.assign(
        composition=[s.composition.reduced_formula for s in samples],
        line=[int(s.id[3:]) if s.id.startswith("row") and s.id[3:].isdigit() else None for s in samples],
        reason="",
    )
    values = good["prediction"].astype(float)
    not_finite = ~np.isfinite(values) | (values.abs() > MAX_ABS_TARGET)
    if not_finite.any():  # never a silent NaN or inf: the row says so
        good.loc[not_finite, ["prediction", "prediction_std"]] = np.nan
        good.loc[not_finite, "reason"] = NOT_FINITE
    bad = pd.DataFrame({
        "line": errors["line"], "id": errors["id"], "composition": errors["value"].astype(str),
        "reason": errors["column"].astype(str) + ": " + errors["reason"].astype(str),
    })
    return pd.concat([good, bad], ignore_index=True).reindex(columns=RESULT_COLUMNS)


__all__ = ["NOT_FINITE", "RESULT_COLUMNS", "ArtifactError", "TableError", "batch_result", "load_models", "predict_in_chunks", "read_batch"]
