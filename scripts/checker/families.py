"""Families checked through another family's model, by rewriting their operations.

* a hash field is a register: ``hset(k, field, v)`` is ``set(k[field], v)`` and
  ``hget(k, field)`` is ``get(k[field])``;
* a string grown by ``APPEND`` of unique tokens, each ending in
  :data:`TOKEN_END`, is a list: ``append`` is ``rpush`` and ``strget`` is
  ``lrange`` of the tokens in order;
* a set grown by ``SADD`` of unique members is an unordered list: ``sadd`` is
  ``rpush`` and ``smembers`` is ``lrange`` of the members (checked without the
  order rule).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from .history import Op

TOKEN_END = ";"
AS_REGISTER = {"hset": "set", "hget": "get"}
AS_LIST = {"append": "rpush", "strget": "lrange", "sadd": "rpush", "smembers": "lrange"}


def hash_fields(ops: Sequence[Op]) -> dict[str, list[Op]]:
    """Each field's operations as register operations, by register name ``key[field]``."""
    fields: dict[str, list[Op]] = {}
    for op in ops:
        name = f"{op.key}[{op.arg}]"
        fields.setdefault(name, []).append(replace(op, f=AS_REGISTER[op.f], key=name, arg=None))
    return fields


def as_list(ops: Sequence[Op]) -> list[Op]:
    return [replace(op, f=AS_LIST[op.f], value=_elements(op)) for op in ops]


def _elements(op: Op) -> Any:
    if op.f in ("append", "sadd") or not op.ok:
        return op.value
    if op.f == "smembers":
        return tuple(sorted(op.value or ()))
    return tuple(token + TOKEN_END for token in (op.value or "").split(TOKEN_END)[:-1])
