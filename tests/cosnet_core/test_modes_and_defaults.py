"""Modes as one enum and defaults in one place (issue 17, item 4)."""

from __future__ import annotations

import dataclasses

from cosnet_core import report, train
from cosnet_core.hparams import DEFAULTS, MODES, Mode


def test_the_mode_enum_is_the_list_of_modes_in_the_papers_order() -> None:
    assert MODES == ("composition", "bimodal-aug", "bimodal")
    assert [mode.value for mode in Mode] == list(MODES)
    assert Mode("bimodal-aug") is Mode.BIMODAL_AUG and Mode.BIMODAL_AUG == "bimodal-aug"
    assert [mode.uses_structures for mode in Mode] == [False, True, True]
    assert report.MODE_LABELS == {mode.value: mode.label for mode in Mode}
    assert train.Mode is Mode and train.MODES is MODES


def test_train_config_takes_every_shared_default_from_hparams() -> None:
    config = train.TrainConfig()
    shared = {field.name for field in dataclasses.fields(config)} & set(DEFAULTS)
    assert len(shared) >= 20
    # init_from is the one documented exception: the app and the CLI start from the pretrained encoder, a
    # TrainConfig built in code gets the paper's randomly initialised g_C unless it asks.
    different = {name: (getattr(config, name), DEFAULTS[name]) for name in shared if getattr(config, name) != DEFAULTS[name]}
    assert different == {"init_from": (None, "roost64-dft4")}
    assert isinstance(config.mode, str) and config.mode == Mode.BIMODAL_AUG
