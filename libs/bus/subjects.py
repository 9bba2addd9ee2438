"""Subject names, and a reversible encoding of instance/cluster names into subject tokens and KV keys.

Host names contain `.`, the NATS token separator; IPv6 literals contain `:`, `[`, `%`; operators may
name clusters anything. `encode_token` maps any non-empty text to one token that is

- a valid single NATS subject token (no `.`, `*`, `>`, whitespace, nor anything else outside the alphabet
  `[A-Za-z0-9_=/-]`), and at the same time a valid KV key (`[-/_=.a-zA-Z0-9]+`, no leading/trailing dot);
- readable for the common case: `db-1.dc2.example.com:3306` becomes `db-1_dc2_example_com=3306`;
- strictly reversible: `decode_token(encode_token(s)) == s` for every string, and `decode_token` rejects
  every text that `encode_token` cannot produce, so the encoding is injective (two names never share a
  token) and each name has exactly one token.

The scheme: ASCII letters, digits and `-` stay; `.` becomes `_`; `:` becomes `=`; every other character
(including `_`, `=` and `/` themselves) becomes `/xx` per UTF-8 byte, lowercase hex. Lone surrogates are
carried through with `surrogatepass`, so even those round-trip.

Because the token alphabet is a subset of the KV key alphabet, a cluster's KV key in `baton_masters` is
the same text as its subject token; `kv_key`/`kv_key_decode` exist to say which one a caller means.
"""

from __future__ import annotations

import re
import string

from libs.models.instance import InstanceKey

PREFIX = "baton"
PROBE_NOW = "baton.probe.now"

SNAPSHOTS_ALL = "baton.snapshot.>"
DETECTIONS_ALL = "baton.detection.>"
RECOVERIES_ALL = "baton.recovery.>"
AUDIT_ALL = "baton.audit.>"
CMD_ALL = "baton.cmd.>"

_KEEP = frozenset(string.ascii_letters + string.digits + "-")
_TO = {".": "_", ":": "="}
_FROM = {v: k for k, v in _TO.items()}
_ESCAPE = "/"
_HEX = frozenset("0123456789abcdef")
# Our own identifiers (audit kinds, recovery phases, services, verbs) are plain words, not encoded.
_WORD_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
# The KV key rule of nats-py / the server.
KV_KEY_RE = re.compile(r"^[-/_=.a-zA-Z0-9]+$")


def encode_token(name: str) -> str:
    """Encode a non-empty name into one subject token (also a valid KV key). Raises ValueError on ""."""
    if not name:
        raise ValueError("cannot encode an empty name into a subject token")
    out: list[str] = []
    for ch in name:
        if ch in _KEEP:
            out.append(ch)
        elif ch in _TO:
            out.append(_TO[ch])
        else:
            out.extend(f"{_ESCAPE}{b:02x}" for b in ch.encode("utf-8", "surrogatepass"))
    return "".join(out)


def decode_token(token: str) -> str:
    """Invert `encode_token`. Raises ValueError on any text `encode_token` would never produce."""
    if not token:
        raise ValueError("empty subject token")
    chars: list[str] = []
    pending = bytearray()
    i = 0
    n = len(token)
    while i < n:
        ch = token[i]
        if ch == _ESCAPE:
            hx = token[i + 1 : i + 3]
            if len(hx) != 2 or not set(hx) <= _HEX:
                raise ValueError(f"bad escape at offset {i} in token {token!r}")
            pending.append(int(hx, 16))
            i += 3
            continue
        if pending:
            chars.append(_decode_escaped(pending, token))
            pending.clear()
        if ch in _KEEP:
            chars.append(ch)
        elif ch in _FROM:
            chars.append(_FROM[ch])
        else:
            raise ValueError(f"character {ch!r} cannot appear in an encoded token {token!r}")
        i += 1
    if pending:
        chars.append(_decode_escaped(pending, token))
    return "".join(chars)


def _decode_escaped(raw: bytearray, token: str) -> str:
    try:
        text = bytes(raw).decode("utf-8", "surrogatepass")
    except UnicodeDecodeError as exc:
        raise ValueError(f"escaped bytes are not UTF-8 in token {token!r}") from exc
    if any(c in _KEEP or c in _TO for c in text):
        raise ValueError(f"needless escape in token {token!r} (not canonical)")
    return text


def kv_key(name: str) -> str:
    """The KV key for a name (same text as its subject token; valid under the KV key rule)."""
    return encode_token(name)


def kv_key_decode(key: str) -> str:
    """Invert `kv_key`."""
    return decode_token(key)


def is_valid_token(token: str) -> bool:
    """True if `token` is usable as exactly one NATS subject token."""
    return bool(token) and not any(c in ".*>" or c.isspace() for c in token)


def _word(what: str, value: str) -> str:
    if not _WORD_RE.match(value):
        raise ValueError(f"{what} must match {_WORD_RE.pattern}, got {value!r}")
    return value


def snapshot_subject(key: InstanceKey | str) -> str:
    """`baton.snapshot.<instance-token>`; `key` is an InstanceKey or its `host:port` text."""
    return f"{PREFIX}.snapshot.{encode_token(str(key))}"


def detection_subject(cluster: str) -> str:
    """`baton.detection.<cluster-token>`."""
    return f"{PREFIX}.detection.{encode_token(cluster)}"


def recovery_subject(cluster: str, phase: str) -> str:
    """`baton.recovery.<cluster-token>.<phase>`; phase is a plain word such as `started`."""
    return f"{PREFIX}.recovery.{encode_token(cluster)}.{_word('phase', phase)}"


def audit_subject(kind: str) -> str:
    """`baton.audit.<kind>`; kind is a plain word such as `kv-published`."""
    return f"{PREFIX}.audit.{_word('audit kind', kind)}"


def cmd_subject(service: str, verb: str) -> str:
    """`baton.cmd.<service>.<verb>` for core-NATS request/reply."""
    return f"{PREFIX}.cmd.{_word('service', service)}.{_word('verb', verb)}"


def _token_after(subject: str, head: str, tokens: int) -> list[str]:
    parts = subject.split(".")
    want = head.split(".")
    if parts[: len(want)] != want or len(parts) != len(want) + tokens:
        raise ValueError(f"{subject!r} is not a {head}.* subject")
    return parts[len(want) :]


def parse_snapshot_subject(subject: str) -> InstanceKey:
    """The InstanceKey a snapshot subject is about."""
    (token,) = _token_after(subject, f"{PREFIX}.snapshot", 1)
    return InstanceKey.parse(decode_token(token))


def parse_detection_subject(subject: str) -> str:
    """The cluster name a detection subject is about."""
    (token,) = _token_after(subject, f"{PREFIX}.detection", 1)
    return decode_token(token)


def parse_recovery_subject(subject: str) -> tuple[str, str]:
    """(cluster name, phase) of a recovery subject."""
    token, phase = _token_after(subject, f"{PREFIX}.recovery", 2)
    return decode_token(token), phase
