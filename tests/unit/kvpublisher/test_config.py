from __future__ import annotations

import pytest

from libs.config import Settings
from libs.errors import ConfigError
from services.kvpublisher.config import build_stores, reconcile_seconds, select_data_centers

TOKEN = "s3cret-token-value"


def settings() -> Settings:
    return Settings.model_validate(
        {
            "BatonConsulDataCenters": {
                "dc1": {"Address": "127.0.0.1:8500", "AclToken": TOKEN},
                "dc2": {"Address": "127.0.0.1:8501", "Scheme": "https"},
            }
        }
    )


def test_all_dcs_by_default_or_the_chosen_ones() -> None:
    assert list(select_data_centers(settings(), [])) == ["dc1", "dc2"]
    assert list(select_data_centers(settings(), ["dc2", "dc2"])) == ["dc2"]


def test_an_unknown_dc_fails_naming_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"dc9.*configured: dc1, dc2"):
        select_data_centers(settings(), ["dc9"])


def test_no_consul_at_all_fails() -> None:
    with pytest.raises(ConfigError, match="no Consul configured"):
        select_data_centers(Settings(), [])


def test_single_consul_address_serves_this_node_dc() -> None:
    s = Settings.model_validate({"ConsulAddress": "127.0.0.1:8500", "BatonDataCenter": "east"})
    assert list(select_data_centers(s, [])) == ["east"]


def test_reconcile_period() -> None:
    assert reconcile_seconds(Settings(), None) == 30.0
    assert reconcile_seconds(Settings(), 2.5) == 2.5
    with pytest.raises(ConfigError):
        reconcile_seconds(Settings(), 0)


def test_stores_never_show_the_token() -> None:
    stores = build_stores(select_data_centers(settings(), []))
    assert set(stores) == {"dc1", "dc2"}
    assert stores["dc1"].datacenter == "dc1"
    assert TOKEN not in repr(stores) and "https" in repr(stores["dc2"])
