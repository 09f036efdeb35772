"""Read-only queries behind the Results and Predict pages: studies, their runs, predictions and curves."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import func, select

from db.datasets import visible_to
from db.engine import get_engine, session_scope
from db.models import (
    Dataset,
    DatasetVersion,
    Entry,
    EpochMetric,
    Job,
    ModelArtifact,
    Prediction,
    Run,
    Structure,
    Study,
)


@dataclass(frozen=True)
class StudyInfo:
    """What the Results page shows about a study before its numbers."""

    id: int
    name: str
    status: str
    dataset: str
    dataset_version: int
    dataset_version_id: int
    modes: list[Any]
    seeds: list[Any]
    config: dict[str, Any]
    results: dict[str, Any]
    created_by: str
    created_at: Any
    finished_at: Any
    target_label: str = "target"
    dataset_id: int | None = None

    @property
    def label(self) -> str:
        """How the study is named in a picker."""
        return f"#{self.id} {self.name} · {self.dataset} v{self.dataset_version} · {self.status}"


def study_status(study_status: str, job_status: str | None, cancel_requested: bool | None) -> str:
    """What a study is doing now, from its own row and its coordinating job's.

    The study row says "running" until its job has wound up; the job knows earlier: a cancel request makes it
    "cancelling", and a job that ended (cancelled, or failed when its worker died) ends the study too. A cancelled
    study is therefore never shown as running or in progress.
    """
    active = ("queued", "running")
    if study_status in active and job_status in ("succeeded", "failed", "cancelled"):
        return job_status
    if study_status in active and cancel_requested:
        return "cancelling"
    return study_status


def preferred_study(studies: list[StudyInfo], version_id: int | None, dataset_id: int | None) -> StudyInfo | None:
    """The study the Results page opens on: the latest finished (succeeded) study of the active dataset version,
    else of the active dataset; without one, the latest study of that version or dataset; without any study on
    the active dataset, the latest finished study of all, else the latest study.

    Args:
        studies: newest first (as :func:`list_studies` returns them).
        version_id: the active dataset version (None when none is chosen).
        dataset_id: its dataset.

    Returns:
        A study of ``studies``, or None when it is empty.
    """
    on_version = [s for s in studies if version_id is not None and s.dataset_version_id == version_id]
    on_dataset = [s for s in studies if dataset_id is not None and s.dataset_id == dataset_id]
    order = (
        [s for s in on_version if s.status == "succeeded"] + [s for s in on_dataset if s.status == "succeeded"]
        + on_version + on_dataset + [s for s in studies if s.status == "succeeded"] + studies
    )
    return order[0] if order else None


def target_label(version: DatasetVersion) -> str:
    """The target with its unit as an axis title, e.g. ``log10(σ / S cm⁻¹)`` or ``Band gap (eV)``: the one label of
    :func:`cosnet_core.units.target_label`, as on the Datasets and Predict pages."""
    from cosnet_core.units import target_label as label

    return label(version.target_name, version.target_unit, version.target_transform)


def list_studies(
    url: str | None = None, version_id: int | None = None, *, username: str | None = None, is_admin: bool = True
) -> list[StudyInfo]:
    """Studies the user may see (on their own or the lab's shared datasets), newest first; only those on
    ``version_id`` when given."""
    query = (
        select(Study, Dataset.name, DatasetVersion, Job.status, Job.cancel_requested)
        .join(DatasetVersion, Study.dataset_version_id == DatasetVersion.id)
        .join(Dataset, DatasetVersion.dataset_id == Dataset.id)
        .outerjoin(Job, Study.job_id == Job.id)
        .where(visible_to(username, is_admin))
        .order_by(Study.id.desc())
    )
    if version_id is not None:
        query = query.where(Study.dataset_version_id == version_id)
    with session_scope(url) as session:
        return [
            StudyInfo(
                id=study.id, name=study.name, status=study_status(study.status, job_status, cancel_requested),
                dataset=name, dataset_version=version.number,
                dataset_version_id=study.dataset_version_id, modes=list(study.modes), seeds=list(study.seeds),
                config=dict(study.config), results=dict(study.results), created_by=study.created_by,
                created_at=study.created_at, finished_at=study.finished_at, target_label=target_label(version),
                dataset_id=version.dataset_id,
            )
            for study, name, version, job_status, cancel_requested in session.execute(query)
        ]


def finished_runs(study_id: int, url: str | None = None) -> int:
    """How many runs of the study have succeeded (cheap; keys the Results page's cache while a study runs)."""
    with session_scope(url) as session:
        return int(session.scalar(
            select(func.count()).select_from(Run).where(Run.study_id == study_id, Run.status == "succeeded")
        ))


def study_predictions(study_id: int, url: str | None = None) -> pd.DataFrame:
    """The prediction table of a study (see :mod:`cosnet_core.report`): one row per (run, entry) of its finished
    runs, numbers only (``run_id, mode, seed, structure_fraction, entry_id, split, target, prediction, w_c,
    has_structure, structure_id``) and ``censored``: the entry's censored sign (its target is a bound, never scored
    as a measurement) or None. Describe the entries with :func:`study_entries`."""
    numbers = (
        select(
            Prediction.run_id, Run.mode, Run.seed, Run.structure_fraction, Prediction.entry_id,
            Prediction.split, Prediction.target, Prediction.value.label("prediction"),
            Prediction.composition_weight.label("w_c"), Prediction.has_structure, Prediction.structure_id,
            Entry.extra.label("censored"),  # the entry's JSON extras, reduced to its censored sign below
        )
        .join(Run, Prediction.run_id == Run.id)
        .join(Entry, Prediction.entry_id == Entry.id)
        .where(Run.study_id == study_id, Run.status == "succeeded")
        .order_by(Prediction.run_id, Prediction.entry_id)
    )
    with get_engine(url).connect() as connection:
        frame = _frame(connection, numbers)
    frame["has_structure"] = frame["has_structure"].astype(bool)
    frame["structure_fraction"] = frame["structure_fraction"].astype(float)
    frame["censored"] = [_censored_sign(extra) for extra in frame["censored"]]
    return frame


def _censored_sign(extra: object) -> str | None:
    """The ``censored`` sign inside an entry's extras (a dict, or its JSON text at the driver level), or None."""
    if isinstance(extra, str | bytes):
        try:
            extra = json.loads(extra)
        except ValueError:
            return None
    sign = extra.get("censored") if isinstance(extra, dict) else None
    return str(sign) if sign else None


def study_entries(study_id: int, url: str | None = None) -> pd.DataFrame:
    """One row per entry of the study's dataset version: ``entry_id, formula, composition, id, row_number`` and
    the source and external id of the entry's accepted structure (``structure_source``, ``structure_ref``)."""
    query = (
        select(
            Entry.id.label("entry_id"), Entry.raw_formula.label("formula"), Entry.composition,
            Entry.external_id.label("id"), Entry.row_number, Structure.source.label("structure_source"),
            Structure.external_id.label("structure_ref"),
        )
        .join(Study, Study.dataset_version_id == Entry.dataset_version_id)
        .outerjoin(Structure, Entry.structure_id == Structure.id)
        .where(Study.id == study_id, Entry.status == "kept")
    )
    with get_engine(url).connect() as connection:
        return _frame(connection, query)


def _frame(connection, query) -> pd.DataFrame:
    """Run a SELECT at the driver level and build a DataFrame from its plain tuples.

    Skipping SQLAlchemy's per-value result processing halves the time for the ~100k prediction rows of a large
    study; the callers convert the few typed columns (booleans come back as 0/1).
    """
    compiled = query.compile(dialect=connection.dialect)
    params = compiled.construct_params()
    if compiled.positional:
        args = tuple(params[name] for name in compiled.positiontup)
    else:
        args = params
    result = connection.exec_driver_sql(compiled.string, args)
    return pd.DataFrame.from_records(result.fetchall(), columns=list(result.keys()))


def study_epochs(study_id: int, url: str | None = None) -> pd.DataFrame:
    """Per-epoch training curves of every run of a study."""
    query = (
        select(EpochMetric.run_id, Run.mode, Run.seed, EpochMetric.epoch, EpochMetric.train_loss,
               EpochMetric.val_mae, EpochMetric.seconds)
        .join(Run, EpochMetric.run_id == Run.id)
        .where(Run.study_id == study_id)
        .order_by(EpochMetric.run_id, EpochMetric.epoch)
    )
    with get_engine(url).connect() as connection:
        return pd.read_sql(query, connection)


def study_runs(study_id: int, url: str | None = None) -> pd.DataFrame:
    """Provenance of every run of a study: mode, seed, status, device, timings, hyper-parameters, versions."""
    with session_scope(url) as session:
        runs = session.scalars(select(Run).where(Run.study_id == study_id).order_by(Run.id)).all()
        version = {}
        records = []
        for run in runs:
            if run.dataset_version_id not in version:
                dv = session.get(DatasetVersion, run.dataset_version_id)
                version[run.dataset_version_id] = f"{dv.dataset.name} v{dv.number}"
            artifact = run.artifact
            records.append({
                "run": run.id, "mode": run.mode, "seed": run.seed, "structure fraction": run.structure_fraction,
                "status": run.status, "device": run.device, "epochs": f"{run.epochs_done}/{run.n_epochs}",
                "best epoch": run.best_epoch, "best val MAE": run.best_val_mae,
                "duration (s)": run.duration_s, "dataset version": version[run.dataset_version_id],
                "structures used": len(run.structure_decisions or {}),
                "hyper-parameters": {k: run.config[k] for k in sorted(run.config)} if run.config else {},
                "code version": run.code_version, "error": run.error,
                "artifact": artifact.path if artifact else None,
                "representations": artifact.representations_path if artifact else None,
            })
    return pd.DataFrame(records)


@dataclass(frozen=True)
class ModelChoice:
    """A trained model the Predict page can use: a study's served model (the ensemble of its seeds for one mode), or
    one run's artifact.

    Attributes:
        label: how the picker names it.
        paths: its artifact files (one per seed).
        mode: the training mode.
        served: True for a study's served model (the ensemble of all its seeds), False for a single run.
        run_ids: the runs behind it (their training rows re-fit the forest of :func:`training_sets`).
    """

    label: str
    paths: tuple[str, ...]
    mode: str
    served: bool = False
    run_ids: tuple[int, ...] = ()


def model_choices(url: str | None = None, *, username: str | None = None, is_admin: bool = True) -> list[ModelChoice]:
    """Models trained on datasets the user may see.

    First the served models of each study, newest study first: per mode, the ensemble of all its succeeded seeds
    (their mean is the prediction, their spread the uncertainty), the mode with the lowest mean validation MAE first,
    so a study's default is chosen on validation error, never on test error. Then every single run, newest first.
    """
    query = (
        select(Study.id, Study.name, Run.id, Run.mode, Run.seed, Run.best_val_mae, ModelArtifact.path)
        .join(Run, ModelArtifact.run_id == Run.id)
        .join(Study, Run.study_id == Study.id, isouter=True)
        .join(DatasetVersion, Run.dataset_version_id == DatasetVersion.id)
        .join(Dataset, DatasetVersion.dataset_id == Dataset.id)
        .where(Run.status == "succeeded", Run.structure_fraction.is_(None), visible_to(username, is_admin))
        .order_by(Run.id.desc())
    )
    with session_scope(url) as session:
        rows = session.execute(query).all()
    ensembles: dict[tuple[int, str], list[tuple[str, float | None, int]]] = {}
    names: dict[int, str] = {}
    singles = []
    for study_id, study_name, run_id, mode, seed, val_mae, path in rows:
        singles.append(ModelChoice(f"run {run_id}: {mode}, seed {seed}", (path,), mode, run_ids=(run_id,)))
        if study_id is not None:
            ensembles.setdefault((study_id, mode), []).append((path, val_mae, run_id))
            names[study_id] = study_name

    def validation(members: list[tuple[str, float | None, int]]) -> float:
        values = [v for _, v, _ in members if v is not None and math.isfinite(v)]
        return sum(values) / len(values) if values else math.inf

    served = []
    for (study_id, mode), members in sorted(ensembles.items(), key=lambda kv: (-kv[0][0], validation(kv[1]))):
        score = validation(members)
        seeds = f"ensemble of {len(members)} seeds" if len(members) > 1 else "1 seed"
        note = f", validation MAE {score:.3g}" if math.isfinite(score) else ""
        served.append(ModelChoice(
            f"study {study_id} '{names[study_id]}': {mode}, {seeds}{note}",
            tuple(sorted(path for path, _, _ in members)), mode, served=True,
            run_ids=tuple(sorted(run_id for _, _, run_id in members)),
        ))
    return served + singles


def training_sets(run_ids: tuple[int, ...] | list[int], url: str | None = None) -> list[tuple[list[str], list[float]]]:
    """Per run, the formulas and targets of its training rows, in the order the run's jobs read them (the rows its
    forest baseline was fitted on): what :func:`cosnet_core.baselines.forest_predictions` re-fits the forest from.

    Args:
        run_ids: the runs (e.g. :attr:`ModelChoice.run_ids`, already filtered by visibility).
        url: database URL.

    Returns:
        One ``(formulas, targets)`` per run that stored training rows, in ``run_ids`` order.
    """
    query = (
        select(Prediction.run_id, Entry.composition, Entry.raw_formula, Prediction.target)
        .join(Entry, Prediction.entry_id == Entry.id)
        .where(Prediction.run_id.in_(list(run_ids)), Prediction.split == "train", Prediction.target.is_not(None))
        .order_by(Prediction.run_id, Entry.row_number, Entry.id)
    )
    with session_scope(url) as session:
        rows = session.execute(query).all()
    found: dict[int, tuple[list[str], list[float]]] = {}
    for run_id, composition, raw_formula, target in rows:
        formulas, targets = found.setdefault(run_id, ([], []))
        formulas.append(composition or raw_formula)
        targets.append(float(target))
    return [found[run_id] for run_id in run_ids if run_id in found]


def target_of_runs(run_ids: tuple[int, ...] | list[int], url: str | None = None) -> dict[str, str | None]:
    """The target of the dataset version the runs trained on: ``{"name", "unit", "transform"}`` (Nones when the runs
    are unknown), for labelling predictions (:func:`cosnet_core.units.target_label`)."""
    query = (select(DatasetVersion.target_name, DatasetVersion.target_unit, DatasetVersion.target_transform)
             .join(Run, Run.dataset_version_id == DatasetVersion.id).where(Run.id.in_(list(run_ids))).limit(1))
    with session_scope(url) as session:
        row = session.execute(query).first()
    if row is None:
        return {"name": None, "unit": None, "transform": "none"}
    return {"name": row[0], "unit": row[1], "transform": row[2] or "none"}
