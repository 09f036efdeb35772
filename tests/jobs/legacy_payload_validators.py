"""The hand validators of the study and match-job payloads as they were before jobs/payloads.py (commit 5c3ab12),
kept verbatim as the oracle tests/jobs/test_payloads.py compares the typed models against (the jobs now call the
models, so comparing with jobs.training / jobs.matching would compare the models with themselves)."""

# ruff: noqa

from __future__ import annotations

from typing import Any

from cosnet_core.hparams import MODES

SOURCE_NAMES = ("library", "dataset", "materials_project")
DEVICES = ("auto", "cpu", "gpu")
SPLIT_METHODS = ("random", "grouped", "column")
#: What the seeds of a study share (:func:`cosnet_core.splits.split_for_seed`); the first is the default.
SEED_PROTOCOLS = ("fixed-test", "resplit")
#: TrainConfig fields a study may set (mode, seed and device are set per run).
TRAIN_FIELDS = (
    "lr", "weight_decay", "lr_decay", "epochs", "batch_size", "loss", "grad_clip", "early_stopping_patience",
    "embedding", "hidden_dim", "roost_layers", "roost_heads", "roost_mlp_hidden", "cgcnn_layers", "fusion", "weight",
    "head_hidden", "weight_hidden", "radius", "max_neighbors", "descriptors", "init_from",
    "roost_mlp_batchnorm", "roost_power_init", "head", "cell_features", "nonnegative", "censored",
    "structure_features",
)


class MatchJobError(ValueError):
    """A payload the match job refuses (names the field and the reason)."""


def validate_study_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """Check and normalise a study submission (called by ``jobs.submit("study", ...)`` before any write).

    Args:
        payload: ``dataset_version_id`` (required); optional ``name``, ``modes`` (default the three),
            ``seeds`` (default 0-4), ``train`` (TrainConfig fields, e.g. ``{"epochs": 200, "lr": 0.01}``),
            ``device`` ("auto", "cpu", "gpu"), ``split`` (``{"method": "random"|"grouped"|"column",
            "fractions": [0.6, 0.2, 0.2], "seed": 0, "protocol": "fixed-test"|"resplit"}``: ``seed`` draws the
            test rows under the default ``"fixed-test"``, and each run's seed its validation rows; ``"resplit"``
            draws each run's whole split with its seed; see :func:`cosnet_core.splits.split_for_seed`), ``structure_fractions`` (shares of structures kept
            for Figure 2, each in [0, 1)), ``search`` (``{"enabled": bool, "num_samples": 8, "epochs": 20,
            "grace_period": 2, "full_grid": False}``: random Table 3 points per mode, the epochs of each trial, or
            with ``full_grid`` all 720 points), ``preset`` ("defaults" or "authors", :data:`cosnet_core.hparams.PRESETS`; its
            settings are filled in under ``train`` wherever ``train`` does not set them, and its name is kept in the
            study's config; absent: a bare ``TrainConfig`` plus ``train``).

    Returns:
        The payload with every default filled in.

    Raises:
        ValueError: the message names every problem.
    """
    from cosnet_core.hparams import DEFAULTS
    from cosnet_core.train import TrainConfig

    problems: list[str] = []
    out: dict[str, Any] = {}
    try:
        out["dataset_version_id"] = int(payload["dataset_version_id"])
    except (KeyError, TypeError, ValueError):
        problems.append("dataset_version_id is missing or not an integer")
    out["name"] = str(payload.get("name") or "").strip()[:200]
    modes = list(payload.get("modes") or MODES)
    bad_modes = [m for m in modes if m not in MODES]
    if bad_modes or not modes:
        problems.append(f"modes must be a non-empty subset of {', '.join(MODES)} (got {modes})")
    out["modes"] = [m for m in MODES if m in modes]  # paper order, no duplicates
    try:
        seeds = [int(s) for s in (payload.get("seeds") if payload.get("seeds") is not None else DEFAULTS["seeds"])]
    except (TypeError, ValueError):
        seeds = []
    if not seeds or len(set(seeds)) != len(seeds) or any(s < 0 for s in seeds):
        problems.append(f"seeds must be distinct non-negative integers (got {payload.get('seeds')})")
    out["seeds"] = seeds
    train = dict(payload.get("train") or {})
    preset = payload.get("preset")
    if preset is not None:
        from cosnet_core.hparams import PRESETS, preset_train_settings

        if preset not in PRESETS:
            problems.append(f"preset must be one of {', '.join(PRESETS)} (got {preset!r})")
        else:
            train = {**preset_train_settings(preset), **train}
    out["preset"] = preset
    unknown = sorted(set(train) - set(TRAIN_FIELDS))
    if unknown:
        problems.append(f"unknown training settings {unknown} (known: {', '.join(TRAIN_FIELDS)})")
    else:
        try:
            config = TrainConfig(**train)
        except (TypeError, ValueError) as error:
            problems.append(str(error))
        else:
            problems += _encoder_problems(config)
    out["train"] = {k: v for k, v in train.items() if k in TRAIN_FIELDS}
    device = str(payload.get("device") or "auto").lower()
    if device not in DEVICES:
        problems.append(f"device must be one of {', '.join(DEVICES)} (got {device!r})")
    out["device"] = device
    split = dict(payload.get("split") or {})
    method = split.get("method", "random")
    fractions = [float(f) for f in split.get("fractions", DEFAULTS["split_fractions"])]
    if method not in SPLIT_METHODS:
        problems.append(f"split method must be one of {', '.join(SPLIT_METHODS)} (got {method!r})")
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6 or fractions[1] <= 0:
        problems.append(f"split fractions must be three shares summing to 1 with a validation share > 0 ({fractions})")
    protocol = split.get("protocol", SEED_PROTOCOLS[0])
    if protocol not in SEED_PROTOCOLS:
        problems.append(f"split protocol must be one of {', '.join(SEED_PROTOCOLS)} (got {protocol!r})")
    out["split"] = {"method": method, "fractions": fractions, "seed": int(split.get("seed", 0)), "protocol": protocol}
    kept = [float(f) for f in payload.get("structure_fractions") or []]
    if any(not 0 <= f < 1 for f in kept):
        problems.append(f"structure_fractions are shares of structures kept, each in [0, 1) (got {kept})")
    out["structure_fractions"] = sorted(set(kept))
    search = dict(payload.get("search") or {})
    out["search"] = {
        "enabled": bool(search.get("enabled", False)),
        "num_samples": int(search.get("num_samples", 8)),
        "epochs": int(search.get("epochs", min(int(train.get("epochs", 200)), 50))),
        "grace_period": int(search.get("grace_period", 2)),
        "full_grid": bool(search.get("full_grid", False)),
    }
    if out["search"]["enabled"] and (out["search"]["num_samples"] < 1 or out["search"]["epochs"] < 1):
        problems.append("search needs num_samples ≥ 1 and epochs ≥ 1")
    if problems:
        raise ValueError("invalid study: " + "; ".join(problems))
    return out


def _encoder_problems(config: Any) -> list[str]:
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


def validate_match_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """Check a match job's payload and fill in the defaults (the validator :func:`jobs.submit` calls).

    Args:
        payload: see the module docstring.

    Returns:
        The normalised payload.

    Raises:
        MatchJobError: a field is missing or unusable (the message names it).
    """
    from cosnet_core.matching import AUTO_ACCEPT_RULES

    version_id = payload.get("dataset_version_id")
    if not isinstance(version_id, int) or isinstance(version_id, bool):
        raise MatchJobError(f"payload field 'dataset_version_id' must be a dataset version id, got {version_id!r}")
    sources = list(payload.get("sources") or SOURCE_NAMES)
    unknown = [name for name in sources if name not in SOURCE_NAMES]
    if unknown:
        raise MatchJobError(f"payload field 'sources': unknown source(s) {unknown}; known: {', '.join(SOURCE_NAMES)}")
    rule = payload.get("auto_accept", "unambiguous") or "never"
    if rule != "never" and rule not in AUTO_ACCEPT_RULES:
        raise MatchJobError(f"payload field 'auto_accept': unknown rule {rule!r}; known: {', '.join(AUTO_ACCEPT_RULES)}")
    max_candidates = payload.get("max_candidates", 10)
    if not isinstance(max_candidates, int) or max_candidates < 1:
        raise MatchJobError(f"payload field 'max_candidates' must be a positive integer, got {max_candidates!r}")
    return {
        "dataset_version_id": version_id,
        "sources": sources,
        "auto_accept": rule,
        "max_candidates": max_candidates,
        "include_reviewed": bool(payload.get("include_reviewed", False)),
        "created_by": str(payload.get("created_by") or "local"),
    }
