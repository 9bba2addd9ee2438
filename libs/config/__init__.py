"""Baton's configuration: orchestrator's JSON keys (so existing config files load) plus Baton's own.

    from libs.config import load_settings
    settings = load_settings("/etc/baton.conf.json")     # defaults < file < BATON_<Key> env vars
    settings.InstancePollSeconds                          # field names are the JSON keys

See `loader.py` for precedence, warnings and errors (`messages.py` words them), `settings.py` for the
model and derived values (its keys: `topology.py`, `recovery.py`, `baton.py`), `mycnf.py` for credential
files, `legacy.py` for orchestrator keys Baton ignores or renames, `reference.py` for the generated key
table.
"""

from libs.config.baton import AuthToken, ConsulDataCenter
from libs.config.loader import ENV_PREFIX, SECRET_KEYS, load_settings
from libs.config.mycnf import MyCnfCredentials, read_mycnf
from libs.config.settings import Settings
from libs.errors import ConfigError

__all__ = [
    "ENV_PREFIX",
    "SECRET_KEYS",
    "AuthToken",
    "ConfigError",
    "ConsulDataCenter",
    "MyCnfCredentials",
    "Settings",
    "load_settings",
    "read_mycnf",
]
