"""One-line messages for configuration errors: `config <source>: <Key.path>: <what is wrong>`.

pydantic's messages ("Input should be a valid integer") are turned into an operator's words ("expected
an integer, got "five""); the value is shown unless the key holds a secret, in which case only its JSON
type is ("got a number").
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

_EXPECTED = {
    "int_type": "expected an integer",
    "int_parsing": "expected an integer",
    "int_from_float": "expected an integer",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "string_type": "expected a string",
    "list_type": "expected a list",
    "dict_type": "expected an object",
    "model_type": "expected an object",
    "model_attributes_type": "expected an object",
}
_BOUNDS = {
    "greater_than_equal": ("must be at least", "ge"),
    "greater_than": ("must be greater than", "gt"),
    "less_than_equal": ("must be at most", "le"),
    "less_than": ("must be less than", "lt"),
}


def json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return "null" if value is None else type(value).__name__


def show(value: Any) -> str:
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


def describe(
    exc: ValidationError, sources: Mapping[str, str], label: str, secret_keys: frozenset[str]
) -> str:
    """One line for the first problem: `config <source>: <Key.path>: <what is wrong>`."""
    # An unknown nested key explains the "required" error that comes with it: report it first.
    errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
    err = errors[0]
    loc = err["loc"]
    path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")
    source = sources.get(str(loc[0]), label) if loc else label
    kind = err["type"]
    ctx = err.get("ctx") or {}
    value = err.get("input")
    secret = any(isinstance(part, str) and part in secret_keys for part in loc)
    got = f", got {json_type(value) if secret else show(value)}"
    if kind in _EXPECTED:
        problem = _EXPECTED[kind] + got
    elif kind == "literal_error":
        problem = f"expected one of {ctx.get('expected')}{got}"
    elif kind in _BOUNDS:
        words, bound = _BOUNDS[kind]
        problem = f"{words} {ctx.get(bound)}{got}"
    elif kind in ("too_short", "string_too_short") and ctx.get("min_length") == 1:
        problem = "must not be empty"
    elif kind == "missing":
        problem = "is required"
    elif kind == "extra_forbidden":
        problem = "unknown key"
    else:
        problem = str(err["msg"]).removeprefix("Value error, ")
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    return f"config {source}: {path}: {problem}{more}" if path else f"config {source}: {problem}{more}"
