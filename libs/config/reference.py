"""The key reference, generated from `Settings` so the docs cannot drift from the code.

`markdown_table()` renders every key with its type, default and documentation; `docs/` and a future
`baton config keys` command print it.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import SecretStr
from pydantic.fields import FieldInfo

from libs.config.settings import Settings

_COMPUTED_DEFAULTS = {"BatonNodeName": "(this host's name)"}


def _type_name(field: FieldInfo) -> str:
    text = repr(field.annotation)
    text = re.sub(r"\b(?:typing|libs\.config\.\w+|pydantic\.types)\.", "", text)
    return text.replace("<class '", "").replace("'>", "")


def _default(name: str, field: FieldInfo) -> str:
    if name in _COMPUTED_DEFAULTS:
        return _COMPUTED_DEFAULTS[name]
    value: Any = field.get_default(call_default_factory=True)
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return json.dumps(value)


def key_reference() -> list[tuple[str, str, str, str]]:
    """(key, type, default as JSON, documentation) for every key, in declaration order."""
    return [
        (name, _type_name(field), _default(name, field), " ".join((field.description or "").split()))
        for name, field in Settings.model_fields.items()
    ]


def markdown_table() -> str:
    """The key reference as a Markdown table."""
    rows = ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
    for name, type_name, default, doc in key_reference():
        cells = (f"`{name}`", f"`{type_name}`", f"`{default}`", doc)
        rows.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(rows)
