"""The pydantic base shared by every config section, and the few value types the sections reuse.

Config models are strict (a JSON string is not an integer, `1` is not `true`: an orchestrator config
that Go's JSON decoder accepts is accepted here, and a mistyped value fails at start naming its key)
and frozen (services share one `Settings` and must not change it under each other). The docstring
under each field is its documentation (`use_attribute_docstrings`), so `Settings.model_fields`
describes every key.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

STRICT_CONFIG = ConfigDict(
    strict=True,
    frozen=True,
    extra="ignore",
    use_attribute_docstrings=True,
    hide_input_in_errors=True,
)


class ConfigSection(BaseModel):
    """Base of every config model: strict, frozen, documented by field docstrings."""

    model_config = STRICT_CONFIG


def _compiles(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None
    return pattern


def _all_compile(patterns: list[str]) -> list[str]:
    for pattern in patterns:
        _compiles(pattern)
    return patterns


Regex = Annotated[str, AfterValidator(_compiles)]
"""A string that must compile as a (Python `re`) regular expression; empty means unused."""

RegexList = Annotated[list[str], AfterValidator(_all_compile)]
"""A list of regular expressions, each of which must compile."""

Port = Annotated[int, Field(ge=1, le=65535)]
NonNegative = Annotated[int, Field(ge=0)]
Seconds = Annotated[float, Field(gt=0)]
