"""Access control: with accounts configured nobody reaches a page without logging in; visibility rules."""

import pytest

from db.engine import session_scope
from db.models import Dataset, DatasetVersion, ModelArtifact, Study, User
from db.users import AccountError, authenticate, create_user, hash_password
from ui.state import version_choices


def test_password_hashes_are_salted_argon2_and_verify():
    first, second = hash_password("correct horse battery"), hash_password("correct horse battery")
    assert first.startswith("$argon2id$") and first != second  # a fresh random salt each time


def test_accounts_refuse_short_passwords_and_duplicates(app_env):
    create_user("ada", "a-long-enough-password", is_admin=True)
    with pytest.raises(AccountError, match="at least 10 characters"):
        create_user("bob", "short")
    with pytest.raises(AccountError, match="already exists"):
        create_user("ada", "another-long-password")
    assert authenticate("ada", "a-long-enough-password").is_admin is True
    assert authenticate("ada", "wrong-password-here") is None
    assert authenticate("nobody", "a-long-enough-password") is None
    with session_scope() as session:  # the password itself is stored nowhere
        assert "a-long-enough-password" not in session.query(User).one().password_hash


def test_no_page_is_reachable_without_login(app_test, monkeypatch):
    monkeypatch.setenv("COSNET_AUTH", "accounts")
    create_user("ada", "a-long-enough-password")
    at = app_test()
    at.run()
    assert not at.exception
    assert at.title[0].value == "COSNet Studio"
    assert [t.label for t in at.text_input] == ["User name", "Password"]
    assert not any(t.value == "Datasets" for t in at.title)

    at.text_input[0].input("ada")
    at.text_input[1].input("not-the-password")
    at.button[0].click()
    at.run()
    assert "wrong password" in at.error[0].value
    assert not any(t.value == "Datasets" for t in at.title)

    at.text_input[0].input("ada")
    at.text_input[1].input("a-long-enough-password")
    at.button[0].click()
    at.run()
    assert not at.exception
    assert any(t.value == "Datasets" for t in at.title)
    assert any("Logged in as ada" in c.value for c in at.sidebar.caption)


def test_users_see_their_own_and_shared_datasets_admin_sees_all(app_env):
    with session_scope() as session:
        for name, owner, shared in [("mine", "ada", False), ("lab", "bob", True), ("bobs", "bob", False)]:
            session.add(DatasetVersion(dataset=Dataset(name=name, owner=owner, shared=shared), number=1))
    names = lambda choices: sorted(c.label.split(" ·")[0] for c in choices)  # noqa: E731
    assert names(version_choices(None, "ada", False)) == ["lab", "mine"]
    assert names(version_choices(None, "bob", False)) == ["bobs", "lab"]
    assert names(version_choices(None, "root", True)) == ["bobs", "lab", "mine"]


def test_studies_and_models_of_private_datasets_stay_private(app_env):
    from db.results import list_studies, model_choices
    from tests.pages.results_fixtures import store_study

    study_id = store_study(n_entries=6)
    with session_scope() as session:
        study = session.get(Study, study_id)
        study.dataset_version.dataset.owner, study.dataset_version.dataset.shared = "bob", False
        for run in study.runs:
            session.add(ModelArtifact(run_id=run.id, path=f"/m/{run.id}.pt", sha256="0" * 64, size_bytes=1))
    assert [s.id for s in list_studies(None, username="bob", is_admin=False)] == [study_id]
    assert list_studies(None, username="ada", is_admin=False) == []
    assert [s.id for s in list_studies(None, username="root", is_admin=True)] == [study_id]
    assert model_choices(None, username="ada", is_admin=False) == []
    assert len(model_choices(None, username="bob", is_admin=False)) == 6  # 2 ensembles + 4 single runs
