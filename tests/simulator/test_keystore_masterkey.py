"""Loading and generating the master key that wraps the key store."""

from __future__ import annotations

import base64
import logging
import os
import stat
from pathlib import Path

import pytest

from simulator.errors import MasterKeyError
from simulator.masterkey import ENV_VAR, generate_master_key_file, load_master_key

KEY = bytes(range(100, 132))


def _private_file(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    os.chmod(path, 0o600)
    return path


@pytest.mark.parametrize(
    "content",
    [
        KEY,
        KEY.hex().encode(),
        KEY.hex().upper().encode() + b"\n",
        base64.b64encode(KEY),
        base64.b64encode(KEY) + b"\n",
    ],
    ids=["raw", "hex", "hex-upper-newline", "base64", "base64-newline"],
)
def test_a_key_file_may_hold_raw_hex_or_base64(tmp_path: Path, content: bytes) -> None:
    path = _private_file(tmp_path / "mk", content)

    assert load_master_key(path, {}) == KEY


@pytest.mark.parametrize("encoded", [KEY.hex(), base64.b64encode(KEY).decode()])
def test_the_environment_may_hold_hex_or_base64(encoded: str) -> None:
    assert load_master_key(None, {ENV_VAR: encoded}) == KEY


def test_a_given_file_wins_over_the_environment(tmp_path: Path) -> None:
    path = _private_file(tmp_path / "mk", KEY.hex().encode())

    assert load_master_key(path, {ENV_VAR: bytes(32).hex()}) == KEY


def test_no_file_and_no_variable_names_both_sources() -> None:
    with pytest.raises(MasterKeyError, match=ENV_VAR):
        load_master_key(None, {"OTHER": "x"})


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o644])
def test_a_file_open_to_group_or_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "mk"
    path.write_bytes(KEY.hex().encode())
    os.chmod(path, mode)

    with pytest.raises(MasterKeyError, match="chmod 600"):
        load_master_key(path, {})


@pytest.mark.parametrize(
    "content",
    [
        b"",
        bytes(31),
        bytes(33),
        KEY.hex()[:-2].encode(),
        (KEY.hex() + "00").encode(),
        base64.b64encode(KEY[:16]),
        b"g" * 64,
        b"not a key at all",
    ],
)
def test_malformed_file_content_is_refused_without_echoing_it(
    tmp_path: Path, content: bytes
) -> None:
    path = _private_file(tmp_path / "mk", content)

    with pytest.raises(MasterKeyError) as caught:
        load_master_key(path, {})
    if content:
        assert content.decode("latin-1") not in str(caught.value)


def test_a_malformed_variable_is_refused_without_echoing_it() -> None:
    secretish = "ab" * 31  # 62 hex characters: one byte short

    with pytest.raises(MasterKeyError, match=ENV_VAR) as caught:
        load_master_key(None, {ENV_VAR: secretish})
    assert secretish not in str(caught.value)


def test_a_missing_file_is_reported_by_path(tmp_path: Path) -> None:
    with pytest.raises(MasterKeyError, match="cannot open"):
        load_master_key(tmp_path / "absent", {})


def test_a_symlinked_key_file_is_refused(tmp_path: Path) -> None:
    target = _private_file(tmp_path / "real", KEY.hex().encode())
    link = tmp_path / "link"
    link.symlink_to(target)

    with pytest.raises(MasterKeyError):
        load_master_key(link, {})


def test_generate_writes_a_loadable_private_key_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    path = tmp_path / "secrets" / "master.key"

    generate_master_key_file(path)
    key = load_master_key(path, {})

    assert len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["master.key"]  # no temp left
    assert key.hex() not in caplog.text


def test_generate_draws_a_different_key_each_time(tmp_path: Path) -> None:
    generate_master_key_file(tmp_path / "a")
    generate_master_key_file(tmp_path / "b")

    assert load_master_key(tmp_path / "a", {}) != load_master_key(tmp_path / "b", {})


def test_generate_refuses_to_overwrite(tmp_path: Path) -> None:
    path = _private_file(tmp_path / "mk", KEY.hex().encode())

    with pytest.raises(MasterKeyError, match="refusing to overwrite"):
        generate_master_key_file(path)
    assert load_master_key(path, {}) == KEY
