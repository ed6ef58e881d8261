"""The privacy group of the run config: DP mode, noise, clipping, delta and per-node caps, checked once."""

from __future__ import annotations

import pytest

from fedgov.settings import RunSettings
from governance.errors import UsageError


def test_dp_is_off_by_default_and_no_node_has_a_cap():
    privacy = RunSettings.from_run_config().privacy
    assert privacy.dp == "none" and not privacy.enabled and privacy.cap_for("sim-0000") is None


def test_a_nodes_own_cap_wins_over_the_default_cap():
    privacy = RunSettings.from_run_config({"dp": "server-fixed", "privacy-budgets": "sim-0002:1.5, sim-0005:3",
                                           "privacy-max-epsilon": 8.0}).privacy
    assert privacy.caps == {"sim-0002": 1.5, "sim-0005": 3.0}
    assert privacy.cap_for("sim-0002") == 1.5 and privacy.cap_for("sim-0000") == 8.0


@pytest.mark.parametrize("config,message", [
    ({"dp": "local"}, "unknown dp mode 'local': choose one of none, server-fixed, client-fixed"),
    ({"dp": "server-fixed", "dp-noise-multiplier": 0.0}, "dp-noise-multiplier and dp-clipping-norm must be finite"),
    ({"dp": "server-fixed", "dp-clipping-norm": float("inf")}, "dp-noise-multiplier and dp-clipping-norm must be"),
    ({"dp": "client-fixed", "dp-delta": 1.0}, "dp-delta must be in (0, 1), got 1.0"),
    ({"dp": "client-fixed", "privacy-max-epsilon": -1.0}, "privacy-max-epsilon must be a finite number >= 0"),
    ({"dp": "server-fixed", "privacy-budgets": "sim-0002"}, "bad privacy budget 'sim-0002': use NODE:EPSILON"),
    ({"dp": "server-fixed", "privacy-budgets": "sim-0002:0"}, "bad privacy budget 'sim-0002:0'"),
    ({"dp": "server-fixed", "privacy-budgets": "sim-0002:nan"}, "bad privacy budget 'sim-0002:nan'"),
    ({"privacy-budgets": "sim-0002:2"}, "privacy budgets are spent only under differential privacy"),
    ({"dp": "server-fixed", "strategy": "krum"}, "--dp server-fixed needs an averaging strategy (fedavg, fedprox)"),
])
def test_bad_privacy_settings_fail_in_one_line(config, message):
    with pytest.raises(UsageError) as err:
        RunSettings.from_run_config(config)
    assert message in str(err.value)


def test_the_privacy_keys_travel_in_the_run_config_the_run_records():
    config = RunSettings.from_run_config({"dp": "client-fixed", "privacy-budgets": "sim-0001:2"}).to_run_config()
    assert config["dp"] == "client-fixed" and config["privacy-budgets"] == "sim-0001:2"
    assert {"dp-noise-multiplier", "dp-clipping-norm", "dp-delta", "privacy-max-epsilon"} <= set(config)
