"""The retraining policy file: what it accepts, and one clear line for everything it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from governance.errors import UsageError
from governance.monitoring.policy import load_policy, parse_policy

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "monitor-policy.toml"


def test_the_documented_example_parses():
    policy = load_policy(EXAMPLE)
    assert policy.thresholds == {"accuracy-drop": 0.05, "drift-share": 0.3, "worst-node": 0.6}
    assert policy.cooldown_s == 6 * 3600
    assert policy.retrain.kind == "simulation" and policy.retrain.purpose == "retraining"
    assert policy.retrain.options == {"rounds": 3, "nodes": 10, "dataset": "breast-cancer", "strategy": "fedavg"}


def test_the_policy_hash_covers_what_decides():
    a = parse_policy("[triggers]\ndrift_share = 0.3\n")
    b = parse_policy("[triggers]\ndrift_share = 0.4\n")
    assert a.policy_hash != b.policy_hash
    assert a.policy_hash == parse_policy("# a comment\n[triggers]\ndrift_share = 0.3\n").policy_hash


@pytest.mark.parametrize("duration, seconds", [("90s", 90), ("30m", 1800), ("6h", 21600), ("1d", 86400),
                                               ("0", None), (0, 0), (120, 120)])
def test_cooldown_durations(duration, seconds):
    text = f"cooldown = {duration!r}\n[triggers]\naccuracy_drop = 0.1\n".replace("'", '"') \
        if isinstance(duration, str) else f"cooldown = {duration}\n[triggers]\naccuracy_drop = 0.1\n"
    if seconds is None:
        with pytest.raises(UsageError, match="cooldown"):
            parse_policy(text)
    else:
        assert parse_policy(text).cooldown_s == seconds


@pytest.mark.parametrize("text, names", [
    ("[triggers]\naccuracy_dorp = 0.1\n", ["unknown key triggers.accuracy_dorp", "triggers.accuracy_drop"]),
    ("colldown = '1h'\n[triggers]\naccuracy_drop = 0.1\n", ["unknown key colldown", "cooldown"]),
    ("[triggers]\ndrift_share = 30\n", ["triggers.drift_share = 30 is out of range", "0.3 = 30 %"]),
    ("[triggers]\ndrift_share = '30%'\n", ["triggers.drift_share must be a number", "'30%'"]),
    ("[triggers]\nworst_node_below = true\n", ["triggers.worst_node_below must be a number"]),
    ("[triggers]\naccuracy_drop = -0.1\n", ["triggers.accuracy_drop = -0.1 is out of range"]),
    ("[triggers]\naccuracy_drop = nan\n", ["triggers.accuracy_drop = nan is out of range"]),
    ("[triggers]\n", ["names no trigger"]),
    ("triggers = 3\n", ["triggers must be a table"]),
    ("cooldown = 'soon'\n[triggers]\naccuracy_drop = 0.1\n", ["cooldown = 'soon' is not a duration"]),
    ("cooldown = '400d'\n[triggers]\naccuracy_drop = 0.1\n", ["cooldown = '400d' is out of range"]),
    ("[triggers]\naccuracy_drop = 0.1\n[retrain]\nrounds = 0\n", ["retrain.rounds = 0 is out of range"]),
    ("[triggers]\naccuracy_drop = 0.1\n[retrain]\nrounds = '3'\n", ["retrain.rounds must be federated rounds"]),
    ("[triggers]\naccuracy_drop = 0.1\n[retrain]\nkind = 'cron'\n", ["retrain.kind = 'cron' is unknown"]),
    ("[triggers]\naccuracy_drop = 0.1\n[retrain]\nkind = 'deployed'\nseed = 1\n", ["retrain.seed applies to a "
                                                                                  "simulation only"]),
    ("[triggers]\naccuracy_drop = 0.1\n[retrain]\ncommand = 'rm -rf /'\n", ["unknown key retrain.command"]),
    ("[triggers\n", ["not valid TOML"]),
])
def test_bad_policies_are_one_line_naming_the_key(text, names):
    with pytest.raises(UsageError) as caught:
        parse_policy(text, "p.toml")
    message = str(caught.value)
    assert "\n" not in message and message.startswith("p.toml: ")
    for name in names:
        assert name in message
