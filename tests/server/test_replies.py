"""Reply validation: every malformed shape of update is named, a good one passes."""

import numpy as np
import pytest
from flwr.app import ArrayRecord, MetricRecord, RecordDict

from fedgov.models import build_model
from server.replies import content_problem, model_spec
from simulations.rehearsal import FAULTS, apply_fault


def good_reply() -> tuple[RecordDict, dict]:
    arrays = ArrayRecord(build_model("breast-cancer").state_dict())
    content = RecordDict({
        "arrays": ArrayRecord(build_model("breast-cancer", seed=1).state_dict()),
        "metrics": MetricRecord({"train-loss": 0.5, "local-loss": 0.41, "local-accuracy": 0.875, "num-examples": 36}),
    })
    return content, model_spec(arrays)


def test_a_well_formed_reply_passes():
    content, spec = good_reply()
    assert content_problem(content, spec) is None


@pytest.mark.parametrize("kind,reason", [
    ("nan", "holds NaN or Inf"),
    ("shape", "has shape (3, 3)"),
    ("dtype", "has dtype 'float64'"),
    ("bad-npy", "is not a valid .npy array (ValueError)"),
    ("foreign-stype", "is serialized as 'torch.Tensor', not numpy.ndarray"),
    ("huge-metric", "metric 'train-loss' is outside ±(2^53-1)"),
    ("extra-array", "extra arrays ['smuggled']"),
    ("missing-array", "missing arrays ['net.0.weight']"),
    ("missing-num-examples", "missing 'num-examples'"),
    ("extra-record", "unexpected record 'rows'"),
    ("bad-accuracy", "metric 'local-accuracy' must be a number within [0, 1], got 1.5"),
])
def test_each_malformed_reply_is_named_with_its_reason(kind, reason):
    content, spec = good_reply()
    apply_fault(kind, content)
    problem = content_problem(content, spec)
    assert problem is not None and reason in problem


def test_every_fault_kind_is_covered_above():
    # extra-metric is well formed alone (split_replies rejects it against its peers); the
    # statement faults and inflated-examples are the signature check's: all in e2e tests; the
    # summary faults are the summary check's (tests/server/test_summary_checks.py)
    assert set(FAULTS) - {"extra-metric", "unsigned", "forged", "deep-fingerprint", "inflated-examples",
                          "summary-negative", "summary-exposed", "summary-unknown-feature"} == {
        "nan", "shape", "dtype", "extra-array", "missing-array", "missing-num-examples", "extra-record", "bad-npy",
        "foreign-stype", "huge-metric", "bad-accuracy"}


@pytest.mark.parametrize("key, value, reason", [
    ("local-accuracy", 1.0000001, "metric 'local-accuracy' must be a number within [0, 1], got 1.0000001"),
    ("local-accuracy", -0.25, "metric 'local-accuracy' must be a number within [0, 1], got -0.25"),
    ("local-accuracy", [0.5, 0.5], "metric 'local-accuracy' must be a number within [0, 1], got [0.5, 0.5]"),
    ("local-accuracy", float("nan"), "metric 'local-accuracy' is NaN or Inf"),
    ("local-loss", -1e-9, "metric 'local-loss' must be a number >= 0, got -1e-09"),
    ("local-loss", [0.3], "metric 'local-loss' must be a number >= 0, got [0.3]"),
    ("local-loss", float("inf"), "metric 'local-loss' is NaN or Inf"),
])
def test_the_nodes_local_loss_and_accuracy_out_of_range_are_named(key, value, reason):
    content, spec = good_reply()
    content["metrics"][key] = value
    assert content_problem(content, spec) == reason


@pytest.mark.parametrize("key, value", [("local-accuracy", 0.0), ("local-accuracy", 1.0), ("local-accuracy", 1),
                                        ("local-loss", 0.0), ("local-loss", 37.5), ("local-loss", 3)])
def test_the_nodes_local_loss_and_accuracy_at_their_bounds_pass(key, value):
    content, spec = good_reply()
    content["metrics"][key] = value
    assert content_problem(content, spec) is None


def test_a_reply_without_local_loss_and_accuracy_passes_as_from_an_earlier_node():
    content, spec = good_reply()
    del content["metrics"]["local-loss"]
    del content["metrics"]["local-accuracy"]
    assert content_problem(content, spec) is None


def test_zero_examples_is_refused():
    content, spec = good_reply()
    content["metrics"]["num-examples"] = 0
    assert "positive integer" in content_problem(content, spec)


def test_an_infinite_metric_is_refused():
    content, spec = good_reply()
    content["metrics"]["train-loss"] = float("inf")
    assert "metric 'train-loss' is NaN or Inf" in content_problem(content, spec)


def test_inf_in_weights_is_refused():
    content, spec = good_reply()
    key = next(iter(content["arrays"].keys()))
    values = content["arrays"][key].numpy().copy()
    values.flat[-1] = np.inf
    from flwr.app import Array
    content["arrays"][key] = Array(values)
    assert "NaN or Inf" in content_problem(content, spec)
