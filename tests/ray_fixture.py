"""One local Ray for the whole test session, shared by every test folder that needs Ray.

Use it from a folder's ``conftest.py``::

    from tests.ray_fixture import ray_session  # noqa: F401  (re-exported as a fixture)

and ask for ``ray_session`` in a test (or a fixture). It starts ``ray.init(num_cpus=1, include_dashboard=False)``
once (about 2-10 s, ~370 MiB), makes this checkout importable in the workers, exports ``RAY_ADDRESS`` so that
executor processes started by a test join this Ray instead of starting their own, and shuts Ray down at the end
of the session. It returns the Ray address.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def ray_session() -> Iterator[str]:
    """The session's local Ray (``num_cpus=1``); yields its address."""
    import ray

    from jobs.ray_backend import worker_runtime_env

    previous = os.environ.get("RAY_ADDRESS")
    os.environ.pop("RAY_ADDRESS", None)
    if not ray.is_initialized():
        ray.init(
            address="local",
            num_cpus=1,
            include_dashboard=False,
            runtime_env=worker_runtime_env(),
            log_to_driver=False,
            configure_logging=False,
        )
    address = ray.get_runtime_context().gcs_address
    os.environ["RAY_ADDRESS"] = address
    yield address
    ray.shutdown()
    if previous is None:
        os.environ.pop("RAY_ADDRESS", None)
    else:
        os.environ["RAY_ADDRESS"] = previous
