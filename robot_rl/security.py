"""Run keystore: Ed25519 keys that authenticate learning traffic (and operator commands).

A keystore is a folder::

    keyring.json           public: every key's id, name, role (learner | actor | operator),
                           the actor id an actor key is bound to, and the raw public key
    private/<name>.pem     one PKCS#8 Ed25519 private key per node (file 0600, folder 0700)

``robot-rl keys init DIR`` creates it with a learner key, one actor key per ``--actors`` and an
operator key; ``robot-rl keys add-actor DIR --actor-id N`` adds one; ``robot-rl keys show DIR``
lists it. On several machines, copy ``keyring.json`` everywhere and each private key only to the
machine whose node signs with it.

The learner signs actor weights with ``private/learner.pem``, actor ``N`` signs its transitions
with ``private/actor_N.pem``; each receiver checks the frame's signature against the keyring
(``robot_rl.transport``): unsigned frames, unknown keys, bad signatures, a key of the wrong role
and an actor id other than the one its key is bound to are refused and counted by reason.

This module is ROS-free; ``cryptography`` is imported when a key is used.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

from robot_rl.topics import COMMAND_TOKEN

KEYRING_FILE = "keyring.json"
PRIVATE_DIR = "private"
KEYRING_FORMAT = "robot_rl-keyring"
KEYRING_VERSION = 1
ROLES = ("learner", "actor", "operator")
KEY_ID_BYTES = 8  # first bytes of SHA-256(raw public key); 16 hex characters when shown
SIGNATURE_BYTES = 64
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")


class SecurityError(ValueError):
    """A keystore is missing, malformed, or lacks the key a node needs; the text says which."""


def key_id_of(public_raw: bytes) -> bytes:
    return hashlib.sha256(public_raw).digest()[:KEY_ID_BYTES]


@dataclass(frozen=True)
class KeyInfo:
    """One public key of the keyring."""
    key_id: bytes
    name: str
    role: str
    actor_id: Optional[int]
    public_raw: bytes

    @property
    def key_id_hex(self) -> str:
        return self.key_id.hex()

    def verify(self, signature: bytes, data: bytes) -> bool:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        try:
            Ed25519PublicKey.from_public_bytes(self.public_raw).verify(signature, data)
            return True
        except InvalidSignature:
            return False


class Keyring:
    """The public keys a receiver trusts, looked up by the key id carried in a frame."""

    def __init__(self, keys: Iterable[KeyInfo] = ()):
        self._keys: Dict[bytes, KeyInfo] = {}
        for k in keys:
            self._keys[k.key_id] = k

    def __len__(self) -> int:
        return len(self._keys)

    def __iter__(self):
        return iter(self._keys.values())

    def lookup(self, key_id: bytes) -> Optional[KeyInfo]:
        return self._keys.get(bytes(key_id))

    def by_name(self, name: str) -> Optional[KeyInfo]:
        return next((k for k in self._keys.values() if k.name == name), None)

    @classmethod
    def load(cls, keystore: str | os.PathLike) -> "Keyring":
        path = Path(keystore) / KEYRING_FILE
        if not path.is_file():
            raise SecurityError(f"keystore {keystore}: no {KEYRING_FILE}; create one with "
                                f"`robot-rl keys init {keystore}`")
        try:
            doc = json.loads(path.read_text())
        except (ValueError, OSError) as exc:
            raise SecurityError(f"{path}: not a readable keyring ({exc})") from None
        if not isinstance(doc, dict) or doc.get("format") != KEYRING_FORMAT \
                or doc.get("version") != KEYRING_VERSION or not isinstance(doc.get("keys"), list):
            raise SecurityError(f"{path}: expected {{'format': '{KEYRING_FORMAT}', 'version': "
                                f"{KEYRING_VERSION}, 'keys': [...]}}")
        keys = []
        for i, entry in enumerate(doc["keys"]):
            try:
                raw = base64.b64decode(entry["public_key"], validate=True)
                role, name, actor_id = entry["role"], entry["name"], entry.get("actor_id")
                if len(raw) != 32 or role not in ROLES or not _NAME.match(str(name)) or \
                        (role == "actor") != isinstance(actor_id, int) or isinstance(actor_id, bool):
                    raise ValueError("bad field")
            except (KeyError, TypeError, ValueError):
                raise SecurityError(f"{path}: key #{i} is malformed; expected name, role in "
                                    f"{ROLES}, actor_id (actor keys only) and a base64 32-byte "
                                    f"Ed25519 public_key") from None
            kid = key_id_of(raw)
            if entry.get("key_id") not in (None, kid.hex()):
                raise SecurityError(f"{path}: key #{i} ({name}) has key_id {entry.get('key_id')}, "
                                    f"but its public key hashes to {kid.hex()}")
            keys.append(KeyInfo(kid, name, role, actor_id, raw))
        return cls(keys)


class Signer:
    """A node's private key: signs frames and names itself by key id."""

    def __init__(self, private_key, name: str):
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        self._key = private_key
        self.name = name
        self.public_raw = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.key_id = key_id_of(self.public_raw)

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)

    @classmethod
    def generate(cls, name: str = "ephemeral") -> "Signer":
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        return cls(Ed25519PrivateKey.generate(), name)

    @classmethod
    def load(cls, keystore: str | os.PathLike, name: str) -> "Signer":
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        path = Path(keystore) / PRIVATE_DIR / f"{name}.pem"
        if not path.is_file():
            raise SecurityError(f"keystore {keystore}: no private key for {name!r} ({path}); "
                                f"add it with `robot-rl keys add-actor` or `robot-rl keys init`")
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise SecurityError(f"{path}: private key is readable by others (mode {mode:o}); "
                                f"run `chmod 600 {path}`")
        try:
            key = load_pem_private_key(path.read_bytes(), password=None)
        except (ValueError, TypeError) as exc:
            raise SecurityError(f"{path}: not a PEM private key ({exc})") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise SecurityError(f"{path}: expected an Ed25519 key, found {type(key).__name__}")
        return cls(key, name)


# --------------------------------------------------------------------------------------------
# keystore files
# --------------------------------------------------------------------------------------------
def key_name(role: str, actor_id: Optional[int] = None) -> str:
    return f"actor_{actor_id}" if role == "actor" else role


def _read_doc(keystore: Path) -> Dict[str, Any]:
    path = keystore / KEYRING_FILE
    if path.is_file():
        Keyring.load(keystore)  # refuses a malformed file before we add to it
        return json.loads(path.read_text())
    return {"format": KEYRING_FORMAT, "version": KEYRING_VERSION, "keys": []}


def _write_private(path: Path, pem: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
        f.flush()
        os.fsync(f.fileno())


def add_key(keystore: str | os.PathLike, role: str, actor_id: Optional[int] = None,
            name: Optional[str] = None) -> KeyInfo:
    """Create a key pair, store the private key 0600 and add the public key to the keyring."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (Encoding, NoEncryption,
                                                              PrivateFormat, PublicFormat)

    if role not in ROLES:
        raise SecurityError(f"role {role!r}: expected one of {ROLES}")
    if role == "actor" and (not isinstance(actor_id, int) or not 0 <= actor_id <= 2**31 - 1):
        raise SecurityError(f"an actor key needs an actor id in [0, 2^31 - 1], got {actor_id!r}")
    name = name or key_name(role, actor_id)
    if not _NAME.match(name):
        raise SecurityError(f"key name {name!r}: use letters, digits, '_', '-', '.'")
    root = Path(keystore)
    (root / PRIVATE_DIR).mkdir(parents=True, exist_ok=True)
    os.chmod(root / PRIVATE_DIR, 0o700)
    doc = _read_doc(root)
    if any(k["name"] == name for k in doc["keys"]):
        raise SecurityError(f"keystore {root} already has a key named {name!r}")
    if role == "actor" and any(k.get("actor_id") == actor_id for k in doc["keys"]):
        raise SecurityError(f"keystore {root} already has a key for actor id {actor_id}")
    private = Ed25519PrivateKey.generate()
    raw = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    _write_private(root / PRIVATE_DIR / f"{name}.pem",
                   private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    entry = {"name": name, "role": role, "key_id": key_id_of(raw).hex(),
             "public_key": base64.b64encode(raw).decode(), "created": int(time.time())}
    if role == "actor":
        entry["actor_id"] = actor_id
    doc["keys"].append(entry)
    tmp = root / (KEYRING_FILE + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    os.replace(tmp, root / KEYRING_FILE)
    return KeyInfo(key_id_of(raw), name, role, actor_id, raw)


def init_keystore(keystore: str | os.PathLike, actors: int = 1) -> List[KeyInfo]:
    """A new keystore: learner, operator and actors ``0 .. actors-1``. Refuses an existing one."""
    root = Path(keystore)
    if (root / KEYRING_FILE).exists():
        raise SecurityError(f"{root} already holds a keystore; use `robot-rl keys add-actor` to "
                            f"extend it, or choose another folder")
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o700)
    made = [add_key(root, "learner"), add_key(root, "operator")]
    made += [add_key(root, "actor", i) for i in range(actors)]
    return made


def ensure_keystore(keystore: str | os.PathLike, actor_ids: Iterable[int]) -> Keyring:
    """The run keystore the entry points create: exists, with a key for every actor id."""
    root = Path(keystore)
    if not (root / KEYRING_FILE).exists():
        init_keystore(root, actors=0)
    ring = Keyring.load(root)
    have = {k.actor_id for k in ring if k.role == "actor"}
    for actor_id in actor_ids:
        if actor_id not in have:
            add_key(root, "actor", actor_id)
    return Keyring.load(root)


def describe(keystore: str | os.PathLike) -> str:
    root = Path(keystore)
    ring = Keyring.load(root)
    lines = [f"keystore {root.resolve()} ({len(ring)} keys)"]
    for k in sorted(ring, key=lambda k: (ROLES.index(k.role), k.actor_id or 0, k.name)):
        private = root / PRIVATE_DIR / f"{k.name}.pem"
        lines.append(f"  {k.key_id_hex}  {k.role:<8} {k.name:<12}"
                     + (f" actor_id={k.actor_id}" if k.role == "actor" else "")
                     + ("  (private key here)" if private.is_file() else "  (public only)"))
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# what a node uses
# --------------------------------------------------------------------------------------------
@dataclass
class NodeAuth:
    """A node's signer and the keyring it checks against; both None when security is off."""
    signer: Optional[Signer] = None
    keyring: Optional[Keyring] = None

    @property
    def enabled(self) -> bool:
        return self.keyring is not None

    @classmethod
    def from_config(cls, cfg, name: str) -> "NodeAuth":
        """``cfg.security.keystore`` empty: off. Otherwise load the keyring and the private
        key ``name`` (``learner``, ``actor_<id>``); a missing or unreadable one is an error,
        never a silent fallback to unsigned traffic."""
        keystore = cfg.security.keystore
        if not keystore:
            return cls()
        return cls(Signer.load(keystore, name), Keyring.load(keystore))


# --------------------------------------------------------------------------------------------
# operator commands (services that move the robot or change the controller's state)
# --------------------------------------------------------------------------------------------
COMMAND_TOKEN_TOPIC = COMMAND_TOKEN  # robot_rl/topics.py
_COMMAND_CONTEXT = b"robot_rl-command:"  # a token signature can never pass for a frame's


def command_token(signer: Signer, service: str, now: Optional[float] = None,
                  nonce: Optional[str] = None) -> str:
    """A one-use authorisation to call ``service``, signed by an operator key (JSON text for
    ``COMMAND_TOKEN_TOPIC``). std_srvs/Trigger requests are empty, so the token travels just
    before the call on a topic of its own."""
    body = {"service": service, "issued": round(time.time() if now is None else now, 3),
            "nonce": nonce or os.urandom(12).hex(), "key_id": signer.key_id.hex()}
    payload = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    body["sig"] = base64.b64encode(signer.sign(_COMMAND_CONTEXT + payload)).decode()
    return json.dumps(body)


class CommandGate:
    """Service side: keeps the valid tokens received, and lets each authorise one call.

    A token counts if an ``operator`` key of the keyring signed it (or an actor key, for the
    ``actor_services`` an actor calls itself: its scene resets), it names the service, it was
    issued within ``max_age_s`` of this clock (either way) and its nonce is new. Refusals are
    counted by reason in ``refused``."""

    def __init__(self, keyring: Keyring, max_age_s: float = 5.0, clock=time.time,
                 actor_services: Iterable[str] = ()):
        import collections
        import threading

        self.keyring, self.max_age_s, self.clock = keyring, float(max_age_s), clock
        self.actor_services = set(actor_services)  # services an actor key may also authorise
        self.refused: "collections.Counter[str]" = collections.Counter()
        self._grants: Dict[str, List[float]] = {}  # service -> expiry times
        self._nonces: Dict[str, float] = {}        # nonce -> expiry
        self._lock = threading.Lock()

    def _refuse(self, reason: str) -> str:
        self.refused[reason] += 1
        return reason

    def offer(self, text: Any) -> Optional[str]:
        """Take a token (``std_msgs/String.data``); returns None if granted, else the reason."""
        from robot_rl.parsing import InputError, get_float, get_str, parse_json_object

        try:
            obj = parse_json_object(text, "command token", max_bytes=4096)
            service = get_str(obj, "service", max_len=256, what="command token")
            issued = get_float(obj, "issued", what="command token")
            nonce = get_str(obj, "nonce", max_len=64, what="command token")
            key_hex = get_str(obj, "key_id", max_len=2 * KEY_ID_BYTES, what="command token")
            sig = base64.b64decode(get_str(obj, "sig", max_len=128, what="command token"),
                                   validate=True)
            key_id = bytes.fromhex(key_hex)
        except (InputError, ValueError):
            return self._refuse("malformed")
        key = self.keyring.lookup(key_id)
        if key is None:
            return self._refuse("unknown_key")
        body = {"service": service, "issued": issued, "nonce": nonce, "key_id": key_hex}
        payload = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        if len(sig) != SIGNATURE_BYTES or not key.verify(sig, _COMMAND_CONTEXT + payload):
            return self._refuse("bad_signature")
        if not (key.role == "operator"
                or key.role == "actor" and service in self.actor_services):
            return self._refuse("wrong_role")
        now = self.clock()
        if abs(now - issued) > self.max_age_s:
            return self._refuse("expired")
        with self._lock:
            self._nonces = {n: t for n, t in self._nonces.items() if t > now}
            if nonce in self._nonces:
                return self._refuse("replayed")
            self._nonces[nonce] = issued + 2 * self.max_age_s
            self._grants.setdefault(service, []).append(issued + self.max_age_s)
        return None

    def authorize(self, service: str) -> tuple[bool, str]:
        """Consume one live grant for ``service``."""
        now = self.clock()
        with self._lock:
            live = [t for t in self._grants.get(service, []) if t > now]
            if live:
                live.pop(0)
                self._grants[service] = live
                return True, ""
            self._grants.pop(service, None)
        self.refused["no_token"] += 1
        return False, (f"{service} is restricted (security.restrict_commands): publish a token "
                       f"signed by an operator key on {COMMAND_TOKEN_TOPIC} first, e.g. "
                       f"`robot-rl call {service} --keystore DIR`")
