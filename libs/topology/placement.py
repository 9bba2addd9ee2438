"""Where an instance lives: data center, region and physical environment from its hostname.

orchestrator's semantics (`DataCenterPattern`, `RegionPattern`, `PhysicalEnvironmentPattern`): the
regular expression is searched in the instance's hostname (the host part of its key) and the first
capture group is the value; no match, or a pattern without a group, gives nothing. The matching
`Detect...Query` runs afterwards on the instance and, when it answers a non-empty value, overrides the
pattern's.
"""

from __future__ import annotations

import functools
import re


@functools.lru_cache(maxsize=64)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def from_hostname(pattern: str | None, hostname: str) -> str:
    """The first capture group of `pattern` searched in `hostname`; "" when unset or not matching."""
    if not pattern:
        return ""
    match = _compiled(pattern).search(hostname)
    if match is None or not match.groups():
        return ""
    return match.group(1) or ""


def placement(
    hostname: str,
    *,
    data_center_pattern: str | None = None,
    region_pattern: str | None = None,
    physical_environment_pattern: str | None = None,
    detected: dict[str, str] | None = None,
) -> dict[str, str]:
    """`data_center`, `region`, `physical_environment` for an instance named `hostname`: each from its
    pattern, overridden by a non-empty detected value (the Detect...Query answers, by the same names).
    Only non-empty values are returned."""
    found = {
        "data_center": from_hostname(data_center_pattern, hostname),
        "region": from_hostname(region_pattern, hostname),
        "physical_environment": from_hostname(physical_environment_pattern, hostname),
    }
    for name, value in (detected or {}).items():
        if name in found and value:
            found[name] = value
    return {name: value for name, value in found.items() if value}
