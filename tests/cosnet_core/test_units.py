"""Issue 16, item 3: unit labels, back-transformed log10 values, the log10 suggestion, temperatures in the other
unit, and numbers that keep their significant digits (cosnet_core.units, cosnet_core.ingest)."""

from __future__ import annotations

import pytest

from cosnet_core.ingest import CleaningOptions, IngestError, clean_table, read_table, suggest_mapping
from cosnet_core.units import (
    back_transformed,
    scientific,
    significant,
    suggest_log10,
    suggest_target_unit,
    suspect_kelvin_rows,
    target_label,
)


def test_labels_and_back_transformed_values():
    assert target_label("Ionic conductivity (S cm-1)", "S/cm", "log10") == "log10(σ / S cm⁻¹)"
    assert target_label("gap", "eV", "log10") == "log10(gap / eV)"
    assert target_label("gap", "eV") == "gap (eV)" and target_label("gap", "") == "gap"
    assert back_transformed(-4.1675, "conductivity", "S/cm", "log10") == "σ ≈ 6.8×10⁻⁵ S/cm"
    assert back_transformed(1.2, "gap", "eV", "none") is None
    assert scientific(12345.0) == "1.2×10⁴" and scientific(0.5) == "0.5"


@pytest.mark.parametrize("column, unit", [("Ionic conductivity (S cm-1)", ""), ("sigma (S/cm)", ""),
                                          ("S/cm", ""), ("value", "S/cm"), ("value", "S cm-1"), ("target", "mS/cm")])
def test_log10_is_suggested_for_every_conductivity(column, unit):
    assert suggest_log10(column, unit) is True


def test_log10_is_not_suggested_for_other_targets():
    assert suggest_log10("band gap", "eV") is False and suggest_target_unit("gap expt") == ("", False)
    assert suggest_target_unit("Ionic conductivity (S cm-1)") == ("S/cm", True)


def test_temperatures_in_the_other_unit_are_found_not_converted():
    assert suspect_kelvin_rows({2: 25, 3: 27, 4: 298, 5: 30, 6: 26, 7: 300.15}) == [4, 7]
    assert suspect_kelvin_rows({2: 25, 3: 27, 4: 30}) == []  # a consistent column
    assert suspect_kelvin_rows({2: 298, 3: 300, 4: 25, 5: 310}, unit="K") == [4]  # °C among Kelvin
    assert suspect_kelvin_rows({2: 298, 3: 300, 4: 310}) == []  # all Kelvin-like: the unit is wrong, not the rows
    assert significant(4.4e-18) == "4.4e-18" and significant(0.000123456789) == "0.000123457"


TABLE = (b"formula,sigma (S/cm),temperature\nLi3PS4,1e-4,25\nLi7La3Zr2O12,3e-4,298\nLiF,4.4e-18,27\n"
         b"LiCl,1e-8,30\nLiBr,2e-8,26\n")


def test_clean_table_asks_then_converts_only_when_told():
    raw = read_table(TABLE, "t.csv")
    mapping = suggest_mapping(raw.columns)
    assert (mapping.target, mapping.temperature) == ("sigma (S/cm)", "temperature")
    window = (20.0, 30.0)
    asked = clean_table(raw, mapping, CleaningOptions(log10=True, temperature_window=window))
    assert asked.temperature_suspects == [3]
    assert any(w.startswith("Row(s) 3: the temperature (298) looks like K") and "choose" in w for w in asked.warnings)
    converted = clean_table(raw, mapping, CleaningOptions(log10=True, temperature_window=window, kelvin_rows="convert"))
    row = converted.rows.loc[3]
    assert row["status"] == "kept" and row["temperature"] == pytest.approx(24.85)
    assert "temperature 298 read as K, converted to 24.85 °C" in row["reason"]
    kept = clean_table(raw, mapping, CleaningOptions(log10=True, temperature_window=window, kelvin_rows="keep"))
    assert kept.rows.loc[3, "status"] == "filtered" and kept.rows.loc[3, "temperature"] == 298
    with pytest.raises(IngestError, match="temperature unit"):
        clean_table(raw, mapping, CleaningOptions(temperature_unit="F"))


def test_the_results_page_labels_its_axes_with_the_same_unit_label():
    from db.models import DatasetVersion
    from db.results import target_label as results_label

    conductivity = DatasetVersion(target_name="Ionic conductivity (S cm-1)", target_unit="S/cm",
                                  target_transform="log10")
    assert results_label(conductivity) == "log10(σ / S cm⁻¹)"  # was "Ionic conductivity (S cm-1) (log10 S/cm)"
    assert results_label(DatasetVersion(target_name="Band gap", target_unit="eV", target_transform="none")) \
        == "Band gap (eV)"
