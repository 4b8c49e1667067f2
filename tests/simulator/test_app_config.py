"""The configuration loader: typed settings, and errors that say what to fix."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fixtures.pki import Pki
from simulator.config import ConfigError, load_config

DEV_CONFIG = Path(__file__).parents[2] / "fixtures" / "dev" / "simulator.toml"


def write_config(folder: Path, pki: Pki, **replace: str) -> Path:
    """A complete config in ``folder``; ``replace`` swaps whole lines by key."""
    lines = {
        "node": '[node]\nid = "n1"\n',
        "host": (
            "[host]\nport = 0\n"
            f'cert = "{pki.simulator_server_chain}"\n'
            f'key = "{pki.simulator_server_key}"\n'
            f'client_ca = "{pki.sim_ca_cert}"\n'
        ),
        "console": (
            "[console]\nport = 0\n"
            f'host_key = "{pki.ssh_host_key}"\n'
            f'authorized_keys = "{pki.ssh_admin_pubkey}"\n'
        ),
        "store": '[store]\npath = "state/keys.db"\n',
    }
    lines.update(replace)
    path = folder / "simulator.toml"
    path.write_text("\n".join(lines.values()))
    return path


def test_a_complete_file_loads_with_defaults_filled_in(
    tmp_path: Path, pki: Pki
) -> None:
    config = load_config(write_config(tmp_path, pki))

    assert config.node.node_id == "n1"
    assert config.node.model == "CryptoHub Simulator"
    assert config.host.port == 0
    assert config.host.listen == "127.0.0.1"
    assert config.host.max_frame_bytes == 65536
    assert config.host.max_in_flight == 64
    assert config.host.cert == pki.simulator_server_chain
    assert config.store.path == tmp_path.resolve() / "state" / "keys.db"
    assert config.store.master_key_file is None
    assert config.store.seed is False


def test_relative_paths_resolve_against_the_file_not_the_cwd(
    tmp_path: Path, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(pki.root, tmp_path / "pki")
    folder = tmp_path / "conf"
    folder.mkdir()
    path = write_config(
        folder,
        pki,
        host=(
            "[host]\n"
            'cert = "../pki/simulator/server-chain.pem"\n'
            'key = "../pki/simulator/server.key"\n'
            'client_ca = "../pki/simulator/ca.pem"\n'
        ),
        store='[store]\npath = "keys.db"\nmaster_key_file = "mk"\nseed = true\n',
    )
    monkeypatch.chdir(pki.root)

    config = load_config(path)

    pki_copy = (tmp_path / "pki").resolve()
    assert config.host.cert == pki_copy / "simulator" / "server-chain.pem"
    assert config.store.master_key_file == folder.resolve() / "mk"
    assert config.store.seed is True


def test_the_dev_config_names_the_minted_pki_files(tmp_path: Path, pki: Pki) -> None:
    # The dev file points at ../../var/pki; lay out the same tree around a copy.
    dev = tmp_path / "fixtures" / "dev"
    dev.mkdir(parents=True)
    shutil.copy(DEV_CONFIG, dev / "simulator.toml")
    shutil.copytree(pki.root, tmp_path / "var" / "pki")

    config = load_config(dev / "simulator.toml")

    assert (config.host.port, config.console.port) == (9100, 2222)
    assert config.host.listen == config.console.listen == "127.0.0.1"
    assert config.store.path == tmp_path.resolve() / "var" / "simulator" / "keys.db"
    assert config.store.seed is True


@pytest.mark.parametrize(
    ("replace", "expected"),
    [
        ({"host": "[host]\nport = 0\n"}, r"\[host\] cert: missing; add it"),
        ({"store": ""}, r"missing section \[store\]; add it"),
        (
            {"node": '[node]\nid = "n1"\nmodle = "x"\n'},
            r"unknown key 'modle'; did you mean model\?",
        ),
        ({"node": "[node]\nid = 7\n"}, r"\[node\] id: must be a string, not 7"),
        ({"node": '[node]\nid = ""\n'}, r"\[node\] id: must not be empty"),
        ({"node": "node = 3\n"}, r"node must be a table"),
        ({"node": "[extra]\n"}, r"top level: unknown key 'extra'"),
        ({"store": "[store]\npath = 3\n"}, r"\[store\] path: must be a path, not 3"),
        (
            {"store": '[store]\npath = "k"\nseed = "yes"\n'},
            r"seed: must be true or false",
        ),
    ],
)
def test_errors_name_the_file_the_key_and_the_fix(
    tmp_path: Path, pki: Pki, replace: dict[str, str], expected: str
) -> None:
    path = write_config(tmp_path, pki, **replace)
    with pytest.raises(ConfigError, match=expected) as caught:
        load_config(path)
    assert str(caught.value).startswith(str(path))


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("port = 70000", r"\[host\] port: must be between 0 and 65535, not 70000"),
        ("port = true", r"\[host\] port: must be a whole number, not True"),
        ("max_in_flight = 0", r"max_in_flight: must be between 1 and 4096"),
        ("max_frame_bytes = 10", r"max_frame_bytes: must be between 1024"),
        ("idle_timeout_s = 0", r"idle_timeout_s: must be above 0"),
        ("handshake_timeout_s = 'x'", r"handshake_timeout_s: must be a number"),
    ],
)
def test_host_numbers_are_range_checked(
    tmp_path: Path, pki: Pki, line: str, expected: str
) -> None:
    host = (
        f"[host]\n{line}\n"
        f'cert = "{pki.simulator_server_chain}"\n'
        f'key = "{pki.simulator_server_key}"\n'
        f'client_ca = "{pki.sim_ca_cert}"\n'
    )
    with pytest.raises(ConfigError, match=expected):
        load_config(write_config(tmp_path, pki, host=host))


def test_a_missing_certificate_file_says_how_to_make_one(
    tmp_path: Path, pki: Pki
) -> None:
    host = '[host]\ncert = "nope.pem"\nkey = "k"\nclient_ca = "c"\n'
    with pytest.raises(
        ConfigError, match=r"cert: .*nope.pem is not a file.*fixtures mint"
    ):
        load_config(write_config(tmp_path, pki, host=host))


def test_a_missing_file_and_bad_toml_are_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such configuration file"):
        load_config(tmp_path / "absent.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[host\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(broken)
