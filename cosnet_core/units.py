"""Units of a dataset's target and temperature: labels for axes, tables and files, back-transformed values of a
log10 target, the log10 suggestion, and temperatures that look like Kelvin in a column of Celsius (torch-free).

Values are never converted silently: the unit is a label the user states (or confirms) at import, and a temperature
row is converted only when the user says so.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from statistics import median

TEMPERATURE_UNITS = ("°C", "K")
KELVIN_OFFSET = 273.15
_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
# "S/cm", "S cm-1", "S cm^-1", "S·cm⁻¹", "mS/cm", "S/m" …: an electrical conductivity.
_CONDUCTIVITY_UNIT = re.compile(r"^\s*[mµu]?S\s*(/|·|\*|\s)\s*c?m(\s*\^?\s*(-|⁻|−)\s*(1|¹))?\s*$|^\s*[mµu]?S\s*c?m\s*\^?(-|⁻|−)(1|¹)\s*$",
                                re.IGNORECASE)


def is_conductivity_unit(unit: str | None) -> bool:
    """Whether ``unit`` is an electrical conductivity (S/cm, S cm-1, mS/cm, S/m, …)."""
    return bool(unit) and bool(_CONDUCTIVITY_UNIT.match(unit or ""))


def unit_in_name(column: str) -> str:
    """A conductivity unit written in a column name (``"sigma (S/cm)"``, ``"Ionic conductivity (S cm-1)"``), as
    ``"S/cm"``-style text, or ""."""
    match = re.search(r"\(([^)]*)\)|\[([^\]]*)\]", column)
    inner = (match.group(1) or match.group(2)) if match else ""
    if inner and is_conductivity_unit(inner):
        return "S/cm" if re.sub(r"\s", "", inner).lower() in ("s/cm", "scm-1", "scm^-1", "scm⁻¹", "s·cm⁻¹") else inner
    return ""


def suggest_target_unit(column: str | None) -> tuple[str, bool]:
    """The unit and the log10 choice suggested for a target column, from its name: a conductivity (by name, or
    S/cm in the name) is ``("S/cm", True)``; anything else ``("", False)``."""
    name = (column or "").lower()
    if is_conductivity_unit(column):  # a column named after its unit
        return (column or "").strip(), True
    written = unit_in_name(column or "")
    if written:
        return written, True
    if "conduct" in name or re.search(r"(^|[^a-z])(sigma|σ)([^a-z]|$)", name):
        return "S/cm", True
    return "", False


def suggest_log10(column: str | None, unit: str | None) -> bool:
    """Whether storing log10 is suggested: for every conductivity, whether the name or the unit typed says so (the
    same answer for a column called ``sigma (S/cm)`` and for a column called ``value`` with unit ``S/cm``)."""
    return suggest_target_unit(column)[1] or is_conductivity_unit(unit)


def pretty_unit(unit: str) -> str:
    """``"S/cm"`` → ``"S cm⁻¹"`` (a unit with one ``/`` as a product with a negative power); others unchanged."""
    if unit.count("/") == 1:
        numerator, denominator = (part.strip() for part in unit.split("/"))
        if numerator and re.fullmatch(r"[A-Za-zµ°Å]+", denominator):
            return f"{numerator} {denominator}⁻¹"
    return unit


def target_symbol(name: str | None, unit: str | None) -> str:
    """σ for a conductivity, else the target's name (or "target")."""
    if is_conductivity_unit(unit) or "conduct" in (name or "").lower():
        return "σ"
    return name or "target"


def target_label(name: str | None, unit: str | None, transform: str = "none") -> str:
    """How the stored target is labelled on axes, tables and files.

    ``log10(σ / S cm⁻¹)`` for a log10 conductivity, ``log10(gap / eV)`` for another log10 target, ``gap (eV)``
    without a transform, the name alone without a unit.
    """
    unit = (unit or "").strip()
    if transform == "log10":
        symbol = target_symbol(name, unit)
        return f"log10({symbol} / {pretty_unit(unit)})" if unit else f"log10({symbol})"
    return f"{name or 'target'} ({unit})" if unit else (name or "target")


def scientific(value: float, digits: int = 2) -> str:
    """``6.8×10⁻⁵`` (``digits`` significant digits); plain for 0.01 ≤ |value| < 1000."""
    if not math.isfinite(value):
        return str(value)
    if value == 0 or 1e-2 <= abs(value) < 1e3:
        return f"{value:.{digits}g}"
    mantissa, exponent = f"{value:.{digits - 1}e}".split("e")
    return f"{mantissa}×10{str(int(exponent)).translate(_SUPERSCRIPT)}"


def back_transformed(value: float, name: str | None, unit: str | None, transform: str = "none") -> str | None:
    """``"σ ≈ 6.8×10⁻⁵ S/cm"`` for a log10 target's value, None without a transform."""
    if transform != "log10" or not math.isfinite(value) or abs(value) > 300:
        return None
    suffix = f" {unit.strip()}" if unit and unit.strip() else ""
    return f"{target_symbol(name, unit)} ≈ {scientific(10.0 ** value)}{suffix}"


def significant(value: object, digits: int = 6) -> str:
    """A number as text with ``digits`` significant digits, never rounded to 0 (``4.4e-18`` stays ``4.4e-18``);
    empty for a missing value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    try:
        return f"{float(value):.{digits}g}"
    except (TypeError, ValueError):
        return str(value)


def suspect_kelvin_rows(temperatures: Mapping[int, float | None], unit: str = "°C") -> list[int]:
    """Rows whose temperature looks like it is in the other unit than most of the column.

    In a column stated in °C whose values are mostly room-temperature-like (median below 150), values from 250 to
    400 are most likely Kelvin (298 K = 24.85 °C). In a column stated in K (median at least 200), values from -50 to
    100 are most likely °C. The rows are returned for the user to decide; nothing is converted here.

    Args:
        temperatures: ``{row number: temperature}`` (None for a cell that is not a number).
        unit: the unit the column is stated in, ``"°C"`` or ``"K"``.

    Returns:
        The row numbers, in ascending order (empty when the column is consistent or has fewer than 3 numbers).
    """
    numbers = {row: value for row, value in temperatures.items() if value is not None and math.isfinite(value)}
    if len(numbers) < 3:
        return []
    middle = median(numbers.values())
    if unit == "K":
        suspects = [row for row, value in numbers.items() if -50 <= value <= 100] if middle >= 200 else []
    else:
        suspects = [row for row, value in numbers.items() if 250 <= value <= 400] if middle < 150 else []
    return sorted(suspects) if len(suspects) < len(numbers) / 2 else []


def to_unit(value: float, source: str, target: str) -> float:
    """A temperature from ``source`` to ``target`` unit (°C or K)."""
    if source == target:
        return value
    return value - KELVIN_OFFSET if source == "K" else value + KELVIN_OFFSET
