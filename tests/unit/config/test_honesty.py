"""Every setting does what it says: each key is read by the code `usage.READERS` names, or it is in
`usage.NOT_USED`, warned about at load and listed in the docs (issue 17, item 1)."""

from __future__ import annotations

import ast
import functools
import json
import logging
from pathlib import Path

import pytest

from libs.config import load_settings
from libs.config.reference import unused_markdown
from libs.config.settings import Settings
from libs.config.usage import NOT_USED, READERS
from libs.hooks.runner import HookKind

ROOT = Path(__file__).resolve().parents[3]
CODE_DIRS = ("libs", "services")
HOOK_MEMBERS = {member.name: member.value for member in HookKind}


@functools.cache
def _tree(module: str) -> ast.Module:
    path = ROOT / (module.replace(".", "/") + ".py")
    assert path.is_file(), f"reader module {module} does not exist"
    return ast.parse(path.read_text(encoding="utf-8"))


def _find(tree: ast.AST, qualname: str) -> ast.AST | None:
    """The def/class (nested by `.`) or module-level assignment named `qualname`."""
    node: ast.AST = tree
    for part in qualname.split("."):
        found: ast.AST | None = None
        for child in ast.iter_child_nodes(node):
            if (
                isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
                and child.name == part
            ):
                found = child
            elif isinstance(child, ast.Assign | ast.AnnAssign):
                targets = child.targets if isinstance(child, ast.Assign) else [child.target]
                if any(isinstance(t, ast.Name) and t.id == part for t in targets):
                    found = child
        if found is None:
            return None
        node = found
    return node


def _reads(node: ast.AST, key: str) -> bool:
    """`.Key`, the string "Key", or `HookKind.MEMBER` whose value is Key — in code, not in docstrings."""
    docstrings = {
        id(n.body[0].value)
        for n in ast.walk(node)
        if isinstance(n, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and n.body
        and isinstance(n.body[0], ast.Expr)
        and isinstance(n.body[0].value, ast.Constant)
    }
    for sub in ast.walk(node):
        if isinstance(sub, ast.Attribute):
            if sub.attr == key:
                return True
            hook = isinstance(sub.value, ast.Name) and sub.value.id == "HookKind"
            if hook and HOOK_MEMBERS.get(sub.attr) == key:
                return True
        if isinstance(sub, ast.Constant) and sub.value == key and id(sub) not in docstrings:
            return True
    return False


@functools.cache
def _names_used_outside_config() -> frozenset[str]:
    """Every attribute and name referenced by code outside libs/config."""
    names: set[str] = set()
    for top in CODE_DIRS:
        for path in (ROOT / top).rglob("*.py"):
            if path.is_relative_to(ROOT / "libs" / "config"):
                continue
            for sub in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(sub, ast.Attribute):
                    names.add(sub.attr)
                elif isinstance(sub, ast.Name):
                    names.add(sub.id)
    return frozenset(names)


@functools.cache
def _config_functions() -> dict[str, frozenset[str]]:
    """Each function/method of libs/config -> the attributes and names its code references."""
    out: dict[str, frozenset[str]] = {}
    for path in (ROOT / "libs" / "config").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                refs = {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}
                refs |= {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
                out[node.name] = frozenset(refs)
    return out


def _used_outside_config(name: str) -> bool:
    """Code outside libs.config uses `name`, or uses a libs.config function that uses it."""
    outside = _names_used_outside_config()
    if name in outside:
        return True
    return any(name in refs and caller in outside for caller, refs in _config_functions().items())


def test_every_key_is_read_or_declared_unused() -> None:
    fields = set(Settings.model_fields)
    missing = sorted(fields - set(READERS) - set(NOT_USED))
    assert not missing, (
        f"keys neither read (libs/config/usage.py READERS) nor declared unused (NOT_USED): {missing}"
    )
    both = sorted(set(READERS) & set(NOT_USED))
    assert not both, f"keys both read and declared unused: {both}"
    stale = sorted((set(READERS) | set(NOT_USED)) - fields)
    assert not stale, f"usage.py names keys Settings does not have: {stale}"


@pytest.mark.parametrize("key", sorted(READERS))
def test_each_reader_really_reads_its_key(key: str) -> None:
    for reader in READERS[key]:
        module, _, qualname = reader.partition(":")
        node = _find(_tree(module), qualname) if qualname else _tree(module)
        assert node is not None, f"{key}: reader {reader} does not exist"
        assert _reads(node, key), f"{key}: {reader} does not read it"
        if module.startswith("libs.config.") and module != "libs.config.loader":
            name = qualname.rsplit(".", 1)[-1]
            assert _used_outside_config(name), (
                f"{key}: {reader} reads it, but no code outside libs.config uses {name}"
            )


def test_the_checker_can_fail() -> None:
    """The checker itself: a reader that does not mention the key, and docstring mentions, fail."""
    tree = ast.parse('def f(s):\n    """InstancePollSeconds"""\n    return s.Other\n')
    assert not _reads(tree, "InstancePollSeconds")
    assert _reads(ast.parse("x = s.InstancePollSeconds"), "InstancePollSeconds")
    assert _reads(ast.parse("k = HookKind.PRE_FAILOVER"), "PreFailoverProcesses")


@pytest.mark.parametrize("key", sorted(NOT_USED))
def test_unused_key_set_in_a_config_is_warned(
    key: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    default = Settings.model_fields[key].get_default(call_default_factory=True)
    value = getattr(default, "get_secret_value", lambda: default)()
    path = tmp_path / "baton.json"
    path.write_text(json.dumps({key: value}))
    with caplog.at_level(logging.WARNING, logger="libs.config.loader"):
        load_settings(path, env={})
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any(key in m and "not used by Baton" in m for m in warned), warned


def test_unset_unused_keys_are_not_warned(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "baton.json"
    path.write_text(json.dumps({"InstancePollSeconds": 5}))
    with caplog.at_level(logging.WARNING, logger="libs.config.loader"):
        load_settings(path, env={})
    assert not [r for r in caplog.records if "not used by Baton" in r.getMessage()]


def test_unused_key_from_the_environment_is_warned(caplog: pytest.LogCaptureFixture) -> None:
    key = sorted(NOT_USED)[0]
    with caplog.at_level(logging.WARNING, logger="libs.config.loader"):
        load_settings(None, env={f"BATON_{key}": json.dumps(_sample(key))})
    assert any(key in r.getMessage() and "not used by Baton" in r.getMessage() for r in caplog.records)


def _sample(key: str) -> object:
    default = Settings.model_fields[key].get_default(call_default_factory=True)
    return getattr(default, "get_secret_value", lambda: default)()


def test_docs_list_every_unused_key() -> None:
    architecture = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    assert unused_markdown() in architecture, (
        "docs/architecture.md must hold the current unused_markdown() list (section 'Accepted, not used')"
    )
    for key in NOT_USED:
        assert f"`{key}`" in unused_markdown()
