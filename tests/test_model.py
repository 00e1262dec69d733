"""Field rules of the hooks file that guard what later reaches the wire: an id goes into the
`x-proxy-hooks-hook` response header, names into paths and logs, an upstream into the route."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from addon.model import Group, Hook, HooksFile, Match, Service

HOOK = {
    "id": "01hz8x9k2b3c4d5e6f7g8h9j0k",
    "match": {"method": "*", "path": "/x"},
    "script": {"path": "/x.py"},
}


@pytest.mark.parametrize("ending", ["\n", "\r\n", "\r", "\x00", " "])
def test_no_value_ends_in_a_line_break_or_control(ending: str) -> None:
    """`$` in a regex also matches before a final newline: each rule must refuse it."""
    with pytest.raises(ValidationError):
        Hook.model_validate({**HOOK, "id": HOOK["id"] + ending})
    with pytest.raises(ValidationError):
        HooksFile.model_validate({"container": "demo" + ending})
    with pytest.raises(ValidationError):
        Match.model_validate({"method": "*", "path": "/x", "headers": {"x-a" + ending: "1"}})
    with pytest.raises(ValidationError):
        Group.model_validate({"headers": {"x-a" + ending: "1"}})
    with pytest.raises(ValidationError):
        Service.model_validate({"upstream": "http://127.0.0.1:9001" + ending})
    assert Hook.model_validate(HOOK).id == HOOK["id"]
