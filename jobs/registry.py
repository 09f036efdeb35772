"""The kinds of long work the app knows, each a ``"module:function"`` string resolved when a job runs.

A job function has the signature ``run_job(job_id: int, payload: dict, ctx: JobContext) -> None`` (see
:mod:`jobs.context`); one that returns a string leaves it as the finished job's message. A kind may also name a ``validate(payload) -> dict`` function, called by :func:`jobs.submit`
before any row is written, so bad input never reaches the queue.

Resources: a "study" job only coordinates (it creates the runs and waits for them), so it asks Ray for no CPU;
a "train" job asks for one run's CPUs (and a GPU when chosen), as does "pretrain" (g_C on computed tables,
:mod:`jobs.pretraining`); "match" (bulk structure matching) and
"library_import" (structure files into the local library), both in :mod:`jobs.matching`, for one run's CPUs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class JobKind:
    """One registered kind of job.

    Attributes:
        function: ``"module:function"`` of the job function.
        validate: ``"module:function"`` checking and normalising a payload, or None.
        coordinator: True when the job only waits for other jobs (runs without reserving a CPU).
        uses_gpu: True when the job may ask Ray for a GPU (training).
    """

    function: str
    validate: str | None = None
    coordinator: bool = False
    uses_gpu: bool = False


JOB_KINDS: dict[str, JobKind] = {
    "study": JobKind("jobs.training:run_study_job", validate="jobs.training:validate_study_payload", coordinator=True),
    "train": JobKind("jobs.training:run_train_job", uses_gpu=True),
    "pretrain": JobKind("jobs.pretraining:run_pretrain_job", validate="jobs.pretraining:validate_pretrain_payload",
                        uses_gpu=True),
    "match": JobKind("jobs.matching:run_match_job", validate="jobs.matching:validate_match_payload"),
    "library_import": JobKind(
        "jobs.matching:run_library_import_job", validate="jobs.matching:validate_library_import_payload"
    ),
}


def job_kind(kind: str) -> JobKind:
    """The registration of ``kind``.

    Args:
        kind: e.g. "study".

    Returns:
        The :class:`JobKind`.

    Raises:
        ValueError: unknown kind.
    """
    try:
        return JOB_KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown job kind {kind!r} (known: {', '.join(JOB_KINDS)})") from None


def resolve(reference: str) -> Callable[..., Any]:
    """Import ``"module:function"``.

    Args:
        reference: the dotted module and the attribute, separated by a colon.

    Returns:
        The function.
    """
    module_name, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def job_function(kind: str) -> Callable[..., None]:
    """The function that runs jobs of ``kind``.

    Args:
        kind: a registered kind.

    Returns:
        The job function.
    """
    return resolve(job_kind(kind).function)


def validate_payload(kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Check a payload with the kind's validator (unchanged when the kind has none).

    Args:
        kind: a registered kind.
        payload: the job's arguments.

    Returns:
        The normalised payload.

    Raises:
        ValueError: the payload is unusable (the message says why).
    """
    registration = job_kind(kind)
    if registration.validate is None:
        return dict(payload)
    return resolve(registration.validate)(payload)
