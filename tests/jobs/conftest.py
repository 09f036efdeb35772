"""Fixtures of the jobs tests: the session's local Ray and a tiny dataset made in the test database.

The dataset: 30 binary compounds (alkali/alkaline-earth cation x halide/chalcogen anion) with a learnable toy
target; every third row has an accepted CsCl-type structure built with pymatgen.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pymatgen.core import Element, Lattice, Structure

from tests.ray_fixture import ray_session  # noqa: F401  (the shared session fixture)

CATIONS = ("Li", "Na", "K", "Rb", "Cs", "Mg", "Ca", "Sr", "Ba")
ANIONS = ("F", "Cl", "Br", "I", "O", "S")
#: A network small enough for seconds-long runs.
TINY_TRAIN = {
    "epochs": 2, "hidden_dim": 8, "roost_layers": 1, "roost_heads": 1, "cgcnn_layers": 1, "head_hidden": [8],
    "weight_hidden": [8], "batch_size": 16,
}


def wait_until(condition: Callable[[], object], timeout: float = 120.0, what: str = "condition") -> object:
    """Poll ``condition`` every 0.2 s until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def toy_target(cation: str, anion: str) -> float:
    """A deterministic property of a binary compound (electronegativity difference and radii)."""
    a, b = Element(cation), Element(anion)
    return 2.0 * (b.X - a.X) + 0.5 * float(a.atomic_radius + b.atomic_radius)


def toy_structure(cation: str, anion: str) -> Structure:
    """A CsCl-type cell whose lattice constant follows the atomic radii."""
    a, b = Element(cation), Element(anion)
    return Structure(Lattice.cubic(1.2 * float(a.atomic_radius + b.atomic_radius)), [cation, anion],
                     [[0, 0, 0], [0.5, 0.5, 0.5]])


def make_dataset(db_url: str, n: int = 30, structure_every: int = 3) -> int:
    """Create a dataset version with ``n`` kept entries (plus one rejected row) and some accepted structures.

    Args:
        db_url: database URL.
        n: kept rows.
        structure_every: every this-many-th row gets an accepted structure.

    Returns:
        The dataset version id.
    """
    from cosnet_core.structure import structure_hash
    from db.engine import session_scope
    from db.models import Dataset, DatasetVersion, Entry
    from db.models import Structure as StructureRow

    pairs = [(c, a) for c in CATIONS for a in ANIONS][:n]
    with session_scope(db_url) as session:
        dataset = Dataset(name="toy binaries")
        version = DatasetVersion(dataset=dataset, number=1, target_name="toy", n_rows=n + 1, n_kept=n, n_rejected=1)
        session.add_all([dataset, version])
        session.flush()
        for index, (cation, anion) in enumerate(pairs):
            structure_id = None
            if index % structure_every == 0:
                structure = toy_structure(cation, anion)
                row = StructureRow(
                    source="upload", formula=structure.composition.reduced_formula,
                    chemsys="-".join(sorted({cation, anion})), nsites=len(structure),
                    volume_per_atom=structure.volume / len(structure), cif=structure.to(fmt="cif"),
                    content_hash=structure_hash(structure),
                )
                session.add(row)
                session.flush()
                structure_id = row.id
            session.add(
                Entry(
                    dataset_version_id=version.id, row_number=index + 2, raw_formula=f"{cation}{anion}",
                    composition=f"{cation}{anion}", target=toy_target(cation, anion), status="kept",
                    structure_id=structure_id, match_state="accepted" if structure_id else "unmatched",
                )
            )
        session.add(Entry(dataset_version_id=version.id, row_number=n + 2, raw_formula="Xx2", target=None,
                          status="rejected", reason="unknown element Xx"))
        return version.id


@pytest.fixture()
def db_url(app_env: Path) -> str:
    """The test's database URL (a fresh migrated SQLite file)."""
    import os

    return os.environ["COSNET_DATABASE_URL"]


@pytest.fixture()
def toy_version(db_url: str) -> int:
    """A 30-row dataset version (10 rows with an accepted structure)."""
    return make_dataset(db_url)


@pytest.fixture()
def executor_thread(ray_session, app_env: Path, db_url: str) -> Iterator:  # noqa: F811
    """An executor looping in a thread of the test process, over the session's Ray (half a CPU per run, so two
    runs train at once on the single Ray CPU)."""
    import os

    from jobs.executor import Executor

    os.environ["COSNET_JOBS_CPUS_PER_RUN"] = "0.5"
    executor = Executor(db_url, app_env, poll_s=0.2, recovery_every_s=1.0)
    executor.start()
    stop = threading.Event()
    thread = threading.Thread(target=executor.run_forever, args=(stop,), daemon=True)
    thread.start()
    yield executor
    stop.set()
    thread.join(timeout=30)
    import ray

    for ref in list(executor.in_flight):  # nothing of this test may keep training into the next one
        ray.cancel(ref, force=True)
    os.environ.pop("COSNET_JOBS_CPUS_PER_RUN", None)
