"""Typed job payloads (issue 17, item 4): the study payload and the match-job payload as pydantic models.

:func:`validate_study` and :func:`validate_match` accept exactly what :func:`jobs.training.validate_study_payload`
and :func:`jobs.matching.validate_match_payload` accept, fill in the same defaults and refuse with the same messages
(``tests/jobs/test_payloads.py`` compares them on a table of valid and invalid payloads):

* a study lists **every** problem in one ``ValueError("invalid study: <problem>; <problem>")``, in the order of the
  fields below (each field's validator raises the old validator's sentence for it);
* a match job is refused at its **first** problem, with :class:`MatchJobError` naming the field.

Values are coerced as the hand validators did (``int("4")`` for a version id, ``bool(...)`` for flags), so a stored
payload validates to the same dictionary: ``model.model_dump()`` is the normalised payload the job runs.
Torch-free: the training configuration is imported only when a study's ``train`` settings are checked.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from cosnet_core.hparams import DEFAULTS, MODES
from cosnet_core.splits import SEED_PROTOCOLS  # what the seeds of a study share; the first is the default

DEVICES = ("auto", "cpu", "gpu")
SPLIT_METHODS = ("random", "grouped", "column")
#: TrainConfig fields a study may set (mode, seed and device are set per run).
TRAIN_FIELDS = (
    "lr", "weight_decay", "lr_decay", "epochs", "batch_size", "loss", "grad_clip", "early_stopping_patience",
    "embedding", "hidden_dim", "roost_layers", "roost_heads", "roost_mlp_hidden", "cgcnn_layers", "fusion", "weight",
    "head_hidden", "weight_hidden", "radius", "max_neighbors", "descriptors", "init_from",
    "roost_mlp_batchnorm", "roost_power_init", "head", "cell_features", "nonnegative", "censored",
    "structure_features",
)
#: Structure sources a match job may use, in the order they are searched.
SOURCE_NAMES = ("library", "dataset", "materials_project")
_MERGED_TRAIN = "merged_train"  # validation-context key: the study's train settings after the preset


class MatchJobError(ValueError):
    """A payload the match job refuses (names the field and the reason)."""


def encoder_problems(config: Any) -> list[str]:
    """A shipped pretrained encoder that does not fit the run's embedding or g_C is refused before the study starts
    (a path is checked when the run loads it)."""
    from cosnet_core.pretrained import is_compatible, shipped_checkpoints

    name = config.init_from
    if not name or name not in shipped_checkpoints():
        return []
    fits = is_compatible(name, embedding=config.embedding, hidden_dim=config.hidden_dim,
                         roost_layers=config.roost_layers, roost_heads=config.roost_heads,
                         roost_mlp_hidden=config.roost_mlp_hidden)
    return [] if fits else [f"the pretrained encoder {name} does not fit this network (encoder width "
                            f"{config.hidden_dim}, embedding {config.embedding}); choose none or its width"]


def _problems(error: ValidationError) -> list[str]:
    """The sentences of a validation error: each validator's own message, else pydantic's naming the field."""
    out = []
    for item in error.errors():
        raised = (item.get("ctx") or {}).get("error")
        out.append(str(raised) if raised is not None else f"{'.'.join(map(str, item['loc']))}: {item['msg']}")
    return out


# ---------------------------------------------------------------------------------------------------------- study


class SplitSettings(BaseModel):
    """How a study splits its rows (``cosnet_core.splits.split_for_seed``)."""

    model_config = ConfigDict(frozen=True)

    method: str = "random"
    fractions: list[float] = Field(default_factory=lambda: list(DEFAULTS["split_fractions"]), validate_default=True)
    seed: int = 0
    protocol: str = SEED_PROTOCOLS[0]

    @field_validator("method", mode="before")
    @classmethod
    def _method(cls, value: Any) -> Any:
        if value not in SPLIT_METHODS:
            raise ValueError(f"split method must be one of {', '.join(SPLIT_METHODS)} (got {value!r})")
        return value

    @field_validator("fractions", mode="before")
    @classmethod
    def _fractions(cls, value: Any) -> list[float]:
        fractions = [float(f) for f in value]
        if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6 or fractions[1] <= 0:
            raise ValueError(
                f"split fractions must be three shares summing to 1 with a validation share > 0 ({fractions})")
        return fractions

    @field_validator("seed", mode="before")
    @classmethod
    def _seed(cls, value: Any) -> int:
        return int(value)

    @field_validator("protocol", mode="before")
    @classmethod
    def _protocol(cls, value: Any) -> Any:
        if value not in SEED_PROTOCOLS:
            raise ValueError(f"split protocol must be one of {', '.join(SEED_PROTOCOLS)} (got {value!r})")
        return value


class SearchSettings(BaseModel):
    """The optional hyper-parameter search of a study (random Table 3 points per mode, or the full grid)."""

    model_config = ConfigDict(frozen=True)

    enabled: bool = False
    num_samples: int = 8
    epochs: int = 50  # StudyPayload fills in the study's epochs, at most 50
    grace_period: int = 2
    full_grid: bool = False

    @field_validator("enabled", "full_grid", mode="before")
    @classmethod
    def _flag(cls, value: Any) -> bool:
        return bool(value)

    @field_validator("num_samples", "epochs", "grace_period", mode="before")
    @classmethod
    def _count(cls, value: Any) -> int:
        return int(value)

    @model_validator(mode="after")
    def _enough(self) -> SearchSettings:
        if self.enabled and (self.num_samples < 1 or self.epochs < 1):
            raise ValueError("search needs num_samples ≥ 1 and epochs ≥ 1")
        return self


class StudyPayload(BaseModel):
    """What the Training page submits for a study; :func:`validate_study` builds it. See
    :func:`jobs.training.validate_study_payload` for the meaning of each field."""

    model_config = ConfigDict(frozen=True)

    dataset_version_id: int = Field(default=None, validate_default=True)
    name: str = Field(default="", validate_default=True)
    modes: list[str] = Field(default=None, validate_default=True)
    seeds: list[int] = Field(default=None, validate_default=True)
    preset: str | None = None
    train: dict[str, Any] = Field(default=None, validate_default=True)
    device: str = Field(default=None, validate_default=True)
    split: SplitSettings = Field(default=None, validate_default=True)
    structure_fractions: list[float] = Field(default=None, validate_default=True)
    search: SearchSettings = Field(default=None, validate_default=True)

    @field_validator("dataset_version_id", mode="before")
    @classmethod
    def _version(cls, value: Any) -> int:
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ValueError("dataset_version_id is missing or not an integer") from None

    @field_validator("name", mode="before")
    @classmethod
    def _name(cls, value: Any) -> str:
        return str(value or "").strip()[:200]

    @field_validator("modes", mode="before")
    @classmethod
    def _modes(cls, value: Any) -> list[str]:
        modes = list(value or MODES)
        if [m for m in modes if m not in MODES] or not modes:
            raise ValueError(f"modes must be a non-empty subset of {', '.join(MODES)} (got {modes})")
        return [m for m in MODES if m in modes]  # paper order, no duplicates

    @field_validator("seeds", mode="before")
    @classmethod
    def _seeds(cls, value: Any) -> list[int]:
        try:
            seeds = [int(s) for s in (value if value is not None else DEFAULTS["seeds"])]
        except (TypeError, ValueError):
            seeds = []
        if not seeds or len(set(seeds)) != len(seeds) or any(s < 0 for s in seeds):
            raise ValueError(f"seeds must be distinct non-negative integers (got {value})")
        return seeds

    @field_validator("preset", mode="before")
    @classmethod
    def _preset(cls, value: Any) -> Any:
        from cosnet_core.hparams import PRESETS

        if value is not None and value not in PRESETS:
            raise ValueError(f"preset must be one of {', '.join(PRESETS)} (got {value!r})")
        return value

    @field_validator("train", mode="before")
    @classmethod
    def _train(cls, value: Any, info: ValidationInfo) -> dict[str, Any]:
        """TrainConfig fields; a valid preset's settings fill in what ``train`` does not set."""
        train = dict(value or {})
        if info.data.get("preset") is not None:
            from cosnet_core.hparams import preset_train_settings

            train = {**preset_train_settings(info.data["preset"]), **train}
        if info.context is not None:
            info.context[_MERGED_TRAIN] = train  # the search's default epochs follow it, valid or not
        unknown = sorted(set(train) - set(TRAIN_FIELDS))
        if unknown:
            raise ValueError(f"unknown training settings {unknown} (known: {', '.join(TRAIN_FIELDS)})")
        from cosnet_core.train import TrainConfig

        try:
            config = TrainConfig(**train)
        except (TypeError, ValueError) as error:
            raise ValueError(str(error)) from None
        problems = encoder_problems(config)
        if problems:
            raise ValueError("; ".join(problems))
        return train

    @field_validator("device", mode="before")
    @classmethod
    def _device(cls, value: Any) -> str:
        device = str(value or "auto").lower()
        if device not in DEVICES:
            raise ValueError(f"device must be one of {', '.join(DEVICES)} (got {device!r})")
        return device

    @field_validator("split", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return dict(value or {})

    @field_validator("structure_fractions", mode="before")
    @classmethod
    def _kept(cls, value: Any) -> list[float]:
        kept = [float(f) for f in value or []]
        if any(not 0 <= f < 1 for f in kept):
            raise ValueError(f"structure_fractions are shares of structures kept, each in [0, 1) (got {kept})")
        return sorted(set(kept))

    @field_validator("search", mode="before")
    @classmethod
    def _search(cls, value: Any, info: ValidationInfo) -> Any:
        search = dict(value or {})
        if "epochs" not in search:
            train = (info.context or {}).get(_MERGED_TRAIN, {})
            search["epochs"] = min(int(train.get("epochs", 200)), 50)
        return search


def validate_study(payload: Mapping[str, Any]) -> StudyPayload:
    """Check a study submission and fill in its defaults (what ``jobs.submit("study", ...)`` calls).

    Args:
        payload: see :func:`jobs.training.validate_study_payload`.

    Returns:
        The typed payload; ``.model_dump()`` is the normalised dictionary the study job reads.

    Raises:
        ValueError: ``"invalid study: ..."`` naming every problem.
    """
    try:
        return StudyPayload.model_validate(dict(payload), context={})
    except ValidationError as error:
        raise ValueError("invalid study: " + "; ".join(_problems(error))) from None


# ---------------------------------------------------------------------------------------------------------- match


class MatchPayload(BaseModel):
    """A match job's payload (see :mod:`jobs.matching`); :func:`validate_match` builds it."""

    model_config = ConfigDict(frozen=True)

    dataset_version_id: int = Field(default=None, validate_default=True)
    sources: list[str] = Field(default=None, validate_default=True)
    auto_accept: str = Field(default="unambiguous", validate_default=True)
    max_candidates: int = Field(default=10, validate_default=True)
    include_reviewed: bool = Field(default=False, validate_default=True)
    created_by: str = Field(default=None, validate_default=True)

    @field_validator("dataset_version_id", mode="before")
    @classmethod
    def _version(cls, value: Any) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"payload field 'dataset_version_id' must be a dataset version id, got {value!r}")
        return value

    @field_validator("sources", mode="before")
    @classmethod
    def _sources(cls, value: Any) -> list[str]:
        sources = list(value or SOURCE_NAMES)
        unknown = [name for name in sources if name not in SOURCE_NAMES]
        if unknown:
            raise ValueError(f"payload field 'sources': unknown source(s) {unknown}; known: {', '.join(SOURCE_NAMES)}")
        return sources

    @field_validator("auto_accept", mode="before")
    @classmethod
    def _rule(cls, value: Any) -> str:
        from cosnet_core.matching import AUTO_ACCEPT_RULES

        rule = value or "never"
        if rule != "never" and rule not in AUTO_ACCEPT_RULES:
            raise ValueError(f"payload field 'auto_accept': unknown rule {rule!r}; known: {', '.join(AUTO_ACCEPT_RULES)}")
        return rule

    @field_validator("max_candidates", mode="before")
    @classmethod
    def _max_candidates(cls, value: Any) -> int:
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"payload field 'max_candidates' must be a positive integer, got {value!r}")
        return value

    @field_validator("include_reviewed", mode="before")
    @classmethod
    def _flag(cls, value: Any) -> bool:
        return bool(value)

    @field_validator("created_by", mode="before")
    @classmethod
    def _reviewer(cls, value: Any) -> str:
        from db.structures import DEFAULT_REVIEWER

        return str(value or DEFAULT_REVIEWER)


def validate_match(payload: Mapping[str, Any]) -> MatchPayload:
    """Check a match job's payload and fill in the defaults (the validator ``jobs.submit("match", ...)`` calls).

    Args:
        payload: see :mod:`jobs.matching`.

    Returns:
        The typed payload; ``.model_dump()`` is the normalised dictionary.

    Raises:
        MatchJobError: the first field that is missing or unusable (the message names it).
    """
    try:
        return MatchPayload.model_validate(dict(payload))
    except ValidationError as error:
        raise MatchJobError(_problems(error)[0]) from None
