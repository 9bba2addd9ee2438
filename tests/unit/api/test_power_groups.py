"""PowerAuthGroups (orchestrator's UserInGroups): a Unix user of the API's host in one of the groups is
admin; anyone else is read-only unless PowerAuthUsers lists them. Real users/groups of this host."""

from __future__ import annotations

import grp
import os
import pwd

import pytest
from starlette.requests import Request

from libs.config import Settings
from services.api.auth import Authenticator, user_in_groups

ME = pwd.getpwuid(os.getuid())
MY_GROUP = grp.getgrgid(ME.pw_gid).gr_name
OTHER_GROUP = next(
    g.gr_name for g in grp.getgrall() if g.gr_gid not in os.getgrouplist(ME.pw_name, ME.pw_gid)
)


@pytest.mark.parametrize(
    ("user", "groups", "member"),
    [
        (ME.pw_name, [MY_GROUP], True),
        (ME.pw_name, [OTHER_GROUP, MY_GROUP], True),
        (ME.pw_name, [OTHER_GROUP], False),
        (ME.pw_name, [], False),
        ("no-such-user-baton", [MY_GROUP], False),
        ("", [MY_GROUP], False),
    ],
)
def test_user_in_groups(user: str, groups: list[str], member: bool) -> None:
    assert user_in_groups(user, groups) is member


def _request(user: str) -> Request:
    return Request({"type": "http", "headers": [(b"x-forwarded-user", user.encode())]})


@pytest.mark.parametrize(
    ("groups", "role"),
    [([MY_GROUP], "admin"), ([OTHER_GROUP], "read-only"), ([], "read-only")],
)
def test_proxy_user_in_a_power_group_is_admin(groups: list[str], role: str) -> None:
    settings = Settings(AuthenticationMethod="proxy", PowerAuthUsers=[], PowerAuthGroups=groups)
    principal = Authenticator(settings).authenticate(_request(ME.pw_name))
    assert (principal.name, principal.role) == (ME.pw_name, role)
    stranger = Authenticator(settings).authenticate(_request("no-such-user-baton"))
    assert stranger.role == "read-only"
