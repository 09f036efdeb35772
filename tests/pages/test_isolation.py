"""Issue 14, items 1-2: a new dataset is private until its owner shares it, and only the owner (or an
administrator) may change it, enforced by the data layer (db.access.require_dataset_owner) for every write."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from sqlalchemy import func, select

import jobs
from cosnet_core.ingest import CleaningOptions, ColumnMapping, clean_table, read_table
from db import datasets as store
from db import structures as review
from db.access import AccessDenied
from db.engine import session_scope
from db.models import Base, Dataset, Entry, Job
from jobs import store as job_store
from tests.pages.isolation_fixtures import (
    ADMIN,
    ALICE,
    BOB,
    TABLE,
    login,
    make_users,
    sidebar_versions,
    store_dataset,
)

PAGE = "pages/datasets.py"
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def lab(app_env, monkeypatch):
    monkeypatch.setenv("COSNET_AUTH", "accounts")
    make_users()
    return app_env


def _counts() -> dict[str, int]:
    with session_scope() as session:
        return {t.name: session.scalar(select(func.count()).select_from(t)) for t in Base.metadata.sorted_tables}


def _shared(dataset_id: int) -> bool:
    with session_scope() as session:
        return session.get(Dataset, dataset_id).shared


def _button(at, label: str):
    return next(b for b in at.button if b.label == label)


def test_a_dataset_imported_on_the_page_is_private_until_its_owner_shares_it(app_test, lab):
    alice = login(app_test, "alice", PAGE)
    alice.file_uploader[0].set_value(("alice-li.csv", TABLE, "text/csv"))
    alice.run()
    next(b for b in alice.button if b.key and b.key.startswith("import_")).click()
    alice.run()
    assert not alice.exception, alice.exception
    assert len(sidebar_versions(login(app_test, "alice"))) == 1
    with session_scope() as session:
        dataset = session.scalars(select(Dataset)).one()
        dataset_id, owner, shared = dataset.id, dataset.owner, dataset.shared
    assert (owner, shared) == ("alice", False)
    assert any("Private" in c.value for c in alice.caption)

    bob = login(app_test, "bob", PAGE)
    assert sidebar_versions(bob) == []
    assert not any("alice-li" in str(e.value) for e in [*bob.caption, *bob.markdown, *bob.sidebar.caption])
    root = login(app_test, "root", PAGE)
    assert len(sidebar_versions(root)) == 1  # administrators see every dataset

    _button(alice, "Share with the lab").click()
    alice.run()
    assert _shared(dataset_id) is True
    bob = login(app_test, "bob", PAGE)  # AppTest keeps the sidebar only in the run right after a login
    assert len(sidebar_versions(bob)) == 1
    # bob reads it but gets no control that changes it
    labels = {b.label for b in bob.button}
    assert not labels & {"Make private", "Share with the lab", "Delete permanently",
                         "Re-clean this version with other options"}
    assert any("belongs to alice" in c.value for c in bob.caption)

    _button(alice, "Make private").click()
    alice.run()
    assert _shared(dataset_id) is False
    assert sidebar_versions(login(app_test, "bob")) == []


def test_bob_cannot_import_into_alices_dataset_from_the_page(app_test, lab):
    ids = store_dataset("alice")
    store.set_shared(None, ids.dataset_id, True, actor=ALICE)
    bob = login(app_test, "bob", PAGE)
    bob.file_uploader[0].set_value(("alice private.csv", TABLE, "text/csv"))  # same stem as her dataset
    bob.run()
    destination = next(s for s in bob.selectbox if s.label == "Import as")
    assert destination.options == ["a new dataset"]  # her dataset is no destination for him


def test_every_write_on_a_dataset_is_refused_to_other_users_by_the_data_layer(lab):
    ids = store_dataset("alice")
    with session_scope() as session:
        entry_id = session.scalars(select(Entry.id).where(Entry.dataset_version_id == ids.version_id)).first()
    decision_id = review.reject_entry(None, entry_id, reviewer="alice", actor=ALICE)  # the owner may

    # private: bob is told it does not exist (its owner is not revealed)
    with pytest.raises(AccessDenied, match="does not exist"):
        store.delete_dataset(None, ids.dataset_id, actor=BOB)
    store.set_shared(None, ids.dataset_id, True, actor=ALICE)
    before = _counts()
    refused = [
        lambda: store.delete_dataset(None, ids.dataset_id, actor=BOB),
        lambda: store.delete_version(None, ids.version_id, actor=BOB),
        lambda: store.set_shared(None, ids.dataset_id, False, actor=BOB),
        lambda: review.reject_entry(None, entry_id, reviewer="bob", actor=BOB),
        lambda: review.revert_decision(None, decision_id, reviewer="bob", actor=BOB),
        lambda: review.bulk_accept(None, ids.version_id, actor=BOB),
        lambda: review.store_match_results(None, [(entry_id, None)], actor=BOB),
        lambda: jobs.submit("match", {"dataset_version_id": ids.version_id}, actor=BOB),
        lambda: job_store.create_job(None, "study", {"dataset_version_id": ids.version_id}, actor=BOB),
    ]
    for attempt in refused:
        with pytest.raises(AccessDenied, match="only the dataset's owner \\(alice\\) or an administrator"):
            attempt()
    after_share = _counts()
    assert after_share == before  # nothing was written by any refused call
    assert _shared(ids.dataset_id) is True

    cleaned = clean_table(read_table(TABLE, "t.csv"), ColumnMapping(formula="formula", target="conductivity"),
                          CleaningOptions())
    with pytest.raises(AccessDenied):
        store.add_version(None, ids.dataset_id, cleaned, created_by="bob", actor=BOB)
    assert _counts() == before

    # cancelling: bob may not cancel alice's job; alice may
    job_id = jobs.submit("match", {"dataset_version_id": ids.version_id}, actor=ALICE)
    with pytest.raises(AccessDenied):
        jobs.cancel(job_id, actor=BOB)
    with session_scope() as session:
        assert session.get(Job, job_id).status == "queued"
    assert jobs.cancel(job_id, actor=ALICE) == "cancelled"

    # the owner and an administrator may
    assert store.add_version(None, ids.dataset_id, cleaned, created_by="alice", actor=ALICE).number == 2
    store.set_shared(None, ids.dataset_id, False, actor=ADMIN)
    assert _shared(ids.dataset_id) is False
    store.delete_dataset(None, ids.dataset_id, actor=ADMIN)
    assert _counts()["datasets"] == 0


# The write functions of the data layer that take the acting user; pages and ui must always pass it.
GUARDED = {
    "add_version", "delete_dataset", "delete_version", "set_shared", "accept_candidate", "reject_candidate",
    "reject_entry", "attach_structure", "revert_decision", "bulk_accept", "store_match_results", "match_inline",
    "submit", "cancel",
}


def test_every_page_passes_the_acting_user_to_every_write():
    missing = []
    for path in [REPO_ROOT / "app.py", *(REPO_ROOT / "pages").glob("*.py"), *(REPO_ROOT / "ui").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                if name in GUARDED and not any(k.arg == "actor" for k in node.keywords):
                    missing.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno} {name}")
    assert missing == []


def test_structures_and_training_pages_offer_bob_no_write_on_alices_shared_dataset(app_test, lab):
    ids = store_dataset("alice")
    store.set_shared(None, ids.dataset_id, True, actor=ALICE)
    bob = login(app_test, "bob", "pages/structures.py")
    assert bob.session_state["active_dataset_version_id"] == ids.version_id
    assert any("belongs to another user" in i.value for i in bob.info)
    assert not {"Match all", "Bulk accept", "Accept", "Attach and accept"} & {b.label for b in bob.button}

    bob.switch_page("pages/training.py")
    bob.run()
    assert not bob.exception, bob.exception
    launch = next(b for b in bob.button if b.label == "Launch study")
    assert launch.disabled and any("belongs to another user" in e.value for e in bob.error)

    alice = login(app_test, "alice", "pages/training.py")
    assert not any("belongs to another user" in e.value for e in alice.error)
