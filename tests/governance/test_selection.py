import pytest

from governance.consent import ConsentCheck
from governance.errors import PolicyError, VerificationError
from governance.selection import SelectionError, select_nodes
from governance.verify.selection import (
    SelectionMismatchError,
    SelectionRecord,
    SelectionUsageError,
    recompute,
    verify_selection,
)


def checks_for(states: dict[str, str]) -> dict[str, ConsentCheck]:
    return {
        node: ConsentCheck(node, state, None if state == "no-consent" else f"c-{node}")
        for node, state in states.items()
    }


NODES = [f"n{i:02d}" for i in range(10)]
PINNED = ["n00", "n03", "n09"]  # seed=42, round=1, k=3: hashlib over the hand-written canonical JSON
ALL_VALID = checks_for({n: "valid" for n in NODES})


def test_selected_nodes_all_have_valid_consent():
    states = {n: ("valid" if i % 2 else "withdrawn") for i, n in enumerate(NODES)}
    record = select_nodes(NODES, checks_for(states), 1.0, 1, seed=7, server_round=1)
    assert record.selected == [n for n in NODES if states[n] == "valid"]


def test_excluded_nodes_carry_their_reason():
    checks = checks_for({"a": "valid", "b": "expired", "c": "no-consent"})
    record = select_nodes(["c", "b", "a"], checks, 1.0, 1, seed=0, server_round=1)
    assert record.excluded == {"b": "expired", "c": "no-consent"}


def test_candidate_without_a_check_is_excluded_as_no_consent():
    record = select_nodes(["a", "b"], checks_for({"a": "valid"}), 1.0, 1, seed=0, server_round=1)
    assert record.excluded == {"b": "no-consent"} and record.selected == ["a"]


def test_sample_size_is_fraction_of_eligible_floored():
    record = select_nodes(NODES, ALL_VALID, 0.35, 1, seed=1, server_round=1)
    assert len(record.selected) == 3


def test_min_nodes_raises_sample_size_above_fraction():
    record = select_nodes(NODES, ALL_VALID, 0.1, 4, seed=1, server_round=1)
    assert len(record.selected) == 4


def test_same_seed_and_round_give_same_selection_whatever_candidate_order():
    a = select_nodes(NODES, ALL_VALID, 0.5, 1, seed=3, server_round=2)
    b = select_nodes(list(reversed(NODES)), ALL_VALID, 0.5, 1, seed=3, server_round=2)
    assert a.selected == b.selected


def test_selection_varies_across_rounds():
    picks = {tuple(select_nodes(NODES, ALL_VALID, 0.3, 1, seed=3, server_round=r).selected) for r in range(1, 9)}
    assert len(picks) > 1


def test_selection_is_sorted():
    selected = select_nodes(NODES, ALL_VALID, 0.5, 1, seed=11, server_round=4).selected
    assert selected == sorted(selected)


def test_recompute_from_record_dict_gives_selected():
    states = {n: ("valid" if i != 3 else "withdrawn") for i, n in enumerate(NODES)}
    record = select_nodes(NODES, checks_for(states), 0.4, 2, seed=99, server_round=5)
    assert recompute(record.to_dict()) == record.selected


def test_record_round_trips_through_dict():
    record = select_nodes(NODES, ALL_VALID, 0.5, 1, seed=5, server_round=1)
    assert SelectionRecord.from_dict(record.to_dict()) == record


def test_verify_selection_accepts_an_untouched_record():
    verify_selection(select_nodes(NODES, ALL_VALID, 0.5, 1, seed=5, server_round=1).to_dict())


def test_verify_selection_rejects_a_swapped_node():
    stored = select_nodes(NODES[:5], ALL_VALID, 0.4, 1, seed=5, server_round=1).to_dict()
    outsider = next(n for n in NODES[:5] if n not in stored["selected"])
    stored["selected"] = sorted([outsider, *stored["selected"][1:]])
    with pytest.raises(SelectionMismatchError):
        verify_selection(stored)
    assert issubclass(SelectionMismatchError, VerificationError)


def test_verify_selection_rejects_a_node_whose_check_was_not_valid():
    checks = checks_for({"a": "valid", "b": "withdrawn"})
    stored = select_nodes(["a", "b"], checks, 1.0, 1, seed=0, server_round=1).to_dict()
    stored["selected"] = ["a", "b"]
    with pytest.raises(SelectionMismatchError):
        verify_selection(stored)


def test_too_few_eligible_raises_selection_error_with_summary():
    checks = checks_for({"a": "valid", "b": "withdrawn", "c": "withdrawn", "d": "no-consent"})
    with pytest.raises(SelectionError, match=r"1 of 4 .* 2 needed; excluded: 1 no-consent, 2 withdrawn"):
        select_nodes(["a", "b", "c", "d"], checks, 1.0, 2, seed=0, server_round=3)
    assert issubclass(SelectionError, PolicyError)


def test_check_about_another_principal_is_refused():
    with pytest.raises(SelectionUsageError, match="about principal"):
        select_nodes(["a"], {"a": ConsentCheck("b", "valid", "c1")}, 1.0, 1, seed=0, server_round=1)


@pytest.mark.parametrize("fraction", [0.0, 1.5, -0.1])
def test_fraction_outside_zero_one_is_refused(fraction):
    with pytest.raises(SelectionUsageError, match="fraction"):
        select_nodes(NODES, ALL_VALID, fraction, 1, seed=0, server_round=1)


def test_min_nodes_below_one_is_refused():
    with pytest.raises(SelectionUsageError, match="min_nodes"):
        select_nodes(NODES, ALL_VALID, 0.5, 0, seed=0, server_round=1)


def test_duplicate_candidates_are_refused():
    with pytest.raises(SelectionUsageError, match="unique"):
        select_nodes(["a", "a"], checks_for({"a": "valid"}), 1.0, 1, seed=0, server_round=1)


def test_verify_selection_rejects_an_exclusion_hidden_from_the_record():
    checks = checks_for({"a": "valid", "b": "valid", "c": "withdrawn"})
    stored = select_nodes(["a", "b", "c"], checks, 1.0, 1, seed=0, server_round=1).to_dict()
    stored["excluded"] = {}
    with pytest.raises(SelectionMismatchError, match="recorded exclusions"):
        verify_selection(stored)


def test_draw_matches_pinned_vector():
    # Pins the documented procedure (SHA-256 rank of canonical JSON per node):
    # a change here means old selection records no longer recompute.
    assert select_nodes(NODES, ALL_VALID, 0.3, 1, seed=42, server_round=1).selected == PINNED
