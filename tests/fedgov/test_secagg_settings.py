"""The SecAgg+ option's settings: what it can run with is refused in one line, before Ray starts."""

from __future__ import annotations

import hashlib
import time

import pytest

from fedgov.secagg import masked_digest
from fedgov.settings import RunSettings
from governance.errors import UsageError
from tests.fedgov_command import run_fedgov


def test_secagg_is_off_by_default_and_its_parameters_are_flowers_defaults():
    secagg = RunSettings.from_run_config().secagg
    assert (secagg.enabled, secagg.num_shares, secagg.reconstruction_threshold, secagg.clipping_range,
            secagg.quantization_range) == (False, 3, 2, 8.0, 4194304)


def test_secagg_settings_round_trip_through_the_run_config():
    settings = RunSettings.from_run_config({"secagg": True, "secagg-num-shares": 5,
                                            "secagg-reconstruction-threshold": 3, "num-partitions": 6})
    assert RunSettings.from_run_config(settings.to_run_config()) == settings
    assert settings.to_run_config()["secagg"] is True


@pytest.mark.parametrize("change,message", [
    ({"strategy": "krum", "num-partitions": 5}, "works only with weighted averaging .* strategy krum"),
    ({"strategy": "fedmedian"}, "strategy fedmedian cannot aggregate"),
    ({"strategy": "fedadam"}, "strategy fedadam cannot aggregate"),
    ({"faults": "1:nan,2:forged"}, "--faults nan cannot be rehearsed under --secagg"),
    ({"secagg-num-shares": 2}, "secagg-num-shares must be at least 3"),
    ({"secagg-reconstruction-threshold": 3}, "must be at least 2 and below secagg-num-shares"),
    ({"secagg-reconstruction-threshold": 1}, "must be at least 2 and below secagg-num-shares"),
    ({"num-partitions": 2}, "secagg-num-shares 3 needs at least that many nodes per round, but this run trains 2"),
    ({"secagg-num-shares": 7, "secagg-reconstruction-threshold": 4, "num-partitions": 6},
     "secagg-num-shares 7 needs at least that many nodes per round, but this run trains 6"),
    ({"fraction-train": 0.2, "num-partitions": 10}, "this run trains 2"),
    ({"secagg-clipping-range": 0.0}, "secagg-clipping-range must be a finite number > 0"),
    ({"secagg-quantization-range": 2**31, "num-partitions": 3}, "the masked sum would overflow"),
])
def test_settings_secagg_cannot_work_with_are_refused(change, message):
    with pytest.raises(UsageError, match=message):
        RunSettings.from_run_config({"secagg": True, **change})


def test_faults_on_the_signed_masked_vector_can_be_rehearsed():
    RunSettings.from_run_config({"secagg": True, "faults": "1:forged,2:unsigned,3:extra-record"})


def test_the_same_settings_without_secagg_are_fine():
    RunSettings.from_run_config({"secagg": False, "strategy": "krum", "num-partitions": 5, "secagg-num-shares": 2})


def test_secagg_with_differential_privacy_is_refused():
    secagg = RunSettings.from_run_config({"secagg": True}).secagg
    with pytest.raises(UsageError, match="cannot be combined with --dp server-fixed"):
        secagg.check_run("fedavg", 10, "server-fixed", ())
    secagg.check_run("fedavg", 10, "none", ())


def test_fedgov_sim_run_refuses_in_one_line_with_exit_2_before_ray_starts(tmp_path):
    started = time.monotonic()
    result = run_fedgov("sim", "run", "--secagg", "--strategy", "krum", "--nodes", "5", "--out", str(tmp_path / "r"),
                        cwd=tmp_path, env={"FEDGOV_HOME": str(tmp_path / "ws")})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: --secagg works only with weighted averaging (fedavg, fedprox): SecAgg+ reveals only the sum, "
        "which strategy krum cannot aggregate"]
    assert not (tmp_path / "ws").exists() and not (tmp_path / "r").exists()  # nothing written, no Ray
    assert time.monotonic() - started < 30


def test_the_masked_digest_follows_its_documented_layout():
    chunks = [b"\x93NUMPY-a", b"", b"xyz"]
    expected = hashlib.sha256(b"".join(len(c).to_bytes(8, "big") + c for c in chunks)).hexdigest()
    assert masked_digest(chunks) == expected
    assert masked_digest([b"ab", b"c"]) != masked_digest([b"a", b"bc"])  # lengths keep the boundaries
