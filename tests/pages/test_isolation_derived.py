"""Issue 14, item 3: what is derived from a dataset (studies, models, structures that came with it) is visible
exactly when the dataset is: Predict's structure library, its model list and the Results page, for two users."""

from __future__ import annotations

import pytest
from pymatgen.core import Lattice
from pymatgen.core import Structure as PmgStructure

from db.datasets import set_shared
from db.engine import session_scope
from db.models import Dataset, DatasetVersion, Entry, ModelArtifact, Run, Structure, Study
from db.results import list_studies, model_choices
from db.structures import structures_of_formula
from tests.pages.isolation_fixtures import ALICE, login, make_users
from tests.pages.test_predict_page import trained_artifacts  # noqa: F401  (a module fixture: two tiny models)

NACL = PmgStructure(Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]).to(fmt="cif")


@pytest.fixture()
def two_datasets(app_env, monkeypatch, trained_artifacts):  # noqa: F811
    """alice's private dataset with her uploaded CIF and a trained study; bob's with a study; one library CIF."""
    monkeypatch.setenv("COSNET_AUTH", "accounts")
    make_users()
    ids = {}
    with session_scope() as session:
        session.add(Structure(source="library", external_id="lab-NaCl.cif", formula="NaCl", chemsys="Cl-Na",
                              nsites=2, cif=NACL, content_hash="1" * 64, in_library=True))
        for owner in ("alice", "bob"):
            version = DatasetVersion(dataset=Dataset(name=f"{owner} salts", owner=owner), number=1,
                                     target_name="gap", target_unit="eV", created_by=owner)
            secret = Structure(source="dataset", external_id=f"{owner}-secret.cif", formula="NaCl",
                               chemsys="Cl-Na", nsites=2, cif=NACL.replace("data_", f"data_{owner}"),
                               content_hash=("a" if owner == "alice" else "b") * 64, created_by=owner)
            session.add(Entry(dataset_version=version, row_number=2, raw_formula="NaCl", composition="NaCl",
                              target=1.0, status="kept", structure=secret))
            study = Study(name=f"{owner}'s study", dataset_version=version, modes=["bimodal-aug"], seeds=[0, 1],
                          status="succeeded", created_by=owner)
            session.add(study)
            session.flush()
            for seed, path in zip((0, 1), trained_artifacts, strict=True):
                run = Run(study=study, dataset_version_id=version.id, mode="bimodal-aug", seed=seed,
                          status="succeeded")
                session.add(run)
                session.flush()
                session.add(ModelArtifact(run_id=run.id, path=str(path), sha256="0" * 64, size_bytes=1))
            ids[owner] = (version.dataset_id, study.id)
    return ids


def _names(rows) -> list[str]:
    return sorted(r["external_id"] for r in rows)


def test_uploaded_structures_studies_and_models_follow_their_dataset(two_datasets):
    alice_dataset, alice_study = two_datasets["alice"]
    bob = {"username": "bob", "is_admin": False}
    assert _names(structures_of_formula(None, "NaCl", **bob)) == ["bob-secret.cif", "lab-NaCl.cif"]
    assert _names(structures_of_formula(None, "NaCl", username="alice", is_admin=False)) == [
        "alice-secret.cif", "lab-NaCl.cif"]
    assert len(structures_of_formula(None, "NaCl", username="root", is_admin=True)) == 3
    assert alice_study not in [s.id for s in list_studies(None, **bob)]
    assert not any("alice" in c.label for c in model_choices(None, **bob))

    set_shared(None, alice_dataset, True, actor=ALICE)
    assert "alice-secret.cif" in _names(structures_of_formula(None, "NaCl", **bob))
    assert alice_study in [s.id for s in list_studies(None, **bob)]
    assert any("alice's study" in c.label for c in model_choices(None, **bob))


def test_predict_page_offers_bob_no_private_cif_of_alice(two_datasets, app_test):
    at = login(app_test, "bob", "pages/predict.py")
    assert all("alice" not in option for option in at.selectbox[0].options)  # models: only his own
    at.text_input[0].input("NaCl").run()
    at.radio[0].set_value("from the structure library").run()
    assert not at.exception, at.exception
    picker = next(s for s in at.selectbox if s.label == "Structure")
    assert sorted(o.split(" (")[0] for o in picker.options) == ["bob-secret.cif", "lab-NaCl.cif"]


def test_results_page_ignores_a_query_parameter_naming_a_private_study(two_datasets, app_test):
    _, alice_study = two_datasets["alice"]
    _, bob_study = two_datasets["bob"]
    at = login(app_test, "bob")
    at.query_params["study"] = str(alice_study)
    at.switch_page("pages/results.py")
    at.run()
    assert not at.exception, at.exception
    study_box = next(s for s in at.selectbox if s.label == "Study")
    assert study_box.value == bob_study and alice_study not in study_box.options
    assert not any("alice" in c.value for c in at.caption)
