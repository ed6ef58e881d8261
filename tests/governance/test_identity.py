import os
import stat

import pytest

from governance.errors import PolicyError, UsageError
from governance.identity import (
    REPLY_PURPOSE,
    BadSignatureError,
    IdentityError,
    NodeKey,
    NodeRegistry,
    ReplyRejected,
    UnregisteredNodeError,
    UnsignedReplyError,
    reply_signing_payload,
    verify_reply,
)

H = "ab" * 32


def payload(server_round=1, run_id="run-1"):
    return reply_signing_payload(run_id, server_round, H, "cd" * 32, "ef" * 32)


def registry_with(key: NodeKey, node_id="n1", team="team-a") -> NodeRegistry:
    registry = NodeRegistry()
    registry.register(node_id, key.public_bytes(), team)
    return registry


def test_generated_key_signs_what_verify_reply_accepts():
    key = NodeKey.generate()
    verify_reply(registry_with(key), "n1", key.sign(payload()), payload())


def test_public_key_is_32_raw_bytes_and_hex_matches():
    key = NodeKey.generate()
    assert len(key.public_bytes()) == 32
    assert key.public_hex == key.public_bytes().hex()


def test_load_or_create_writes_key_with_mode_0600(tmp_path):
    path = tmp_path / "keys" / "node.pem"
    NodeKey.load_or_create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")


def test_load_or_create_loads_the_same_key_again(tmp_path):
    path = tmp_path / "node.pem"
    first = NodeKey.load_or_create(path)
    assert NodeKey.load_or_create(path).public_bytes() == first.public_bytes()


def test_key_file_readable_by_others_is_refused(tmp_path):
    path = tmp_path / "node.pem"
    NodeKey.load_or_create(path)
    os.chmod(path, 0o644)
    with pytest.raises(IdentityError, match="chmod 600"):
        NodeKey.load_or_create(path)


def test_key_file_that_is_not_pem_is_refused(tmp_path):
    path = tmp_path / "node.pem"
    path.write_bytes(b"not a key")
    os.chmod(path, 0o600)
    with pytest.raises(IdentityError, match="not an unencrypted PKCS8 PEM"):
        NodeKey.load_or_create(path)


def test_reply_payload_is_canonical_json_with_purpose_tag():
    body = reply_signing_payload("r", 2, H, H, H)
    assert body == (
        b'{"dataset_fingerprint":"' + H.encode() + b'","metrics_digest":"' + H.encode()
        + b'","purpose":"fedgov.reply.v1","run_id":"r","server_round":2,"update_digest":"'
        + H.encode() + b'"}'
    )
    assert REPLY_PURPOSE == "fedgov.reply.v1"


def test_a_reply_with_a_data_summary_also_signs_its_digest_and_one_without_signs_the_old_bytes():
    S = "5a" * 32
    body = reply_signing_payload("r", 2, H, H, H, S)
    assert body == (
        b'{"dataset_fingerprint":"' + H.encode() + b'","metrics_digest":"' + H.encode()
        + b'","purpose":"fedgov.reply.v1","run_id":"r","server_round":2,"summary_digest":"' + S.encode()
        + b'","update_digest":"' + H.encode() + b'"}'
    )
    assert reply_signing_payload("r", 2, H, H, H, None) == reply_signing_payload("r", 2, H, H, H)
    with pytest.raises(IdentityError, match="summary_digest must be 64 lowercase hex"):
        reply_signing_payload("r", 1, H, H, H, "nope")


def test_reply_payload_refuses_a_digest_that_is_not_sha256_hex():
    with pytest.raises(IdentityError, match="update_digest must be 64 lowercase hex"):
        reply_signing_payload("r", 1, "ABC", H, H)


def test_reply_payload_refuses_negative_round():
    with pytest.raises(IdentityError, match="server_round"):
        reply_signing_payload("r", -1, H, H, H)


def test_missing_signature_is_rejected_as_unsigned():
    key = NodeKey.generate()
    with pytest.raises(UnsignedReplyError) as err:
        verify_reply(registry_with(key), "n1", None, payload())
    assert err.value.reason == "unsigned"


def test_reply_from_unregistered_node_is_rejected():
    key = NodeKey.generate()
    with pytest.raises(UnregisteredNodeError) as err:
        verify_reply(NodeRegistry(), "n1", key.sign(payload()), payload())
    assert err.value.reason == "unregistered-key"


def test_signature_by_another_key_is_rejected():
    key, other = NodeKey.generate(), NodeKey.generate()
    with pytest.raises(BadSignatureError) as err:
        verify_reply(registry_with(key), "n1", other.sign(payload()), payload())
    assert err.value.reason == "bad-signature"


def test_signature_replayed_for_another_round_is_rejected():
    key = NodeKey.generate()
    with pytest.raises(BadSignatureError):
        verify_reply(registry_with(key), "n1", key.sign(payload(1)), payload(2))


def test_reply_rejections_are_policy_errors_naming_the_node():
    err = BadSignatureError("n7", "x")
    assert isinstance(err, ReplyRejected) and isinstance(err, PolicyError)
    assert err.node_id == "n7" and err.exit_code == 1


def test_registering_same_node_twice_identically_is_a_no_op():
    key = NodeKey.generate()
    registry = registry_with(key)
    registry.register("n1", key.public_bytes(), "team-a")
    assert len(registry) == 1


def test_registering_a_node_id_with_another_key_is_refused():
    registry = registry_with(NodeKey.generate())
    with pytest.raises(IdentityError, match="already registered"):
        registry.register("n1", NodeKey.generate().public_bytes(), "team-a")


def test_registering_one_key_under_two_node_ids_is_refused():
    key = NodeKey.generate()
    registry = registry_with(key)
    with pytest.raises(IdentityError, match="already registered as node 'n1'"):
        registry.register("n2", key.public_bytes(), "team-a")


def test_registering_a_key_of_wrong_length_is_refused():
    with pytest.raises(IdentityError, match="32 raw Ed25519 bytes"):
        NodeRegistry().register("n1", b"short", "team-a")


def test_get_returns_key_and_team_or_none():
    key = NodeKey.generate()
    registry = registry_with(key)
    node = registry.get("n1")
    assert (node.public_key, node.team) == (key.public_bytes(), "team-a")
    assert registry.get("n2") is None


def test_registry_survives_save_and_load(tmp_path):
    registry = registry_with(NodeKey.generate())
    registry.register("n2", NodeKey.generate().public_bytes(), "team-b")
    path = tmp_path / "nodes.json"
    registry.save(path)
    assert NodeRegistry.load(path).to_dict() == registry.to_dict()


def test_loading_a_missing_registry_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        NodeRegistry.load(tmp_path / "nope.json")


def test_registry_from_dict_refuses_other_formats():
    with pytest.raises(IdentityError, match="not a node registry"):
        NodeRegistry.from_dict({"nodes": {}})
