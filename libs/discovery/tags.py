"""Instance tags (orchestrator's `tag`, `untag`, `untag-all`, `tagged`, `tags`, `tag-value`), pure.

Storage: KV bucket `baton_tags`, one key per instance (`kv_key("host:port")`), value the JSON object of
that instance's tags `{name: value}` (a tag without a value has ""). One key per instance keeps
`tags/H/P` a single read and lets a tag change be one compare-and-set.

Tag strings follow orchestrator's `ParseTag`: `name`, `name=value`, `~name`, `~name=value` (`!` is read as
`~`, a negation); `tagged` takes a comma-separated list and returns the instances matching all of them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from libs.bus.provision import TAGS
from libs.models import InstanceKey

BUCKET = TAGS

_NEG_EQ = re.compile(r"^~([^=]+)=(.*)$")
_EQ = re.compile(r"^([^=]+)=(.*)$")
_NEG = re.compile(r"^~([^=]+)$")
_NAME = re.compile(r"^([^=]+)$")


class TagError(ValueError):
    """A tag string or request orchestrator refuses (its words)."""


@dataclass(frozen=True)
class Tag:
    name: str
    value: str = ""
    has_value: bool = False
    negate: bool = False

    def __str__(self) -> str:  # orchestrator's Tag.String()
        return f"{self.name}={self.value}"

    def display(self) -> str:  # orchestrator's Tag.Display() (topology-tags)
        return f"{self.name}={self.value}" if self.value else self.name


def parse_tag(text: str) -> Tag:
    text = text.replace("!", "~").strip()
    for pattern, negate, valued in ((_NEG_EQ, True, True), (_EQ, False, True), (_NEG, True, False)):
        m = pattern.match(text)
        if m:
            return Tag(m[1], m[2] if valued else "", has_value=valued, negate=negate)
    m = _NAME.match(text)
    if m:
        return Tag(m[1])
    raise TagError(f"Unable to parse tag: {text}")


def new_tag(name: str, value: str) -> Tag:
    """A tag from path segments (`tag/H/P/NAME/VALUE`): orchestrator's NewTag."""
    name = name.strip()
    if not name:
        raise TagError("NewTag: empty tag name")
    return Tag(name, value, has_value=True)


def parse_intersect(text: str) -> list[Tag]:
    return [parse_tag(part) for part in text.split(",")]


Tags = Mapping[InstanceKey, Mapping[str, str]]  # every tagged instance's tags


def tag_strings(tags: Mapping[str, str]) -> list[str]:
    """`tags/H/P`: `name=value` for each tag, by name."""
    return [str(Tag(name, value)) for name, value in sorted(tags.items())]


def _matches(tags: Mapping[str, str], tag: Tag) -> bool:
    present = tag.name in tags and (not tag.has_value or tags[tag.name] == tag.value)
    return not present if tag.negate else present


def tagged(all_tags: Tags, query: str, known: Iterable[InstanceKey] = ()) -> list[InstanceKey]:
    """Instances matching every tag of `query`. A negated tag (`~name`) matches the instances that lack
    it, among the tagged ones and `known` (orchestrator: every instance it knows)."""
    wanted = parse_intersect(query)
    pool = set(all_tags) | set(known)
    found = (k for k in pool if all(_matches(all_tags.get(k, {}), t) for t in wanted))
    return sorted(found, key=lambda k: (k.host, k.port))


def untag_targets(all_tags: Tags, tag: Tag, instance: InstanceKey | None) -> list[InstanceKey]:
    """The instances `untag`/`untag-all` removes `tag` from (orchestrator's Untag rules and words)."""
    if tag.negate:
        raise TagError("Untag: does not support negation")
    if instance is None and not tag.has_value:
        raise TagError(
            "Untag: either indicate an instance or a tag value. "
            "Will not delete on-valued tag across instances"
        )
    scope = [instance] if instance is not None else list(all_tags)
    return sorted(
        (
            k
            for k in scope
            if tag.name in all_tags.get(k, {}) and (not tag.has_value or all_tags[k][tag.name] == tag.value)
        ),
        key=lambda k: (k.host, k.port),
    )
