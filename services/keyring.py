"""Key-encryption keys: what wraps the per-person data keys of `services.privacy`.

A person's data key (DEK) is stored only wrapped by a key-encryption key (KEK) named by a key id
(`kid`), so a copy of the keys database alone - a backup, a dump, a stolen disk - opens nothing.
`KeyEncryptionKeys` is the port: `LocalKeyEncryptionKeys` holds the KEKs in memory (from a file or
the environment, for local runs and small deployments); in production a KMS adapter subclasses the
port and wraps/unwraps remotely, the KEK never leaving the KMS.

Rotation: add a new KEK, make it current, run `python -m services.rekey` (which re-wraps every DEK
under it and touches no event), then retire the old one.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path

import structlog
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

log = structlog.get_logger(__name__)

# Where a local run keeps the KEK it generated for itself: `.local/` is never committed.
LOCAL_KEK_FILE = Path(__file__).resolve().parents[1] / ".local" / "privacy-kek.json"
KEK_BYTES = 32
_NONCE_BYTES = 12


class KeyEncryptionKeysMissing(RuntimeError):
    """No KEK configured where one is required (production)."""


class UnknownKeyEncryptionKey(LookupError):
    """A DEK wrapped by a KEK this keyring does not hold: a retired or misconfigured KEK, never 'erased'."""

    def __init__(self, kid: str) -> None:
        super().__init__(f"no key-encryption key with id {kid!r} in the keyring")
        self.kid = kid


class KeyEncryptionKeys(ABC):
    """Wraps and unwraps data keys. The person id is bound to each wrapping, so a wrapped key
    copied onto another person's record does not unwrap.

    A KMS adapter implements these three with the KMS's encrypt/decrypt calls (its key ids as
    `kid`); nothing else in the code base knows where the KEKs are."""

    @property
    @abstractmethod
    def current_kid(self) -> str:
        """The KEK new wrappings use."""

    @abstractmethod
    async def wrap(self, person_id: str, dek: bytes) -> tuple[str, bytes]:
        """`(kid, wrapped_dek)` under the current KEK."""

    @abstractmethod
    async def unwrap(self, person_id: str, kid: str, wrapped_dek: bytes) -> bytes:
        """The DEK; `UnknownKeyEncryptionKey` if `kid` is not held, `InvalidTag` if tampered with."""


class LocalKeyEncryptionKeys(KeyEncryptionKeys):
    """KEKs held in this process: AES-256-GCM wrapping, `wrapped_dek` = nonce || ciphertext+tag."""

    def __init__(self, keks: Mapping[str, bytes], current: str) -> None:
        if current not in keks:
            raise ValueError(f"the current key-encryption key {current!r} is not in the keyring")
        for kid, kek in keks.items():
            if len(kek) != KEK_BYTES:
                raise ValueError(f"key-encryption key {kid!r} must be {KEK_BYTES} bytes")
        self._keks = {kid: AESGCM(kek) for kid, kek in keks.items()}
        self._current = current

    @property
    def current_kid(self) -> str:
        return self._current

    @property
    def kids(self) -> frozenset[str]:
        return frozenset(self._keks)

    async def wrap(self, person_id: str, dek: bytes) -> tuple[str, bytes]:
        nonce = os.urandom(_NONCE_BYTES)
        return self._current, nonce + self._keks[self._current].encrypt(nonce, dek, _aad(person_id, self._current))

    async def unwrap(self, person_id: str, kid: str, wrapped_dek: bytes) -> bytes:
        kek = self._keks.get(kid)
        if kek is None:
            raise UnknownKeyEncryptionKey(kid)
        return kek.decrypt(wrapped_dek[:_NONCE_BYTES], wrapped_dek[_NONCE_BYTES:], _aad(person_id, kid))


def _aad(person_id: str, kid: str) -> bytes:
    return json.dumps([person_id, kid]).encode()


def derived_kid(kek: bytes) -> str:
    """A stable id for a KEK given without one: a short hash (reveals nothing usable of a 256-bit key)."""
    return "kek-" + hashlib.sha256(b"formation-events kek id\0" + kek).hexdigest()[:12]


class PrivacySettings(BaseSettings):
    """Where the KEKs and the keys database are (`PRIVACY_*`), shared by every service that seals or unseals."""

    model_config = SettingsConfigDict(env_prefix="PRIVACY_", extra="ignore")

    kek: SecretStr | None = Field(None, description="The current KEK, base64 of 32 bytes.")
    kek_id: str | None = Field(None, description="Its id; derived from the key when not given.")
    kek_previous: SecretStr | None = Field(
        None, description="Retired KEKs still needed to unwrap until a re-wrap: JSON object {kid: base64}."
    )
    kek_file: Path | None = Field(
        None, description='A JSON file {"current": kid, "keys": {kid: base64}}; the local default is generated.'
    )
    keys_database: str | None = Field(None, description="The database of the data keys; `<MONGODB_DATABASE>_keys` if unset.")

    def keys_database_for(self, main_database: str) -> str:
        return self.keys_database or f"{main_database}_keys"


def is_production() -> bool:
    return os.environ.get("ENVIRONMENT", "").strip().lower() == "production"


def _b64key(value: str, kid: str) -> bytes:
    try:
        key = base64.b64decode(value, validate=True)
    except ValueError as error:
        raise ValueError(f"key-encryption key {kid!r} is not valid base64") from error
    return key


def read_kek_file(path: Path) -> LocalKeyEncryptionKeys:
    document = json.loads(path.read_text())
    keys = {kid: _b64key(value, kid) for kid, value in document["keys"].items()}
    return LocalKeyEncryptionKeys(keys, document["current"])


def write_kek_file(path: Path, keks: Mapping[str, bytes], current: str) -> None:
    """Write a KEK file readable by its owner only, atomically; refuses to replace an existing one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"current": current, "keys": {kid: base64.b64encode(kek).decode() for kid, kek in keks.items()}}
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".kek-")
    try:
        os.fchmod(descriptor, 0o600)
        with os.fdopen(descriptor, "w") as file:
            json.dump(document, file, indent=2)
        # link() fails if the file exists: two processes starting at once keep the first one's KEK.
        os.link(temporary, path)
    finally:
        os.unlink(temporary)


def load_key_encryption_keys(
    settings: PrivacySettings | None = None, *, local_file: Path = LOCAL_KEK_FILE
) -> LocalKeyEncryptionKeys:
    """The KEKs from `PRIVACY_KEK` (+ `PRIVACY_KEK_PREVIOUS`) or `PRIVACY_KEK_FILE`; for a local run
    with neither, a KEK generated once into `.local/`. Production (`ENVIRONMENT=production`) refuses
    to start without a configured KEK."""
    settings = settings or PrivacySettings()
    if settings.kek is not None:
        current = _b64key(settings.kek.get_secret_value(), settings.kek_id or "PRIVACY_KEK")
        kid = settings.kek_id or derived_kid(current)
        previous = json.loads(settings.kek_previous.get_secret_value()) if settings.kek_previous else {}
        keks = {old: _b64key(value, old) for old, value in previous.items()}
        return LocalKeyEncryptionKeys({**keks, kid: current}, kid)
    if settings.kek_file is not None:
        return read_kek_file(settings.kek_file)
    if is_production():
        raise KeyEncryptionKeysMissing("ENVIRONMENT=production needs PRIVACY_KEK or PRIVACY_KEK_FILE (or a KMS adapter)")
    if not local_file.exists():
        kek = AESGCM.generate_key(bit_length=256)
        try:
            write_kek_file(local_file, {derived_kid(kek): kek}, derived_kid(kek))
        except FileExistsError:
            pass  # another process generated it first: use theirs
        else:
            log.warning("privacy.local_kek_generated", path=str(local_file), hint="set PRIVACY_KEK or PRIVACY_KEK_FILE")
    return read_kek_file(local_file)
