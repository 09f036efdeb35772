"""Small file builders shared by the ingest tests."""

from __future__ import annotations

import io

import openpyxl


def workbook(sheets: dict[str, list[list[object]]]) -> bytes:
    """An .xlsx file with the given sheets (name -> rows), as bytes."""
    book = openpyxl.Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
