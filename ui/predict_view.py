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
CIF_TIMEOUT_S, CIF_MEMORY_MB = 10.0, 1024  # per CIF of a batch, parsed in a separate process
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
        refused: dict[str, str] = {}
        if structure_col:
            structures_dir = Path(folder) / "cifs"
            structures_dir.mkdir()
            cifs = {PurePosixPath(name).name: data for name, data in (read_cif_zip(cif_zip, limits) if cif_zip
                                                                         else {}).items()}
            refused = _refuse_unbounded_cifs(cifs, _referenced(table_path, structure_col))
            for name, data in cifs.items():
                if name not in refused:
                    (structures_dir / name).write_bytes(data)
        result = read_table(
            table_path, formula_col=formula_col, id_col=id_col, structure_col=structure_col,
            structures_dir=structures_dir, embedding=load_element_embedding(embedding_name),
        )
    errors = result.errors
    for name, reason in refused.items():  # say why the CIF is missing, not only that it is
        for value in (name, PurePosixPath(name).stem):
            errors.loc[errors["value"].astype(str) == value, "reason"] = reason
    return result.samples, errors


def bounded_structure(text: str, name: str = "the CIF"):
    """One uploaded CIF read in a bounded separate process (10 s, 1 GB), as a pymatgen ``Structure``.

    Raises:
        StructureError: the CIF cannot be used, took too long or needed too much memory (the reason says which).
    """
    from cosnet_core.bounded import map_bounded
    from cosnet_core.structure import DEFAULT_MAX_SITES, StructureError
    from cosnet_core.uploaded_cif import parse_cif

    ((status, value),) = map_bounded(parse_cif, [(text, DEFAULT_MAX_SITES, 0)],
                                     timeout_s=CIF_TIMEOUT_S * 1.5, memory_mb=CIF_MEMORY_MB)
    if status != "ok":
        raise StructureError(name, value if status == "error" else f"reading it {value}")
    return value


def _referenced(table_path: Path, structure_col: str) -> set[str]:
    """The structure file names a table refers to (the reader itself reports a missing column)."""
    try:
        separator = "\t" if table_path.suffix == ".tsv" else ","
        cells = pd.read_csv(table_path, sep=separator, dtype=str, keep_default_na=False, usecols=[structure_col],
                            encoding="utf-8-sig")[structure_col]
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError):
        return set()
    return {cell.strip() for cell in cells if cell.strip()}


def _refuse_unbounded_cifs(cifs: dict[str, bytes], referenced: set[str]) -> dict[str, str]:
    """Parse the referenced CIFs in a bounded separate process first (as the Datasets page does); returns
    ``{file name: reason}`` of those that cannot be used, which are then not handed to the reader at all."""
    from cosnet_core.bounded import map_bounded
    from cosnet_core.structure import DEFAULT_MAX_SITES
    from cosnet_core.uploaded_cif import summarize_cif

    names = sorted(n for n in cifs if n in referenced or PurePosixPath(n).stem in referenced)
    outcomes = map_bounded(
        summarize_cif,
        [(cifs[n].decode("utf-8-sig", errors="replace"), DEFAULT_MAX_SITES, 0) for n in names],
        timeout_s=CIF_TIMEOUT_S * 1.5, memory_mb=CIF_MEMORY_MB,
    )
    return {name: value if status == "error" else f"reading it {value}"
            for name, (status, value) in zip(names, outcomes, strict=True) if status != "ok"}


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


__all__ = ["bounded_structure", "NOT_FINITE", "RESULT_COLUMNS", "ArtifactError", "TableError", "batch_result", "load_models", "predict_in_chunks", "read_batch"]
