"""What `fedgov node join` says about its connection, read from the SuperNode's own lines (Flower 1.42's wording)."""

from __future__ import annotations

from deploy.connection_watch import ConnectionWatch
from deploy.fleet_proxy import NOT_REGISTERED

ACTIVATED = "\x1b[92mINFO \x1b[0m:      SuperNode ID: 1234"
RETRY = "\x1b[93mWARNING \x1b[0m:   Connection attempt failed, retrying in 2.50 seconds"


def _watch() -> ConnectionWatch:
    return ConnectionWatch("radiology", "coord.example.org:9092")


def test_activation_is_connected_with_the_flower_node_id():
    assert _watch().feed(ACTIVATED, 0.0) == ("node radiology: connected to coord.example.org:9092 (Flower node id "
                                             "1234)")


def test_a_retry_after_connecting_is_a_lost_connection_said_once():
    watch = _watch()
    watch.feed(ACTIVATED, 0.0)
    assert watch.feed(RETRY, 10.0) == ("node radiology: lost the connection to coord.example.org:9092; the SuperNode "
                                       "retries by itself")
    assert watch.feed(RETRY, 13.0) is None
    assert watch.state == "retrying"


def test_a_retry_that_brings_no_new_failure_is_connected_again():
    watch = _watch()
    watch.feed(ACTIVATED, 0.0)
    watch.feed(RETRY, 10.0)
    assert watch.tick(20.0) is None  # 2.5 s + the margin have not passed
    assert watch.tick(23.0) == "node radiology: connected to coord.example.org:9092 again"
    assert watch.state == "connected"


def test_a_coordinator_not_reachable_at_start_is_said_once():
    watch = _watch()
    assert watch.feed(RETRY, 0.0) == ("node radiology: cannot reach coord.example.org:9092 yet; the SuperNode retries "
                                      "by itself")
    assert watch.feed(RETRY, 3.0) is None
    assert watch.tick(100.0) is None  # not connected until the SuperNode says it was activated


def test_flowers_activation_refusal_is_noticed_for_a_retry():
    watch = _watch()
    assert watch.feed("\x1b[91mERROR \x1b[0m:     Exit Code: 305", 0.0) is None
    assert watch.refused


def test_a_key_the_coordinator_never_registered_is_noticed_as_such():
    """Flower refuses it as it refuses a node still counted online; the coordinator's Fleet proxy adds the cause."""
    watch = _watch()
    for line in ["\x1b[91mERROR \x1b[0m:     Exit Code: 305", "Failed to initialize the connection to the SuperLink.",
                 "[code: 2004] Failed to activate SuperNode.", NOT_REGISTERED]:
        assert watch.feed(line, 0.0) is None
    assert watch.refused and watch.unregistered


def test_other_lines_change_nothing():
    watch = _watch()
    watch.feed(ACTIVATED, 0.0)
    assert watch.feed("INFO :      Received successfully", 1.0) is None
    assert watch.tick(1000.0) is None and watch.state == "connected"
    assert not watch.refused and not watch.unregistered
