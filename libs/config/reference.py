"""The key reference, generated from `Settings` so the docs cannot drift from the code.

`markdown_table()` renders every key with its type, default and documentation, `unused_markdown()` the
keys accepted but not used (`docs/architecture.md` holds that list; a test compares them).
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import SecretStr
from pydantic.fields import FieldInfo

from libs.config.settings import Settings
from libs.config.usage import NOT_USED

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


def _doc(name: str, field: FieldInfo) -> str:
    doc = " ".join((field.description or "").split())
    if name in NOT_USED:
        doc += f" **Accepted, not used by Baton**: {NOT_USED[name]} (a config that sets it gets a warning)."
    return doc


def key_reference() -> list[tuple[str, str, str, str]]:
    """(key, type, default as JSON, documentation) for every key, in declaration order."""
    return [
        (name, _type_name(field), _default(name, field), _doc(name, field))
        for name, field in Settings.model_fields.items()
    ]


def markdown_table() -> str:
    """The key reference as a Markdown table."""
    rows = ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
    for name, type_name, default, doc in key_reference():
        cells = (f"`{name}`", f"`{type_name}`", f"`{default}`", doc)
        rows.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(rows)


def unused_markdown() -> str:
    """The keys Baton accepts but does not use (`usage.NOT_USED`), as a Markdown list for `docs/`."""
    return "\n".join(f"- `{key}`: {NOT_USED[key]}." for key in sorted(NOT_USED))
