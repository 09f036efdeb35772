"""The whole COSNet Studio domain as SQLAlchemy 2 typed models.

Every step of the flow writes its input and output here, so each result can be traced back:
run -> dataset version, structure decisions, hyper-parameters, seed, code version.

    Dataset 1-n DatasetVersion 1-n Entry n-1 Structure (the accepted one)
    Entry 1-n MatchCandidate n-1 Structure;  Entry 1-n ReviewDecision
    DatasetVersion 1-n Study 1-n Run 1-n EpochMetric / Prediction;  Run 1-1 ModelArtifact
    Job: any long piece of work (a training run, a study, bulk matching) executed by Ray.

Status vocabularies are plain strings checked by the code that writes them (see the ``*_STATUSES``
tuples below), so adding a status never needs a schema migration.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

ENTRY_STATUSES = ("kept", "rejected", "censored", "filtered", "merged")
MATCH_STATUSES = ("pending", "accepted", "rejected")
ENTRY_MATCH_STATES = ("unmatched", "no_candidate", "unambiguous", "ambiguous", "approximate", "accepted", "rejected")
JOB_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
STRUCTURE_SOURCES = ("upload", "materials_project", "library", "dataset")
AUDIT_ACTIONS = (
    "login", "login_failed", "login_locked", "logout", "share", "unshare", "delete_dataset", "delete_version",
    "user_created", "user_disabled", "user_enabled", "delete_study",
)


# SQLite AUTOINCREMENT: an id is never handed out twice, even after the newest row is deleted (migration 0002).
NEVER_REUSE_IDS: dict[str, Any] = {"sqlite_autoincrement": True}


def utcnow() -> datetime:
    """Timezone-aware now in UTC (the only clock the schema uses)."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base; ``dict``/``list`` annotations map to JSON columns."""

    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class User(Base):
    """A person who can log in to a hosted instance (built-in account mode or OpenID Connect)."""

    __tablename__ = "users"
    __table_args__ = NEVER_REUSE_IDS

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(200), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(200))
    password_hash: Mapped[str | None] = mapped_column(String(400))  # None for OpenID Connect users
    auth_provider: Mapped[str] = mapped_column(String(20), default="local")
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Dataset(Base):
    """An experimental dataset as the user knows it by name; its content lives in versions."""

    __tablename__ = "datasets"
    __table_args__ = NEVER_REUSE_IDS

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    owner: Mapped[str] = mapped_column(String(200), default="local")
    shared: Mapped[bool] = mapped_column(Boolean, default=False)  # private until the owner shares it with the lab
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    versions: Mapped[list[DatasetVersion]] = relationship(
        back_populates="dataset", cascade="all, delete-orphan", order_by="DatasetVersion.number"
    )


class DatasetVersion(Base):
    """One immutable import of a dataset: the file, the column mapping, the cleaning options, the rows."""

    __tablename__ = "dataset_versions"
    __table_args__ = (UniqueConstraint("dataset_id", "number"), NEVER_REUSE_IDS)

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("dataset_versions.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200), default="local")
    source_filename: Mapped[str | None] = mapped_column(String(500))
    source_sha256: Mapped[str | None] = mapped_column(String(64))
    target_name: Mapped[str | None] = mapped_column(String(200))
    target_unit: Mapped[str | None] = mapped_column(String(100))
    target_transform: Mapped[str] = mapped_column(String(20), default="none")  # "none" | "log10"
    temperature_unit: Mapped[str | None] = mapped_column(String(10))  # "°C" | "K"; None: not stated (before 0005)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)  # column mapping + cleaning options
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict)  # counts shown after import
    n_rows: Mapped[int] = mapped_column(Integer, default=0)
    n_kept: Mapped[int] = mapped_column(Integer, default=0)
    n_rejected: Mapped[int] = mapped_column(Integer, default=0)
    note: Mapped[str | None] = mapped_column(Text)

    dataset: Mapped[Dataset] = relationship(back_populates="versions")
    entries: Mapped[list[Entry]] = relationship(
        back_populates="dataset_version", cascade="all, delete-orphan", passive_deletes=True
    )
    studies: Mapped[list[Study]] = relationship(
        back_populates="dataset_version", cascade="all, delete-orphan", passive_deletes=True
    )


class Structure(Base):
    """A crystal structure from any source, stored once per content hash."""

    __tablename__ = "structures"
    __table_args__ = NEVER_REUSE_IDS

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(40))  # one of STRUCTURE_SOURCES
    external_id: Mapped[str | None] = mapped_column(String(200), index=True)  # mp-id, file name, ...
    formula: Mapped[str] = mapped_column(String(200), index=True)  # reduced formula
    chemsys: Mapped[str] = mapped_column(String(200), index=True)  # sorted elements joined by "-"
    spacegroup_symbol: Mapped[str | None] = mapped_column(String(40))
    spacegroup_number: Mapped[int | None] = mapped_column(Integer)
    nsites: Mapped[int] = mapped_column(Integer)
    # V_a: cell volume / occupancy-weighted number of atoms (cosnet_core.structure.volume_per_atom; migration 0004)
    volume_per_atom: Mapped[float | None] = mapped_column(Float)
    density: Mapped[float | None] = mapped_column(Float)
    is_ordered: Mapped[bool] = mapped_column(Boolean, default=True)
    theoretical: Mapped[bool | None] = mapped_column(Boolean)
    energy_above_hull: Mapped[float | None] = mapped_column(Float)
    cif: Mapped[str] = mapped_column(Text)
    pymatgen_json: Mapped[str | None] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)
    in_library: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200), default="local")


class Entry(Base):
    """One row of a dataset version: raw formula, normalised composition, target, extras, its structure."""

    __tablename__ = "entries"
    __table_args__ = (
        Index("ix_entries_version_status", "dataset_version_id", "status"),
        Index("ix_entries_version_composition", "dataset_version_id", "composition"),
        NEVER_REUSE_IDS,
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_version_id: Mapped[int] = mapped_column(ForeignKey("dataset_versions.id", ondelete="CASCADE"))
    row_number: Mapped[int] = mapped_column(Integer)  # as the scientist sees it in the uploaded file
    external_id: Mapped[str | None] = mapped_column(String(200))
    raw_formula: Mapped[str] = mapped_column(Text)
    composition: Mapped[str | None] = mapped_column(String(200))  # normalised reduced formula
    composition_amounts: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # element -> fraction
    target: Mapped[float | None] = mapped_column(Float)  # after the version's transform
    raw_target: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default="kept")  # one of ENTRY_STATUSES
    reason: Mapped[str | None] = mapped_column(Text)
    temperature: Mapped[float | None] = mapped_column(Float)
    split: Mapped[str | None] = mapped_column(String(20))  # user-given train/val/test
    reference: Mapped[str | None] = mapped_column(Text)
    mp_id: Mapped[str | None] = mapped_column(String(100))
    structure_file: Mapped[str | None] = mapped_column(String(500))
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)
    structure_id: Mapped[int | None] = mapped_column(ForeignKey("structures.id", ondelete="SET NULL"))
    match_state: Mapped[str] = mapped_column(String(20), default="unmatched")  # ENTRY_MATCH_STATES

    dataset_version: Mapped[DatasetVersion] = relationship(back_populates="entries")
    structure: Mapped[Structure | None] = relationship()
    candidates: Mapped[list[MatchCandidate]] = relationship(
        back_populates="entry", cascade="all, delete-orphan", passive_deletes=True, order_by="MatchCandidate.rank"
    )
    decisions: Mapped[list[ReviewDecision]] = relationship(
        back_populates="entry", cascade="all, delete-orphan", passive_deletes=True,
        order_by="ReviewDecision.decided_at",
    )


class MatchCandidate(Base):
    """A structure proposed for an entry by matching, with its rank and composition distance."""

    __tablename__ = "match_candidates"
    __table_args__ = (UniqueConstraint("entry_id", "structure_id"), NEVER_REUSE_IDS)

    id: Mapped[int] = mapped_column(primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("entries.id", ondelete="CASCADE"), index=True)
    structure_id: Mapped[int] = mapped_column(ForeignKey("structures.id", ondelete="CASCADE"))
    rank: Mapped[int] = mapped_column(Integer)
    score: Mapped[float] = mapped_column(Float, default=0.0)  # composition distance, 0 = exact
    exact: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(20), default="pending")  # one of MATCH_STATUSES
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    entry: Mapped[Entry] = relationship(back_populates="candidates")
    structure: Mapped[Structure] = relationship()


class ReviewDecision(Base):
    """One reviewer decision on an entry's structure; decisions are never deleted, only reverted."""

    __tablename__ = "review_decisions"
    __table_args__ = NEVER_REUSE_IDS

    id: Mapped[int] = mapped_column(primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("entries.id", ondelete="CASCADE"), index=True)
    candidate_id: Mapped[int | None] = mapped_column(ForeignKey("match_candidates.id", ondelete="SET NULL"))
    structure_id: Mapped[int | None] = mapped_column(ForeignKey("structures.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(20))  # accept | reject | attach | auto_accept | revert
    status: Mapped[str] = mapped_column(String(20))  # the candidate status this decision set
    reviewer: Mapped[str] = mapped_column(String(200))
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    note: Mapped[str | None] = mapped_column(Text)
    reverts_id: Mapped[int | None] = mapped_column(ForeignKey("review_decisions.id", ondelete="SET NULL"))

    entry: Mapped[Entry] = relationship(back_populates="decisions")


class Job(Base):
    """Long work (a study, a training run, bulk matching) recorded first here, then executed by Ray."""

    __tablename__ = "jobs"
    __table_args__ = NEVER_REUSE_IDS

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # train | study | match | tune
    status: Mapped[str] = mapped_column(String(20), default="queued", index=True)  # JOB_STATUSES
    progress: Mapped[float] = mapped_column(Float, default=0.0)  # 0..1
    message: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker_pid: Mapped[int | None] = mapped_column(Integer)
    worker_host: Mapped[str | None] = mapped_column(String(200))
    log_path: Mapped[str | None] = mapped_column(String(500))
    created_by: Mapped[str] = mapped_column(String(200), default="local")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Study(Base):
    """The paper's protocol on one dataset version: the chosen modes x seeds (optionally after a search)."""

    __tablename__ = "studies"
    __table_args__ = NEVER_REUSE_IDS

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    dataset_version_id: Mapped[int] = mapped_column(
        ForeignKey("dataset_versions.id", ondelete="CASCADE"), index=True
    )
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    modes: Mapped[list[Any]] = mapped_column(default=list)
    seeds: Mapped[list[Any]] = mapped_column(default=list)
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)  # training + split + search settings
    results: Mapped[dict[str, Any]] = mapped_column(default=dict)  # Table 1/2 and Figure 2 summaries
    status: Mapped[str] = mapped_column(String(20), default="queued")
    created_by: Mapped[str] = mapped_column(String(200), default="local")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    dataset_version: Mapped[DatasetVersion] = relationship(back_populates="studies")
    runs: Mapped[list[Run]] = relationship(
        back_populates="study", cascade="all, delete-orphan", passive_deletes=True, order_by="Run.id"
    )


class Run(Base):
    """One training of one mode with one seed: configuration, device, timings, outcome."""

    __tablename__ = "runs"
    __table_args__ = NEVER_REUSE_IDS

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int | None] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    dataset_version_id: Mapped[int] = mapped_column(ForeignKey("dataset_versions.id", ondelete="CASCADE"))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    mode: Mapped[str] = mapped_column(String(20))  # one of cosnet_core.hparams.MODES
    seed: Mapped[int] = mapped_column(Integer, default=0)
    structure_fraction: Mapped[float | None] = mapped_column(Float)  # Figure 2: share of structures kept
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)  # hyper-parameters
    structure_decisions: Mapped[dict[str, Any]] = mapped_column(default=dict)  # entry id -> structure id used
    status: Mapped[str] = mapped_column(String(20), default="queued", index=True)  # JOB_STATUSES
    requested_device: Mapped[str] = mapped_column(String(10), default="auto")
    device: Mapped[str | None] = mapped_column(String(40))
    n_epochs: Mapped[int] = mapped_column(Integer, default=200)
    epochs_done: Mapped[int] = mapped_column(Integer, default=0)
    best_epoch: Mapped[int | None] = mapped_column(Integer)
    best_val_mae: Mapped[float | None] = mapped_column(Float)
    test_metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    checkpoint_path: Mapped[str | None] = mapped_column(String(500))
    code_version: Mapped[str | None] = mapped_column(String(100))
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    duration_s: Mapped[float | None] = mapped_column(Float)

    study: Mapped[Study | None] = relationship(back_populates="runs")
    epochs: Mapped[list[EpochMetric]] = relationship(
        back_populates="run", cascade="all, delete-orphan", passive_deletes=True, order_by="EpochMetric.epoch"
    )
    predictions: Mapped[list[Prediction]] = relationship(
        back_populates="run", cascade="all, delete-orphan", passive_deletes=True
    )
    artifact: Mapped[ModelArtifact | None] = relationship(
        back_populates="run", cascade="all, delete-orphan", passive_deletes=True
    )


class EpochMetric(Base):
    """Per-epoch progress of a run, written as it happens."""

    __tablename__ = "epoch_metrics"
    __table_args__ = (UniqueConstraint("run_id", "epoch"), NEVER_REUSE_IDS)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    epoch: Mapped[int] = mapped_column(Integer)
    train_loss: Mapped[float] = mapped_column(Float)
    val_mae: Mapped[float | None] = mapped_column(Float)
    seconds: Mapped[float] = mapped_column(Float)
    lr: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    run: Mapped[Run] = relationship(back_populates="epochs")


class Prediction(Base):
    """A run's prediction for one entry, with the composition weight w_C of eq. (6)."""

    __tablename__ = "predictions"
    __table_args__ = (UniqueConstraint("run_id", "entry_id"), NEVER_REUSE_IDS)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("entries.id", ondelete="CASCADE"), index=True)
    split: Mapped[str] = mapped_column(String(10))  # train | val | test
    target: Mapped[float | None] = mapped_column(Float)
    value: Mapped[float] = mapped_column(Float)
    composition_weight: Mapped[float | None] = mapped_column(Float)  # w_C (mean over the vector if vector mode)
    has_structure: Mapped[bool] = mapped_column(Boolean, default=False)
    structure_id: Mapped[int | None] = mapped_column(ForeignKey("structures.id", ondelete="SET NULL"))

    run: Mapped[Run] = relationship(back_populates="predictions")
    entry: Mapped[Entry] = relationship()


class ModelArtifact(Base):
    """A trained model on disk (loadable with ``torch.load(..., weights_only=True)``)."""

    __tablename__ = "model_artifacts"
    __table_args__ = NEVER_REUSE_IDS

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), unique=True)
    path: Mapped[str] = mapped_column(String(500))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(Integer)
    featurizer_version: Mapped[str | None] = mapped_column(String(100))
    embedding: Mapped[str | None] = mapped_column(String(200))
    representations_path: Mapped[str | None] = mapped_column(String(500))  # per-row C (and S) export
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    run: Mapped[Run] = relationship(back_populates="artifact")


class AuditEvent(Base):
    """Who did what, when: logins (successful, failed, refused while locked), shares, deletions, account changes.

    Written in the same transaction as the change it records; never updated or deleted by the app.
    """

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_username_action", "username", "action"), NEVER_REUSE_IDS)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    username: Mapped[str] = mapped_column(String(200))  # who acted (or tried to log in)
    action: Mapped[str] = mapped_column(String(40))  # one of AUDIT_ACTIONS
    target: Mapped[str | None] = mapped_column(String(500))  # e.g. "dataset 3 'li conductors'"
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)

