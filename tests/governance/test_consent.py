from datetime import datetime, timezone

import pytest

from governance.consent import (
    ConsentAlreadyWithdrawnError,
    ConsentCheck,
    ConsentGranted,
    ConsentRecord,
    ConsentWithdrawn,
    DuplicateConsentRecordError,
    InvalidConsentRecordError,
    UnknownConsentRecordError,
    consent_event_from_dict,
    consent_state,
    find_valid_consent,
    fold_consent,
)
from governance.errors import UsageError

PURPOSE = "train-diagnostic-model"


def record(record_id="c1", principal="n1", purpose=PURPOSE, granted_at="2025-01-01T00:00:00Z", **kw):
    fields = dict(
        record_id=record_id,
        principal=principal,
        team="cardiology",
        purpose=purpose,
        data_categories=["health.diagnosis"],
        privacy_notice_version="2.1",
        privacy_notice_hash="0" * 64,
        collection_method="signed-web-form",
        granted_at=granted_at,
    )
    fields.update(kw)
    return ConsentRecord(**fields)


def at(text):
    return datetime.fromisoformat(text)


def test_granted_record_is_valid_for_its_purpose_after_grant():
    assert consent_state(record(), PURPOSE, at("2025-02-01T00:00:00Z")) == "valid"


def test_record_is_wrong_purpose_for_another_purpose():
    assert consent_state(record(), "marketing", at("2025-02-01T00:00:00Z")) == "wrong-purpose"


def test_record_is_not_yet_valid_before_grant():
    assert consent_state(record(), PURPOSE, at("2024-12-31T23:59:59Z")) == "not-yet-valid"


def test_record_is_expired_at_its_expiry():
    r = record(expires_at="2025-06-01T00:00:00Z")
    assert consent_state(r, PURPOSE, at("2025-06-01T00:00:00Z")) == "expired"


def test_withdrawn_record_is_withdrawn_after_withdrawal_and_valid_before():
    [r] = fold_consent([ConsentGranted(record()), ConsentWithdrawn("c1", "2025-03-01T00:00:00Z", "moved")]).values()
    assert consent_state(r, PURPOSE, at("2025-03-02T00:00:00Z")) == "withdrawn"
    assert consent_state(r, PURPOSE, at("2025-02-28T00:00:00Z")) == "valid"


def test_fold_sets_withdrawn_at_and_keeps_the_rest():
    folded = fold_consent([ConsentGranted(record()), ConsentWithdrawn("c1", "2025-03-01T00:00:00Z")])
    assert folded["c1"] == record(withdrawn_at="2025-03-01T00:00:00Z")


def test_withdrawing_an_unknown_record_is_refused():
    with pytest.raises(UnknownConsentRecordError, match="no such record"):
        fold_consent([ConsentWithdrawn("c9", "2025-03-01T00:00:00Z")])


def test_withdrawing_twice_is_refused():
    events = [ConsentGranted(record()), ConsentWithdrawn("c1", "2025-03-01T00:00:00Z"),
              ConsentWithdrawn("c1", "2025-03-02T00:00:00Z")]
    with pytest.raises(ConsentAlreadyWithdrawnError, match="already withdrawn"):
        fold_consent(events)


def test_withdrawal_before_grant_is_refused():
    with pytest.raises(InvalidConsentRecordError, match="before it was granted"):
        fold_consent([ConsentGranted(record()), ConsentWithdrawn("c1", "2024-01-01T00:00:00Z")])


def test_granting_the_same_record_id_twice_is_refused():
    with pytest.raises(DuplicateConsentRecordError):
        fold_consent([ConsentGranted(record()), ConsentGranted(record())])


def test_empty_purpose_is_refused():
    with pytest.raises(InvalidConsentRecordError, match="purpose must be a non-empty string"):
        record(purpose="  ")


def test_expiry_before_grant_is_refused():
    with pytest.raises(InvalidConsentRecordError, match="not after it was granted"):
        record(expires_at="2024-01-01T00:00:00Z")


def test_non_utc_time_is_refused():
    with pytest.raises(InvalidConsentRecordError, match="must be in UTC"):
        record(granted_at="2025-01-01T00:00:00+02:00")


def test_naive_time_is_refused():
    with pytest.raises(InvalidConsentRecordError, match="must be in UTC"):
        record(granted_at="2025-01-01T00:00:00")


def test_record_without_data_categories_is_refused():
    with pytest.raises(InvalidConsentRecordError, match="at least one category"):
        record(data_categories=[])


def test_privacy_notice_hash_must_be_sha256_hex():
    with pytest.raises(InvalidConsentRecordError, match="privacy_notice_hash"):
        record(privacy_notice_hash="v2")


def test_consent_validation_errors_are_usage_errors():
    assert issubclass(InvalidConsentRecordError, UsageError)
    assert InvalidConsentRecordError("x").exit_code == 2


def test_checking_at_a_naive_time_is_refused():
    with pytest.raises(UsageError, match="timezone-aware"):
        consent_state(record(), PURPOSE, datetime(2025, 2, 1))


def test_events_round_trip_through_dicts():
    events = [ConsentGranted(record(jurisdiction="EU", expires_at="2026-01-01T00:00:00Z")),
              ConsentWithdrawn("c1", "2025-03-01T00:00:00Z", "patient request")]
    assert [consent_event_from_dict(e.to_dict()) for e in events] == events


def test_event_dicts_are_tagged_with_their_type():
    assert ConsentGranted(record()).to_dict()["type"] == "consent.granted"
    assert ConsentWithdrawn("c1", "2025-03-01T00:00:00Z").to_dict()["type"] == "consent.withdrawn"


def test_unknown_event_type_is_refused():
    with pytest.raises(UsageError, match="unknown consent event type"):
        consent_event_from_dict({"type": "consent.amended"})


def test_record_from_dict_refuses_unknown_fields():
    with pytest.raises(InvalidConsentRecordError, match="unknown consent record fields"):
        ConsentRecord.from_dict({**record().to_dict(), "colour": "red"})


def test_find_picks_newest_valid_record():
    records = [record("c1", granted_at="2025-01-01T00:00:00Z"), record("c2", granted_at="2025-02-01T00:00:00Z")]
    check = find_valid_consent(records, "n1", PURPOSE, at("2025-03-01T00:00:00Z"))
    assert check == ConsentCheck("n1", "valid", "c2")


def test_a_withdrawal_also_withdraws_the_older_records_of_the_purpose():
    """A node that said "no" is not selected through an older "yes"."""
    records = [record("c1"), record("c2", granted_at="2025-02-01T00:00:00Z", withdrawn_at="2025-02-15T00:00:00Z")]
    check = find_valid_consent(records, "n1", PURPOSE, at("2025-03-01T00:00:00Z"))
    assert check == ConsentCheck("n1", "withdrawn", "c2")


def test_a_withdrawal_of_an_older_record_also_withdraws_a_newer_one_granted_before_it():
    records = [record("c1", withdrawn_at="2025-02-15T00:00:00Z"), record("c2", granted_at="2025-02-01T00:00:00Z")]
    assert find_valid_consent(records, "n1", PURPOSE, at("2025-03-01T00:00:00Z")).state == "withdrawn"


def test_a_grant_after_the_withdrawal_is_a_new_yes():
    records = [record("c1", withdrawn_at="2025-02-15T00:00:00Z"), record("c2", granted_at="2025-03-01T00:00:00Z")]
    assert find_valid_consent(records, "n1", PURPOSE, at("2025-03-10T00:00:00Z")) == ConsentCheck("n1", "valid", "c2")


def test_a_withdrawal_applies_from_its_time_on():
    records = [record("c1"), record("c2", granted_at="2025-02-01T00:00:00Z", withdrawn_at="2025-02-15T00:00:00Z")]
    assert find_valid_consent(records, "n1", PURPOSE, at("2025-02-10T00:00:00Z")) == ConsentCheck("n1", "valid", "c2")


def test_a_withdrawal_for_another_purpose_leaves_this_one_valid():
    records = [record("c1"), record("c2", purpose="other", granted_at="2025-02-01T00:00:00Z",
                                    withdrawn_at="2025-02-15T00:00:00Z")]
    assert find_valid_consent(records, "n1", PURPOSE, at("2025-03-01T00:00:00Z")) == ConsentCheck("n1", "valid", "c1")


def test_find_reports_no_consent_for_unknown_principal():
    check = find_valid_consent([record()], "n2", PURPOSE, at("2025-03-01T00:00:00Z"))
    assert check == ConsentCheck("n2", "no-consent", None)


def test_find_reports_withdrawn_with_the_record_that_explains_it():
    records = {"c1": record(withdrawn_at="2025-02-01T00:00:00Z")}
    check = find_valid_consent(records, "n1", PURPOSE, at("2025-03-01T00:00:00Z"))
    assert check == ConsentCheck("n1", "withdrawn", "c1")


def test_find_prefers_the_purpose_reason_over_wrong_purpose():
    records = [record("c1", expires_at="2025-02-01T00:00:00Z"),
               record("c2", purpose="marketing", granted_at="2025-02-15T00:00:00Z")]
    assert find_valid_consent(records, "n1", PURPOSE, at("2025-03-01T00:00:00Z")).state == "expired"


def test_find_reports_wrong_purpose_when_only_other_purposes_exist():
    records = [record("c1", purpose="marketing")]
    assert find_valid_consent(records, "n1", PURPOSE, at("2025-03-01T00:00:00Z")).state == "wrong-purpose"


def test_find_refuses_an_empty_purpose():
    with pytest.raises(UsageError, match="purpose"):
        find_valid_consent([record()], "n1", "", datetime(2025, 3, 1, tzinfo=timezone.utc))


def test_records_by_principal_groups_every_record_under_its_node():
    from governance.consent import records_by_principal

    a1, a2, b1 = (record(record_id=i, principal=p) for i, p in (("a1", "node-a"), ("a2", "node-a"), ("b1", "node-b")))
    grouped = records_by_principal([a1, b1, a2])
    assert {k: [r.record_id for r in v] for k, v in grouped.items()} == {"node-a": ["a1", "a2"], "node-b": ["b1"]}


def test_reading_a_ledger_where_a_withdrawal_raced_keeps_the_first():
    from governance.consent import ConsentGranted, ConsentWithdrawn, fold_consent

    events = [ConsentGranted(record()), ConsentWithdrawn("c1", "2025-02-01T00:00:00Z", "first"),
              ConsentWithdrawn("c1", "2025-03-01T00:00:00Z", "raced")]
    assert fold_consent(events, strict=False)["c1"].withdrawn_at == "2025-02-01T00:00:00Z"
