"""One upload limit everywhere (issue 16, item 8): every file uploader of the app (Datasets, Structures, Predict)
shows ``COSNET_MAX_UPLOAD_MB``, capped by Streamlit's ``server.maxUploadSize``. The Structures page's uploaders and its
refusal of a bigger file are in ``test_structures_details.py``."""

from __future__ import annotations

from tests.pages.test_predict_page import trained_artifacts, trained_study  # noqa: F401  (fixtures)
from ui.uploads import upload_limit_mb


def _limits(at) -> dict[str, int]:
    return {widget.proto.label: widget.proto.max_upload_size_mb for widget in at.get("file_uploader")}


def test_predict_and_datasets_uploaders_share_the_limit(trained_study, app_test, monkeypatch):  # noqa: F811
    monkeypatch.setenv("COSNET_MAX_UPLOAD_MB", "3")
    at = app_test(timeout=120)
    at.switch_page("pages/predict.py")
    at.run()
    assert not at.exception, at.exception
    assert _limits(at) and set(_limits(at).values()) == {3}, _limits(at)  # the batch table (and its CIF zip)
    at.switch_page("pages/datasets.py")
    at.run()
    assert not at.exception, at.exception
    assert set(_limits(at).values()) == {3}, _limits(at)


def test_the_limit_never_exceeds_what_streamlit_accepts(monkeypatch):
    from streamlit import config as st_config

    monkeypatch.setenv("COSNET_MAX_UPLOAD_MB", "5000")
    assert upload_limit_mb() == st_config.get_option("server.maxUploadSize") == 200
    monkeypatch.setenv("COSNET_MAX_UPLOAD_MB", "0.5")
    assert upload_limit_mb() == 1  # Streamlit counts whole megabytes
