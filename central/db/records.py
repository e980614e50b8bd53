"""Records and rows that share their column names, copied by name in one place: a field
added to both cannot be forgotten in a hand-written copy."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import fields
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    R = TypeVar("R", bound=DataclassInstance)
else:
    R = TypeVar("R")


def record_of(record_type: type[R], row: object, **given: Any) -> R:
    """The record `row` holds: each field read from the row's attribute of the same name,
    except the ones `given` (converted or found elsewhere)."""
    read = {f.name: getattr(row, f.name) for f in fields(record_type) if f.name not in given}
    return record_type(**read, **given)


def columns_of(record: DataclassInstance, *, leave: Collection[str] = ()) -> dict[str, Any]:
    """A record's fields by name, for the row of the same columns; `leave` names those the
    row does not have."""
    return {f.name: getattr(record, f.name) for f in fields(record) if f.name not in leave}
