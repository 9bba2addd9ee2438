"""The sandbox's state file (`<base>/sandbox.json`): enough for another process to show or stop it.

No passwords are stored: the harness uses root over the unix socket, and the sandbox users' passwords
are the documented constants of `libs.sandbox.sandbox`.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from libs.errors import SandboxError
from libs.sandbox.spec import TopologySpec

STATE_FILE = "sandbox.json"


class NodeState(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    server_id: int
    port: int
    datadir: Path
    socket: Path
    log_error: Path
    pid: int = 0
    host: str = "127.0.0.1"  # the address it listens on and reports (report_host)
    netns: str | None = None  # the network namespace it runs in (chaos tests); None: this one


class SandboxState(BaseModel):
    model_config = ConfigDict(frozen=True)

    spec: TopologySpec
    nodes: tuple[NodeState, ...]
    created_at: datetime
    slave_net_timeout: int
    socket_dir: Path | None = None  # short socket dir outside base_dir (long base paths)


def state_path(base_dir: Path) -> Path:
    return base_dir / STATE_FILE


def save_state(base_dir: Path, state: SandboxState) -> None:
    path = state_path(base_dir)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(state.model_dump(mode="json"), indent=2))
    tmp.replace(path)


def load_state(base_dir: Path) -> SandboxState | None:
    path = state_path(base_dir)
    if not path.is_file():
        return None
    try:
        return SandboxState.model_validate_json(path.read_text())
    except ValueError as exc:
        raise SandboxError(f"unreadable sandbox state {path}: {str(exc).splitlines()[0]}") from None
