"""Helpers of the Predict page: load models once, read an uploaded batch with per-row reasons, predict in chunks."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd
import streamlit as st

from cosnet_core.artifact import ArtifactError, Ensemble, load_artifact
from cosnet_core.embeddings import load_element_embedding
from cosnet_core.ingest import IngestError, IngestLimits, read_cif_zip
from cosnet_core.sample import Sample
from cosnet_core.tabular import MAX_ABS_TARGET, TableError, TableReadResult, read_table

NOT_FINITE = ("prediction: the model gives no usable value for this row (NaN, infinite or beyond ±1e15, the "
              "largest target a model learns from); it is not shown")
CIF_TIMEOUT_S, CIF_MEMORY_MB = 10.0, 1024  # per CIF of a batch, parsed in a separate process
RESULT_COLUMNS = ["line", "id", "composition", "prediction", "prediction_std", "has_structure", "w_c", "warning",
                  "reason"]


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
) -> TableReadResult:
    """Read an uploaded table (and CIF zip) into samples plus one error row per refused line.

    A row whose structure file is not in the zip is kept without a structure (predicted from its composition) and
    listed in ``warnings``; a CIF that cannot be read, or a name leading out of the zip, refuses the row.

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
        try:
            result = read_table(
                table_path, formula_col=formula_col, id_col=id_col, structure_col=structure_col,
                structures_dir=structures_dir, embedding=load_element_embedding(embedding_name),
                missing_structure="composition",
            )
        except TableError as error:  # the uploaded file's name, not the server's copy of it
            raise TableError(str(error).replace(table_path.name, table_name)) from error
    if refused:  # a CIF refused by the bounded parse is unreadable, not missing: the row is refused with its reason
        result = _refuse_unreadable(result, refused)
    return result


def _refuse_unreadable(result: TableReadResult, refused: dict[str, str]) -> TableReadResult:
    """Move the rows whose CIF the bounded parse refused from the kept rows (where the reader put them, without a
    structure, as if the file were missing) to the errors, with the parser's reason."""
    names = {value: reason for name, reason in refused.items() for value in (name, PurePosixPath(name).stem)}
    moved = result.warnings[result.warnings["value"].astype(str).isin(names)]
    if moved.empty:
        return result
    moved = moved.assign(reason=moved["value"].astype(str).map(names))
    lines = set(moved["line"].astype(int))
    kept = [(s, line) for s, line in zip(result.samples, result.lines, strict=True) if line not in lines]
    errors = pd.concat([result.errors, moved], ignore_index=True).sort_values("line", kind="stable")
    return TableReadResult(
        samples=[s for s, _ in kept], errors=errors.reset_index(drop=True), lines=[line for _, line in kept],
        warnings=result.warnings.drop(moved.index).reset_index(drop=True), formulas=result.formulas,
    )


def bounded_structure(text: str, name: str = "the CIF"):
    """One uploaded CIF read in a bounded separate process (10 s, 1 GB), as a pymatgen ``Structure``.

    Raises:
        StructureError: the CIF cannot be used, took too long or needed too much memory (the reason says which).
    """
    from cosnet_core.bounded import map_bounded
    from cosnet_core.structure_io import DEFAULT_MAX_SITES, StructureError
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
    ``{file name: reason}`` of those that cannot be used, which are then not handed to the reader at all.

    The reading runs in a worker process of its own (:func:`ui.background.start_reading`), not in bounded children
    started from the Streamlit server: there, each forkserver child first re-runs the server's ``__main__``
    (``app.py``), whose login gate ends it with ``COSNET_AUTH=accounts`` (an ``EOFError`` traceback on the page in a
    real server, unseen in AppTest; ``tests/e2e/test_two_users_hostile.py`` found it).
    """
    import hashlib

    from cosnet_core.structure_io import DEFAULT_MAX_SITES
    from ui.background import start_reading

    names = sorted(n for n in cifs if n in referenced or PurePosixPath(n).stem in referenced)
    if not names:
        return {}
    chosen = {name: cifs[name] for name in names}
    digest = hashlib.sha256(b"".join(name.encode() + b"\0" + chosen[name] + b"\0" for name in names)).hexdigest()
    reading, _ = start_reading(digest, chosen, max_sites=DEFAULT_MAX_SITES, timeout_s=CIF_TIMEOUT_S * 1.5,
                               memory_mb=CIF_MEMORY_MB)
    reading.wait(None)
    return dict(reading.outcome(names).errors)


def batch_result(read: TableReadResult, predicted: pd.DataFrame) -> pd.DataFrame:
    """Predicted rows first, then the refused rows with their line and reason, in one table.

    Every row has its integer file line; ``composition`` is always the row's formula (the reduced formula of a
    predicted row, the text as given of a refused one), never another cell; ``warning`` says how a predicted row
    departs from its input (e.g. its CIF is not in the zip, so it was predicted from the composition alone).
    """
    samples, errors = read.samples, read.errors
    warnings = {int(w.line): f"{w.column} {w.value!r}: {w.reason}" for w in read.warnings.itertuples(index=False)}
    good = predicted.assign(
        composition=[s.composition.reduced_formula for s in samples],
        line=list(read.lines),
        warning=[warnings.get(line, "") for line in read.lines],
        reason="",
    )
    values = good["prediction"].astype(float)
    not_finite = ~np.isfinite(values) | (values.abs() > MAX_ABS_TARGET)
    if not_finite.any():  # never a silent NaN or inf: the row says so
        good.loc[not_finite, ["prediction", "prediction_std"]] = np.nan
        good.loc[not_finite, "reason"] = NOT_FINITE
    lines = [int(line) for line in errors["line"]]
    bad = pd.DataFrame({
        "line": lines, "id": errors["id"],
        "composition": [read.formulas.get(line, "") for line in lines],
        "reason": (errors["column"].astype(str) + ": " + errors["reason"].astype(str)).tolist(),
    })  # the cell's value is not repeated: a structure cell may hold a server path the user typed
    table = pd.concat([good, bad], ignore_index=True)
    table["line"] = table["line"].astype("Int64")
    extra = [c for c in table.columns if c not in RESULT_COLUMNS]
    return table.reindex(columns=RESULT_COLUMNS + extra)


__all__ = ["bounded_structure", "NOT_FINITE", "RESULT_COLUMNS", "ArtifactError", "TableError", "batch_result", "load_models", "predict_in_chunks", "read_batch"]
