"""A witness: an independent party that countersigns a ledger's checkpoints (C2SP tlog-cosignature).

Whoever holds a ledger's signing key can show one history to one auditor and another to
the next (a split view): each checkpoint is validly signed. A witness keeps, per log, the
last checkpoint it cosigned and cosigns a new one only when an RFC 9162 consistency proof
shows that the new tree extends it. Auditors who require its cosignature
(`fedgov audit verify --require-cosigned-by`) therefore all see one history, or a refusal.

State directory (docs/ledger-format.md §5.1): `witness.key` (0600, the Ed25519 seed as a
Go signed-note private key), `witness.vkey` (its cosignature/v1 verifier key), and
`witness.json` (per origin: the pinned log key and the last cosigned note), replaced
atomically under an exclusive lock.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import json
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from governance.errors import UsageError, VerificationError
from governance.private_files import FILE_MODE, UMASK_MODE, make_private_dir, write_atomic
from governance.verify.checkpoint import (SIG_PREFIX, Checkpoint, CheckpointError, VerifierKey, is_key_name, key_id,
                                          parse_checkpoint, verify_trusted)
from governance.verify.cosignature import COSIGNATURE_DIR, WitnessKey, cosigned_message
from governance.verify.merkle import ProofError, verify_consistency

KEY_FILE = "witness.key"
VKEY_FILE = "witness.vkey"
STATE_FILE = "witness.json"
STATE_FORMAT = "fedgov-witness-state"
STATE_VERSION = 1


class WitnessRefusal(VerificationError):
    """The witness will not cosign: the log showed a rollback, a fork, or an unsigned checkpoint."""


# -- keys ---------------------------------------------------------------------------------------


def private_key_text(name: str, private_key: Ed25519PrivateKey) -> str:
    """Go signed-note private key: `PRIVATE+KEY+<name>+<hex key ID (0x01)>+<base64(0x01 || seed)>`.

    The form transparency-dev's witness tools read (they derive the 0x04 key ID themselves).
    """
    seed = private_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    public = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    encoded = base64.b64encode(b"\x01" + seed).decode()
    return f"PRIVATE+KEY+{name}+{key_id(name, public).hex()}+{encoded}"


def parse_private_key(text: str, source: str) -> tuple[str, Ed25519PrivateKey]:
    """The name and key of a signed-note private key; UsageError naming `source` when malformed."""
    try:
        private, key, name, hex_id, b64 = text.strip().split("+", 4)
        raw = base64.b64decode(b64, validate=True)
        if (private, key) != ("PRIVATE", "KEY") or len(raw) != 33 or raw[:1] != b"\x01" or not is_key_name(name):
            raise ValueError("not an Ed25519 signed-note private key")
        private_key = Ed25519PrivateKey.from_private_bytes(raw[1:])
        public = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        if key_id(name, public).hex() != hex_id:
            raise ValueError("its key ID does not match the key")
    except (ValueError, binascii.Error) as err:
        raise UsageError(f"{source} is not a witness private key ({err})") from None
    return name, private_key


def witness_key(name: str, private_key: Ed25519PrivateKey) -> WitnessKey:
    return WitnessKey(name, private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))


def cosignature_line(name: str, private_key: Ed25519PrivateKey, body: str, timestamp: int) -> str:
    """`— <name> base64(key ID || u64 BE timestamp || Ed25519 over cosigned_message)`, no LF."""
    signature = private_key.sign(cosigned_message(body, timestamp))
    raw = witness_key(name, private_key).key_id + timestamp.to_bytes(8, "big") + signature
    return f"{SIG_PREFIX}{name} {base64.b64encode(raw).decode()}"


# -- where checkpoints come from ------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """A signed note and the consistency proof from the tree before it to its own."""

    note: str
    proof: Sequence[bytes] = ()


class CheckpointSource(Protocol):
    """A log as the witness is shown it: a workspace, a bundle."""

    label: str

    def latest(self) -> str:
        """The note of the newest signed checkpoint."""

    def steps_from(self, trusted: Checkpoint) -> list[Step]:
        """Notes and proofs leading from `trusted` (by size) to the newest checkpoint, that one last."""

    def log_keys(self) -> list[VerifierKey]:
        """The keys the source itself names for the log (trusted on first use only)."""


class WorkspaceSource:
    """A workspace's ledger: its latest checkpoint, and a proof from the stored tree."""

    def __init__(self, path: Path) -> None:
        from governance.ledger import Ledger
        from governance.workspace import Workspace

        self.ws = Workspace.discover(path)
        self.label = f"workspace {self.ws.path}"
        self.ledger = Ledger.open_readonly(self.ws)

    def latest(self) -> str:
        with self.ledger.store.read() as conn:
            row = self.ledger.store.latest_checkpoint(conn)
        if row is None:
            raise WitnessRefusal(f"refusing to cosign: {self.label} holds no signed checkpoint")
        return row["note"]

    def steps_from(self, trusted: Checkpoint) -> list[Step]:
        note = self.latest()
        size = parse_checkpoint(note).size
        if size <= trusted.size:
            return [Step(note)]  # the same tree, a rollback or a fork: the check says which
        try:
            return [Step(note, self.ledger.consistency_proof(trusted.size, size))]
        except (ValueError, KeyError, VerificationError) as err:
            raise WitnessRefusal(f"refusing to cosign: {self.label} cannot prove tree size {size} consistent with "
                                 f"tree size {trusted.size} that this witness cosigned before ({err})") from err

    def log_keys(self) -> list[VerifierKey]:
        from governance.ledger.verify import load_trusted_keys

        return load_trusted_keys(self.ws.trust_path)

    def close(self) -> None:
        self.ledger.close()


class BundleSource:
    """An evidence bundle (a zip, docs/ledger-format.md §10): its checkpoints, chained by the proofs between
    consecutive ones."""

    def __init__(self, path: Path) -> None:
        from governance.verify.bundle import Bundle

        self.bundle = Bundle(path)
        self.label = f"bundle {path}"
        self.rows = self.bundle.checkpoints()
        if not self.rows:
            raise WitnessRefusal(f"refusing to cosign: {self.label} holds no signed checkpoint")

    def latest(self) -> str:
        return self.rows[-1]["note"]

    def steps_from(self, trusted: Checkpoint) -> list[Step]:
        sizes = [row["tree_size"] for row in self.rows]
        if trusted.size > sizes[-1] or trusted.size not in sizes:
            if trusted.size < sizes[-1]:
                raise WitnessRefusal(f"refusing to cosign: {self.label} holds no checkpoint of tree size "
                                     f"{trusted.size}, which this witness cosigned before, so it cannot prove the "
                                     "newest one extends it (export the whole ledger)")
            return [Step(self.latest())]  # smaller than what was cosigned: refused as a rollback
        start = sizes.index(trusted.size)
        return [Step(self.rows[start]["note"])] + [Step(row["note"], _proof(row["consistency_proof"], self.label))
                                                   for row in self.rows[start + 1:]]

    def log_keys(self) -> list[VerifierKey]:
        from governance.verify.bundle import TRUST_FILE
        from governance.verify.checkpoint import parse_trusted_keys

        return parse_trusted_keys(self.bundle.text(TRUST_FILE), f"{self.label} {TRUST_FILE}")

    def close(self) -> None:
        pass


def _proof(text: str, label: str) -> list[bytes]:
    try:
        return [base64.b64decode(p, validate=True) for p in json.loads(text)]
    except (ValueError, TypeError, binascii.Error) as err:
        raise WitnessRefusal(f"refusing to cosign: {label} holds a malformed consistency proof ({err})") from err


# -- the check ------------------------------------------------------------------------------------


def check_steps(trusted: Checkpoint | None, steps: Sequence[Step], log_key: VerifierKey) -> Checkpoint:
    """The newest checkpoint, once each step is signed by `log_key` and extends the one before.

    `trusted` is the checkpoint the witness cosigned before (None at first use). Refuses
    (WitnessRefusal, one line) a smaller tree (rollback), another root at the same size or
    a failing consistency proof (split view, or rewritten history), and a bad signature.
    """
    previous, what = trusted, "that this witness cosigned before"
    for step in steps:
        try:
            cp = verify_trusted(step.note, [log_key])
        except CheckpointError as err:
            raise WitnessRefusal(f"refusing to cosign: the checkpoint is not signed by the pinned log key "
                                 f"{log_key.name!r} ({err})") from err
        if cp.size == 0:
            raise WitnessRefusal("refusing to cosign: the checkpoint signs an empty tree")
        if previous is not None:
            if cp.origin != previous.origin:
                raise WitnessRefusal(f"refusing to cosign: the checkpoint is of {cp.origin!r}, not {previous.origin!r}")
            if cp.size < previous.size:
                raise WitnessRefusal(f"refusing to cosign: the log shows tree size {cp.size}, smaller than tree size "
                                     f"{previous.size} {what} (rollback)")
            if cp.size == previous.size and cp.root != previous.root:
                raise WitnessRefusal(f"refusing to cosign: the log shows root {cp.root.hex()} at tree size {cp.size}, "
                                     f"not the root {previous.root.hex()} {what} (split view: two histories)")
            try:
                verify_consistency(previous.size, cp.size, step.proof, previous.root, cp.root)
            except ProofError as err:
                raise WitnessRefusal(f"refusing to cosign: tree size {cp.size} is not consistent with tree size "
                                     f"{previous.size} {what} (split view, or rewritten history): {err}") from err
        previous, what = cp, "shown before it"
    if previous is None:
        raise WitnessRefusal("refusing to cosign: no checkpoint was shown")
    return previous


# -- the witness ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cosigned:
    """What one `cosign` did."""

    checkpoint: Checkpoint
    note: str  # the log's note as shown (its signature lines, no cosignature)
    line: str  # this witness's cosignature line
    previous: Checkpoint | None  # what it had cosigned before (None: first use)
    log_key: VerifierKey
    pinned_from: str | None  # at first use: where the log key came from

    @property
    def cosigned_note(self) -> str:
        return self.note + self.line + "\n"


def init_witness(state_dir: Path, name: str) -> WitnessKey:
    """Make a witness: a new Ed25519 key named `name` and an empty state, in `state_dir`."""
    if not is_key_name(name):
        raise UsageError(f"--name {name!r} is not a signed-note key name (non-empty, no spaces, no '+'); "
                         "a schema-less URL such as witness.example.org/w1 is customary")
    if (state_dir / KEY_FILE).exists() or (state_dir / STATE_FILE).exists():
        raise UsageError(f"{state_dir} already holds a witness ({KEY_FILE}); choose another --state")
    private_key = Ed25519PrivateKey.generate()
    key = witness_key(name, private_key)
    try:
        make_private_dir(state_dir)
        _save_state(state_dir, {"format": STATE_FORMAT, "version": STATE_VERSION, "witness": key.to_text(), "logs": {}})
        write_atomic(state_dir / VKEY_FILE, (key.to_text() + "\n").encode(), mode=UMASK_MODE)
        write_atomic(state_dir / KEY_FILE, (private_key_text(name, private_key) + "\n").encode())
    except OSError as err:
        for made in (STATE_FILE, VKEY_FILE, KEY_FILE):  # nothing half-made: a later init would refuse it
            try:
                (state_dir / made).unlink(missing_ok=True)
            except OSError:
                pass  # --state is not a directory: nothing was made in it
        raise UsageError(f"cannot write the witness state in {state_dir}: {err.strerror}") from None
    return key


class Witness:
    """A witness's key and state, opened from its state directory."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        try:
            key_text = (state_dir / KEY_FILE).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise UsageError(f"{state_dir} holds no witness: run `fedgov audit witness init --state {state_dir}`") \
                from None
        except (OSError, UnicodeDecodeError) as err:
            raise UsageError(f"cannot read {state_dir / KEY_FILE}: {err}") from None
        self.name, self.private_key = parse_private_key(key_text, str(state_dir / KEY_FILE))
        self.key = witness_key(self.name, self.private_key)

    def _state(self) -> dict:
        path = self.state_dir / STATE_FILE
        try:
            state = json.loads(path.read_bytes())
        except (OSError, ValueError) as err:
            raise UsageError(f"cannot read the witness state {path}: {err}") from None
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT or state.get("version") != STATE_VERSION \
                or state.get("witness") != self.key.to_text() or not isinstance(state.get("logs"), dict):
            raise UsageError(f"{path} is not the state of witness {self.key.to_text()}")
        return state

    def cosign(self, source: CheckpointSource, log_key: VerifierKey | None = None,
               now: int | None = None) -> Cosigned:
        """Check the source's newest checkpoint against the one cosigned before; cosign it; save the state."""
        with _locked(self.state_dir):
            state = self._state()
            latest_note = source.latest()
            try:
                origin = parse_checkpoint(latest_note).origin
            except CheckpointError as err:
                raise WitnessRefusal(f"refusing to cosign: {source.label}'s newest checkpoint is malformed: "
                                     f"{err}") from err
            entry = state["logs"].get(origin)
            trusted, pinned_from = None, None
            if entry is not None:
                pinned, trusted = self._trusted(entry, origin)
                if log_key is not None and log_key != pinned:
                    raise UsageError(f"this witness pinned log key {pinned.to_text()} for {origin} at first use; "
                                     "--log-key differs (a log with a new key needs a new witness state)")
                log_key = pinned
                steps = source.steps_from(trusted)
            else:
                pinned_from = "--log-key"
                if log_key is None:
                    named = [k for k in source.log_keys() if k.name == origin]
                    if len(named) != 1:
                        raise UsageError(f"first checkpoint of {origin} this witness sees, and {source.label} names "
                                         f"{'no' if not named else 'more than one'} key for it: pass --log-key")
                    log_key, pinned_from = named[0], f"{source.label}'s trusted keys"
                steps = [Step(latest_note)]
            checkpoint = check_steps(trusted, steps, log_key)
            timestamp = int(time.time()) if now is None else now
            line = cosignature_line(self.name, self.private_key, checkpoint.body, timestamp)
            state["logs"][origin] = {"log_key": log_key.to_text(), "checkpoint": steps[-1].note,
                                     "tree_size": checkpoint.size, "cosigned_at": timestamp}
            _save_state(self.state_dir, state)
        return Cosigned(checkpoint, steps[-1].note, line, trusted, log_key, pinned_from)


    def _trusted(self, entry: Any, origin: str) -> tuple[VerifierKey, Checkpoint]:
        """The pinned log key and the last cosigned checkpoint of `origin`, as the state holds them."""
        try:
            pinned = VerifierKey.from_text(entry["log_key"])
            return pinned, check_steps(None, [Step(entry["checkpoint"])], pinned)
        except (KeyError, TypeError, AttributeError, CheckpointError, WitnessRefusal) as err:
            raise UsageError(f"{self.state_dir / STATE_FILE}: the entry for {origin} is not a pinned log key and a "
                             f"checkpoint it signed ({err})") from None


def _save_state(state_dir: Path, state: dict) -> None:
    write_atomic(state_dir / STATE_FILE, (json.dumps(state, indent=2, sort_keys=True) + "\n").encode())


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """An exclusive flock on `directory`, not waiting: two cosigns at once would race on the state."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UsageError(f"another command holds the lock on {directory}: try again when it has finished") \
                from None
        yield
    finally:
        os.close(fd)


def store_cosignature(directory: Path, cosigned: Cosigned, witness: WitnessKey) -> Path:
    """Add the cosignature to `directory/<tree size>.note`: the log's note, then every witness's line.

    A line this witness wrote there before is replaced; other witnesses' lines stay. A file
    that holds another checkpoint of the same size is evidence of a fork: left untouched.
    """
    make_private_dir(directory)
    path = directory / f"{cosigned.checkpoint.size}.note"
    with _locked(directory):
        try:
            existing = path.read_bytes().decode("utf-8")
        except FileNotFoundError:
            existing = None
        except (OSError, UnicodeDecodeError) as err:
            raise UsageError(f"cannot read {path}: {err}") from None
        text = cosigned.cosigned_note
        if existing is not None:
            try:
                old = parse_checkpoint(existing)
            except CheckpointError as err:
                raise UsageError(f"{path} is not a signed note ({err}): move it away, then cosign again") from None
            if old.body != cosigned.checkpoint.body:
                raise WitnessRefusal(f"{path} holds another checkpoint of tree size {old.size} (root "
                                     f"{old.root.hex()}): a fork was cosigned here; left as evidence, not replaced")
            lines = [f"{SIG_PREFIX}{name} {base64.b64encode(raw).decode()}" for name, raw in old.signatures
                     if (name, raw[:4]) != (witness.name, witness.key_id)]
            text = old.body + "\n" + "".join(line + "\n" for line in [*lines, cosigned.line])
        write_atomic(path, text.encode("utf-8"), mode=FILE_MODE)
    return path


def cosignature_members(workspace_dir: Path, notes: Sequence[str]) -> dict[str, bytes]:
    """The workspace's cosigned notes of these checkpoints, as bundle members `cosignatures/<tree size>.note`.

    Only notes whose body is one of the bundle's checkpoints: a cosignature of a newer
    checkpoint than the bundle holds would read as a rollback.
    """
    source = workspace_dir / COSIGNATURE_DIR
    if not source.is_dir():
        return {}
    bodies = {parse_checkpoint(note).body for note in notes}
    members = {}
    for path in sorted(source.iterdir()):
        if path.suffix != ".note" or not path.stem.isdigit():
            continue
        data = path.read_bytes()
        try:
            if parse_checkpoint(data.decode("utf-8")).body not in bodies:
                continue
        except (UnicodeDecodeError, CheckpointError):
            continue  # not the bundle's to carry; `audit verify` on the workspace names it
        members[f"{COSIGNATURE_DIR}/{path.name}"] = data
    return members
