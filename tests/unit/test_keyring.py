"""Key-encryption keys: wrapping binds the person and the KEK, a missing KEK is an error (never
'erased'), local runs generate a KEK once out of the repository, production refuses to start without one."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr

from services.keyring import (
    LOCAL_KEK_FILE,
    KeyEncryptionKeysMissing,
    LocalKeyEncryptionKeys,
    PrivacySettings,
    UnknownKeyEncryptionKey,
    derived_kid,
    load_key_encryption_keys,
    read_kek_file,
    write_kek_file,
)

pytestmark = pytest.mark.unit

KEK_A, KEK_B = AESGCM.generate_key(bit_length=256), AESGCM.generate_key(bit_length=256)


async def test_a_wrapped_key_unwraps_for_its_person_only_and_never_holds_the_key_in_clear() -> None:
    keks = LocalKeyEncryptionKeys({"a": KEK_A}, "a")
    dek = AESGCM.generate_key(bit_length=256)
    kid, wrapped = await keks.wrap("per_1", dek)
    assert kid == "a" and dek not in wrapped
    assert await keks.unwrap("per_1", "a", wrapped) == dek
    with pytest.raises(InvalidTag):
        await keks.unwrap("per_2", "a", wrapped)  # copied onto another person's record
    with pytest.raises(InvalidTag):
        await LocalKeyEncryptionKeys({"a": KEK_B}, "a").unwrap("per_1", "a", wrapped)  # another KEK with the same id


async def test_after_a_rotation_the_new_kek_wraps_and_the_old_one_still_unwraps_until_retired() -> None:
    dek = AESGCM.generate_key(bit_length=256)
    _, under_a = await LocalKeyEncryptionKeys({"a": KEK_A}, "a").wrap("per_1", dek)
    rotated = LocalKeyEncryptionKeys({"a": KEK_A, "b": KEK_B}, "b")
    assert await rotated.unwrap("per_1", "a", under_a) == dek
    kid, under_b = await rotated.wrap("per_1", dek)
    assert kid == "b"
    retired = LocalKeyEncryptionKeys({"b": KEK_B}, "b")
    assert await retired.unwrap("per_1", "b", under_b) == dek
    with pytest.raises(UnknownKeyEncryptionKey):
        await retired.unwrap("per_1", "a", under_a)


def test_a_keyring_refuses_a_current_kid_it_lacks_and_keys_of_the_wrong_size() -> None:
    with pytest.raises(ValueError, match="not in the keyring"):
        LocalKeyEncryptionKeys({"a": KEK_A}, "b")
    with pytest.raises(ValueError, match="32 bytes"):
        LocalKeyEncryptionKeys({"a": KEK_A[:16]}, "a")


def test_the_environment_gives_the_current_kek_its_id_and_retired_ones(tmp_path: Path) -> None:
    settings = PrivacySettings(
        kek=SecretStr(base64.b64encode(KEK_B).decode()),
        kek_id="2026-12",
        kek_previous=SecretStr(json.dumps({"2026-06": base64.b64encode(KEK_A).decode()})),
    )
    keks = load_key_encryption_keys(settings, local_file=tmp_path / "unused.json")
    assert keks.current_kid == "2026-12" and keks.kids == {"2026-06", "2026-12"}
    assert not (tmp_path / "unused.json").exists()
    derived = load_key_encryption_keys(PrivacySettings(kek=SecretStr(base64.b64encode(KEK_A).decode())))
    assert derived.current_kid == derived_kid(KEK_A) != derived_kid(KEK_B)


def test_a_kek_file_names_its_current_kek(tmp_path: Path) -> None:
    path = tmp_path / "keks.json"
    write_kek_file(path, {"a": KEK_A, "b": KEK_B}, "b")
    keks = load_key_encryption_keys(PrivacySettings(kek_file=path))
    assert keks.current_kid == "b" and keks.kids == {"a", "b"}


def test_a_local_run_generates_its_kek_once_readable_by_its_owner_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENVIRONMENT", raising=False)
    local = tmp_path / ".local" / "privacy-kek.json"
    first = load_key_encryption_keys(PrivacySettings(), local_file=local)
    assert local.stat().st_mode & 0o777 == 0o600
    assert load_key_encryption_keys(PrivacySettings(), local_file=local).current_kid == first.current_kid
    with pytest.raises(FileExistsError):
        write_kek_file(local, {"x": KEK_A}, "x")  # a second process never replaces the first one's KEK
    assert read_kek_file(local).current_kid == first.current_kid
    assert [p.name for p in local.parent.iterdir()] == ["privacy-kek.json"], "no temporary file left behind"


def test_production_refuses_to_start_without_a_configured_kek(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    local = tmp_path / "privacy-kek.json"
    with pytest.raises(KeyEncryptionKeysMissing):
        load_key_encryption_keys(PrivacySettings(), local_file=local)
    assert not local.exists(), "no KEK is generated in production"


def test_the_generated_local_kek_is_never_committed() -> None:
    root = LOCAL_KEK_FILE.parents[1]
    ignored = subprocess.run(["git", "check-ignore", "-q", str(LOCAL_KEK_FILE)], cwd=root, env={**os.environ}, check=False)
    assert ignored.returncode == 0, f"{LOCAL_KEK_FILE} must be ignored by git"


def test_the_keys_database_sits_beside_the_main_one_unless_named() -> None:
    assert PrivacySettings().keys_database_for("formation") == "formation_keys"
    assert PrivacySettings(keys_database="vault").keys_database_for("formation") == "vault"
