"""Train / validation / test splits: random (the paper), grouped by composition (recommended), or a user column.

The paper splits every dataset at random 60 % : 20 % : 20 %. Experimental tables repeat compositions (OBELiX: 56
compositions over 140 rows), so a random split puts the same composition in train and test and scores optimistic
errors. :func:`grouped_split` keeps every composition in one split only; use it whenever a table has repeats.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar

import numpy as np
from pymatgen.core import Composition

from cosnet_core.errors import InputError
from cosnet_core.formula import composition_key

SplitMethod = Literal["random", "grouped", "column"]
SeedProtocol = Literal["fixed-test", "resplit"]
PAPER_FRACTIONS = (0.6, 0.2, 0.2)
#: What the seeds of a study share (see :func:`split_for_seed`); the first is the default everywhere.
SEED_PROTOCOLS = ("fixed-test", "resplit")
DEFAULT_SEED_PROTOCOL: SeedProtocol = "fixed-test"
#: One line per protocol for reports (the Results page, the command line).
SEED_PROTOCOL_TEXT = {
    "fixed-test": "Seeds share one test split; each seed draws its own validation rows",
    "resplit": "Each seed draws its own split (training, validation and test rows)",
}

_LABELS = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}


class _HasComposition(Protocol):
    id: str
    composition: Composition
    split: str | None


S = TypeVar("S", bound=_HasComposition)


class SplitError(InputError):
    """A split that cannot be made (bad label, too few rows); the message names the row or the reason."""


@dataclass
class Split:
    """The three parts of a dataset (each a list of the caller's samples, in input order)."""

    train: list
    val: list
    test: list

    def sizes(self) -> tuple[int, int, int]:
        """Row counts.

        Returns:
            ``(n_train, n_val, n_test)``.
        """
        return len(self.train), len(self.val), len(self.test)


def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise SplitError(f"split fractions must be three non-negative numbers summing to 1, got {tuple(fractions)}")
    return float(fractions[0]), float(fractions[1]), float(fractions[2])


def random_split(samples: Sequence[S], *, fractions: Sequence[float] = PAPER_FRACTIONS, seed: int = 0) -> Split:
    """The paper's random split (60 : 20 : 20 by default), reproducible from the seed.

    Args:
        samples: the rows.
        fractions: train, validation and test shares (sum 1).
        seed: seed of the permutation.

    Returns:
        A :class:`Split`; each part keeps the input order.

    Raises:
        SplitError: bad fractions or fewer than 3 rows.
    """
    f_train, f_val, _ = _check_fractions(fractions)
    n = len(samples)
    if n < 3:
        raise SplitError(f"need at least 3 rows to split into train/val/test, got {n}")
    order = np.random.default_rng(seed).permutation(n)
    n_train = max(1, int(round(f_train * n)))
    n_val = max(1, int(round(f_val * n))) if f_val > 0 else 0
    n_train = min(n_train, n - n_val - 1) if fractions[2] > 0 else n - n_val
    part = np.empty(n, dtype=object)
    part[order[:n_train]] = "train"
    part[order[n_train : n_train + n_val]] = "val"
    part[order[n_train + n_val :]] = "test"
    return _collect(samples, part)


def grouped_split(samples: Sequence[S], *, fractions: Sequence[float] = PAPER_FRACTIONS, seed: int = 0) -> Split:
    """A split where every composition (see :func:`composition_key`) lies in exactly one part.

    Compositions are shuffled by the seed and handed out in that order: a composition goes to train while train
    holds fewer rows than its share, then to validation, then to test. Shares are therefore met to within the size
    of one composition group.

    Args:
        samples: the rows.
        fractions: train, validation and test shares of rows (sum 1).
        seed: seed of the shuffle of compositions.

    Returns:
        A :class:`Split`; each part keeps the input order.

    Raises:
        SplitError: bad fractions, or fewer distinct compositions than non-empty parts.
    """
    f_train, f_val, f_test = _check_fractions(fractions)
    groups: dict[str, list[int]] = {}
    for index, sample in enumerate(samples):
        groups.setdefault(composition_key(sample.composition), []).append(index)
    needed = sum(f > 0 for f in (f_train, f_val, f_test))
    if len(groups) < needed:
        raise SplitError(f"need at least {needed} distinct compositions for a grouped split, got {len(groups)}")
    keys = list(groups)
    order = np.random.default_rng(seed).permutation(len(keys))
    n = len(samples)
    targets = {"train": f_train * n, "val": f_val * n, "test": f_test * n}
    filled = {"train": 0, "val": 0, "test": 0}
    part = np.empty(n, dtype=object)
    remaining_groups = len(keys)
    for position in order:
        rows = groups[keys[position]]
        empty_parts = [p for p in ("train", "val", "test") if targets[p] > 0 and filled[p] == 0]
        if len(empty_parts) >= remaining_groups:  # keep enough groups for every non-empty part
            chosen = empty_parts[0]
        else:
            open_parts = [p for p in ("train", "val", "test") if targets[p] > 0 and filled[p] < targets[p]]
            if open_parts:
                chosen = open_parts[0]
            else:  # rounding left rows over: give them to the part furthest below its share
                chosen = min((p for p in targets if targets[p] > 0), key=lambda p: filled[p] / targets[p])
        part[rows] = chosen
        filled[chosen] += len(rows)
        remaining_groups -= 1
    return _collect(samples, part)


def column_split(samples: Sequence[S], *, val_fraction: float = 0.2, seed: int = 0) -> Split:
    """The split given by the user in each sample's ``split`` field (``train`` / ``val`` / ``test``).

    Labels are case-insensitive; ``validation``/``valid`` mean ``val``. When no row is labelled ``val``, a validation
    part of ``val_fraction`` of the training rows is carved from train, grouped by composition.

    Args:
        samples: rows whose ``split`` is set.
        val_fraction: share of training rows moved to validation when the column has no ``val``.
        seed: seed of that carving.

    Returns:
        A :class:`Split`.

    Raises:
        SplitError: a row with an empty or unknown label (named by id), or no training row.
    """
    labels = []
    for row, sample in enumerate(samples, start=1):
        raw = "" if sample.split is None else str(sample.split).strip().lower()
        if raw not in _LABELS:
            raise SplitError(
                f"row {row} (id {sample.id!r}): split label {sample.split!r} is not one of train, val, test"
            )
        labels.append(_LABELS[raw])
    part = np.array(labels, dtype=object)
    if not (part == "train").any():
        raise SplitError("the split column has no 'train' row")
    if not (part == "val").any():
        train_rows = np.flatnonzero(part == "train")
        if not 0 < val_fraction < 1:
            raise SplitError(f"val_fraction must be between 0 and 1, got {val_fraction}")
        inner = grouped_split(
            [samples[i] for i in train_rows], fractions=(1 - val_fraction, val_fraction, 0.0), seed=seed
        )
        moved = {id(sample) for sample in inner.val}
        for i in train_rows:
            if id(samples[i]) in moved:
                part[i] = "val"
    return _collect(samples, part)


def recommended_split(n_rows: int, n_compositions: int) -> tuple[SplitMethod, str]:
    """The split to use by default, and why: grouped when compositions repeat, else the paper's random split.

    A random split of a table that repeats compositions puts the same composition in training and test, and the
    test error then flatters the model (DESIGN.md: OBELiX repeats 56 compositions over 140 rows).

    Args:
        n_rows: rows of the table.
        n_compositions: distinct compositions among them (see :func:`composition_key`).

    Returns:
        ``(method, reason)``: ``"grouped"`` or ``"random"``, and one sentence for the user.
    """
    repeated = n_rows - n_compositions
    if repeated > 0 and n_compositions >= 3:
        return "grouped", (
            f"compositions repeat ({n_rows} rows, {n_compositions} distinct compositions), so the split is grouped "
            "by composition: no composition is in two splits, and the test error is not flattered by compositions "
            "seen in training"
        )
    if repeated > 0:
        return "random", (
            f"compositions repeat, but {n_compositions} distinct composition(s) are too few for a grouped split, "
            "so the split is random (test errors may be optimistic)"
        )
    return "random", "every row has its own composition, so the paper's random split tests on unseen compositions"


def split_samples(
    samples: Sequence[S],
    method: SplitMethod = "random",
    *,
    seed: int = 0,
    fractions: Sequence[float] = PAPER_FRACTIONS,
    val_fraction: float = 0.2,
) -> Split:
    """Dispatch to :func:`random_split`, :func:`grouped_split` or :func:`column_split`.

    Args:
        samples: the rows.
        method: "random" (the paper), "grouped" (by composition; recommended) or "column" (each sample's ``split``).
        seed: split seed.
        fractions: train/val/test shares for "random" and "grouped".
        val_fraction: share of train carved for validation by "column" when it has no ``val`` rows.

    Returns:
        A :class:`Split`.
    """
    if method == "random":
        return random_split(samples, fractions=fractions, seed=seed)
    if method == "grouped":
        return grouped_split(samples, fractions=fractions, seed=seed)
    if method == "column":
        return column_split(samples, val_fraction=val_fraction, seed=seed)
    raise SplitError(f"unknown split method {method!r} (use random, grouped or column)")


def split_for_seed(
    samples: Sequence[S],
    method: SplitMethod = "random",
    *,
    split_seed: int = 0,
    seed: int = 0,
    fractions: Sequence[float] = PAPER_FRACTIONS,
    protocol: SeedProtocol = DEFAULT_SEED_PROTOCOL,
) -> Split:
    """The split one seed of a study trains on: the one definition used by the command line and the app's jobs.

    * ``"fixed-test"`` (default): the test rows are drawn once, with ``split_seed`` (the same for every seed); each
      seed then draws its validation rows from the remaining rows with its own ``seed`` (grouped by composition when
      ``method`` is ``"grouped"``), the rest being its training rows. Every seed is scored on the same test rows, so
      their predictions can be averaged (the served seed ensemble), and the ensemble has seen every non-test row.
    * ``"resplit"``: the whole split is drawn with ``seed`` (train, validation and test differ per seed;
      ``split_seed`` is not used). The mean ± std over seeds then also covers the choice of test rows.

    A ``"column"`` split keeps the user's labelled test rows under both protocols, and its labelled validation rows
    when there are any; otherwise each seed carves its validation rows from the labelled training rows (grouped by
    composition) with its ``seed``, ``fractions[1] / (fractions[0] + fractions[1])`` of them.

    Args:
        samples: the rows.
        method: "random", "grouped" or "column".
        split_seed: seed of the test rows under ``"fixed-test"``.
        seed: the run's seed (its validation rows; its whole split under ``"resplit"``).
        fractions: train, validation and test shares of all rows (sum 1).
        protocol: ``"fixed-test"`` or ``"resplit"``.

    Returns:
        A :class:`Split`; each part keeps the input order.

    Raises:
        SplitError: an unknown method or protocol, bad fractions, or too few rows or compositions.
    """
    if protocol not in SEED_PROTOCOLS:
        raise SplitError(f"unknown seed protocol {protocol!r} (use {' or '.join(SEED_PROTOCOLS)})")
    f_train, f_val, _ = _check_fractions(fractions)
    if method == "column":
        if f_train + f_val <= 0:
            raise SplitError(f"split fractions leave no training rows: {tuple(fractions)}")
        return column_split(samples, val_fraction=f_val / (f_train + f_val), seed=seed)
    if method not in ("random", "grouped"):
        raise SplitError(f"unknown split method {method!r} (use random, grouped or column)")
    if protocol == "resplit":
        return split_samples(samples, method, seed=seed, fractions=fractions)
    test = split_samples(samples, method, seed=split_seed, fractions=fractions).test
    test_rows = {id(sample) for sample in test}
    rest = [sample for sample in samples if id(sample) not in test_rows]
    share = f_val / (f_train + f_val) if f_train + f_val > 0 else 0.0
    inner = split_samples(rest, method, seed=seed, fractions=(1.0 - share, share, 0.0))
    return Split(train=inner.train, val=inner.val, test=test)


def _collect(samples: Sequence[S], part: np.ndarray) -> Split:
    split = Split(train=[], val=[], test=[])
    for sample, name in zip(samples, part, strict=True):
        getattr(split, name).append(sample)
    return split


#: Fewest validation rows a study may select its best epoch on (the page's 10-row minimum gives 2 with 20 %).
MIN_VALIDATION_ROWS = 2


@dataclass
class PlannedRow:
    """What a split needs to know of a row before a study is launched (no structure is parsed).

    Attributes:
        id: the row id.
        composition: its composition (grouped splits key on it).
        split: the user's split label, or None.
        has_structure: whether it has an accepted structure.
    """

    id: str
    composition: Composition
    split: str | None
    has_structure: bool


def validation_source(method: str, rows: Sequence[PlannedRow], fractions: Sequence[float] = PAPER_FRACTIONS,
                      protocol: str = DEFAULT_SEED_PROTOCOL) -> str:
    """One sentence for the Training page: where a study's validation rows come from (:func:`split_for_seed`)."""
    f_train, f_val, f_test = (float(f) for f in fractions)
    share = f_val / (f_train + f_val) if f_train + f_val > 0 else 0.0
    if method == "column":
        n_val = sum(_LABELS.get(str(r.split or "").strip().lower()) == "val" for r in rows)
        if n_val:
            return f"validation: the {n_val} row(s) labelled 'val' in the split column (the same for every seed)"
        return (f"validation: the split column labels no row 'val', so each seed moves {share:.0%} of the 'train' "
                "rows (grouped by composition, with its own seed) to validation")
    how = "grouped by composition" if method == "grouped" else "at random"
    if protocol == "resplit":
        return f"validation: each seed draws its own {f_val:.0%} of the rows ({how}), with its test rows"
    return (f"validation: the test rows ({f_test:.0%}) are drawn once and shared by every seed; each seed then draws "
            f"its own validation rows, {share:.0%} of the other rows ({how})")


def plan_problems(
    rows: Sequence[PlannedRow],
    method: str,
    *,
    seeds: Sequence[int] = (0,),
    fractions: Sequence[float] = PAPER_FRACTIONS,
    bimodal: bool = False,
    split_seed: int = 0,
    protocol: str = DEFAULT_SEED_PROTOCOL,
) -> list[str]:
    """Why a study's split cannot work, found before launch by drawing the split of every seed as the runs will.

    Args:
        rows: the rows the study would train on.
        method: "random", "grouped" or "column".
        seeds: the study's seeds.
        fractions: train, validation and test shares.
        bimodal: whether a bimodal mode is chosen (its test rows then need structures, or "with structure" is empty).
        split_seed: the seed of the shared test rows.
        protocol: the seed protocol.

    Returns:
        One sentence per problem (empty when the split is usable): a split column without 'train' rows or with an
        unknown label, fewer than 2 training, :data:`MIN_VALIDATION_ROWS` validation or 1 test row(s) for a seed,
        or, for a bimodal study on a split column, no test row with a structure while other rows have one (the user's
        labels can be changed; a drawn split gets a warning instead, :func:`bare_test_rows`).
    """
    problems: list[str] = []
    for seed in seeds:
        try:
            split = split_for_seed(list(rows), method, split_seed=split_seed, seed=int(seed), fractions=fractions,
                                   protocol=protocol)
        except SplitError as error:
            return [f"the {method} split cannot be made: {error}"]
        n_train, n_val, n_test = split.sizes()
        if n_train < 2:
            problems.append(f"seed {seed}: the {method} split leaves {n_train} training row(s); at least 2 are needed")
        if n_val < MIN_VALIDATION_ROWS:
            problems.append(f"seed {seed}: the {method} split leaves {n_val} validation row(s); at least "
                            f"{MIN_VALIDATION_ROWS} are needed to choose the best epoch")
        if n_test < 1:
            problems.append(f"seed {seed}: the {method} split leaves no test row, so nothing would be scored")
        if problems:
            return problems
        if (bimodal and method == "column" and any(r.has_structure for r in rows)
                and not any(r.has_structure for r in split.test)):
            return [f"no test row of the column split has a structure ({n_test} test rows): a bimodal study could "
                    "not be scored on rows with a structure; label some rows with a structure 'test', accept "
                    "structures for test rows, or train the composition mode only"]
    return problems


def bare_test_rows(rows: Sequence[PlannedRow], method: str, *, fractions: Sequence[float] = PAPER_FRACTIONS,
                                split_seed: int = 0) -> int | None:
    """The number of test rows of a random or grouped split when none of them has a structure while other rows do
    (a bimodal study would then be scored on compositions only), else None."""
    if method == "column" or not any(r.has_structure for r in rows):
        return None
    try:
        test = split_for_seed(list(rows), method, split_seed=split_seed, seed=0, fractions=fractions).test
    except SplitError:
        return None
    return None if any(r.has_structure for r in test) else len(test)
