"""RFC 9162 Merkle tree: the shared transparency-dev vectors and our own proofs."""

import base64
import json
from pathlib import Path

import pytest

from governance.ledger import merkle
from governance.verify.merkle import Frontier, ProofError, hash_leaf, verify_consistency, verify_inclusion
from tests.governance.conftest import VECTORS


def _b(text: str) -> bytes:
    return base64.b64decode(text)


def _cases(kind: str) -> list[Path]:
    return sorted((VECTORS / kind).rglob("*.json"))


def test_vectors_directory_is_present() -> None:
    assert len(_cases("inclusion")) > 50 and len(_cases("consistency")) > 50


@pytest.mark.parametrize("path", _cases("inclusion"), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_inclusion_vector(path: Path) -> None:
    case = json.loads(path.read_text())
    args = (case["leafIdx"], case["treeSize"], _b(case["leafHash"]), [_b(p) for p in case["proof"] or []], _b(case["root"]))
    if case["wantErr"]:
        with pytest.raises(ProofError):
            verify_inclusion(*args)
    else:
        verify_inclusion(*args)


@pytest.mark.parametrize("path", _cases("consistency"), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_consistency_vector(path: Path) -> None:
    case = json.loads(path.read_text())
    args = (case["size1"], case["size2"], [_b(p) for p in case["proof"] or []], _b(case["root1"]), _b(case["root2"]))
    if case["wantErr"]:
        with pytest.raises(ProofError):
            verify_consistency(*args)
    else:
        verify_consistency(*args)


def test_tree_roots_match_the_reference_roots() -> None:
    data = json.loads((VECTORS / "tree-roots.json").read_text())
    leaves = [hash_leaf(bytes.fromhex(x)) for x in data["leaf_inputs_hex"]]
    for size, root_hex in enumerate(data["root_hashes_by_size_hex"]):
        assert merkle.root_of(leaves[:size]).hex() == root_hex


def test_proofs_from_stored_subtrees_verify_for_every_size_up_to_40() -> None:
    leaves = [hash_leaf(i.to_bytes(2, "big")) for i in range(40)]
    fetch = merkle.leaf_hashes_fetcher(leaves)
    for size in range(1, 41):
        root = merkle.root_of(leaves[:size])
        assert merkle.root_from_nodes(size, fetch) == root
        for index in range(size):
            verify_inclusion(index, size, leaves[index], merkle.inclusion_proof(index, size, fetch), root)
        for old in range(1, size + 1):
            proof = merkle.consistency_proof(old, size, fetch)
            verify_consistency(old, size, proof, merkle.root_of(leaves[:old]), root)


def test_frontier_reports_each_completed_subtree_once() -> None:
    frontier = Frontier()
    completed = [node[:2] for i in range(8) for node in frontier.extend([hash_leaf(bytes([i]))])]
    assert completed == [(1, 0), (1, 1), (2, 0), (1, 2), (1, 3), (2, 1), (3, 0)]
