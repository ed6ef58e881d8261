"""The Fleet proxy names an activation refused for a key the coordinator never registered; Flower alone answers
an unknown key and a registered node still counted online with the same `[code: 2004]`. Each case, by name."""

from __future__ import annotations

import base64
import json

import pytest

from deploy.fleet_proxy import NOT_REGISTERED, explain_refused_activation

KEY = b"-----BEGIN PUBLIC KEY-----\nMHYw...\n-----END PUBLIC KEY-----\n"
HEADER = base64.b64encode(KEY).decode()
REFUSED = json.dumps({"code": 2004, "detail": "Failed to activate SuperNode."}).encode()


def test_an_unregistered_key_gets_the_cause_as_public_details():
    asked = []
    body = explain_refused_activation(REFUSED, HEADER, lambda key: asked.append(key) or False)
    assert json.loads(body) == {"code": 2004, "detail": "Failed to activate SuperNode.", "extra": NOT_REGISTERED}
    assert asked == [KEY]  # the key as the SuperNode sent it, decoded from its header


@pytest.mark.parametrize("case, body, header, registered", [
    ("a registered key (a node still counted online)", REFUSED, HEADER, True),
    ("a lookup that failed", REFUSED, HEADER, None),
    ("another Flower error", json.dumps({"code": 2005, "detail": "x"}).encode(), HEADER, False),
    ("details Flower already gave", json.dumps({"code": 2004, "detail": "x", "extra": "y"}).encode(), HEADER, False),
    ("an answer that is not JSON", b"<html>", HEADER, False),
    ("JSON that is not an object", b"[2004]", HEADER, False),
    ("no key header", REFUSED, None, False),
    ("a key header that is not base64", REFUSED, "not base64!", False),
])
def test_anything_else_passes_unchanged(case, body, header, registered):
    assert explain_refused_activation(body, header, lambda key: registered) == body, case
