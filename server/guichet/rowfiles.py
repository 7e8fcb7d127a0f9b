"""What the files ops load (a sale's catalogue, the State programme's pool) share: a JSON
document holding one array of rows, each decoded alone so that a bad one is named by its line,
and msgspec's validation message turned into ``field: why``. Pure."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import TypeVar

import msgspec

T = TypeVar("T")


def explain(exc: msgspec.ValidationError) -> str:
    """msgspec's ``why - at `$.a.b``` as ``a.b: why``."""
    message = str(exc)
    detail, sep, path = message.rpartition(" - at `")
    if not sep:
        return message.replace("`", "")
    return f"{path.rstrip('`').removeprefix('$').lstrip('.')}: {detail}".replace("`", "")


def json_rows(data: bytes, key: str, typ: type[T], error: type[ValueError]) -> list[tuple[int, T]]:
    """The rows of ``{"<key>": [...]}`` with the line each starts on, every row decoded as
    ``typ``; a document or row that does not decode raises ``error`` naming its line."""
    outer = msgspec.defstruct("Rows", [(key, list[msgspec.Raw])])
    try:
        raw = msgspec.json.decode(data, type=outer)
    except msgspec.ValidationError as exc:
        raise error(f"line 1: {explain(exc)}") from None
    except msgspec.DecodeError as exc:
        raise error(f"not valid JSON: {exc}") from None
    rows: list[tuple[int, T]] = []
    offset = 0
    for index, item in enumerate(getattr(raw, key)):
        text = bytes(item)
        found = data.find(text, offset)
        line = data.count(b"\n", 0, max(found, 0)) + 1
        try:
            rows.append((line, msgspec.json.decode(text, type=typ)))
        except msgspec.ValidationError as exc:
            raise error(f"line {line} ({key}[{index}]): {explain(exc)}") from None
        offset = max(found, 0) + len(text)
    return rows


def utf8(data: bytes, error: type[ValueError]) -> str:
    """A CSV file's text (a UTF-8 byte-order mark dropped), or ``error``."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(f"not UTF-8 text: {exc}") from None


def csv_rows(
    text: str, columns: tuple[str, ...], error: type[ValueError]
) -> Iterator[tuple[int, dict[str, str]]]:
    """The rows of a CSV file whose header is exactly ``columns``, each with its line; a bad
    header, a row with another number of cells or a CSV syntax error raises ``error``."""
    reader = csv.DictReader(io.StringIO(text))
    try:
        header = tuple(reader.fieldnames or ())
    except csv.Error as exc:
        raise error(f"line 1: {exc}") from None
    if header != columns:
        raise error(f"line 1: the columns must be {','.join(columns)}")
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:  # raised before the reader counts the line it stopped on
            raise error(f"line {reader.line_num + 1}: {exc}") from None
        if None in row or any(v is None for v in row.values()):
            raise error(f"line {reader.line_num}: expected {len(columns)} columns")
        yield reader.line_num, row
