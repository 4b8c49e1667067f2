"""Settings and parts of a run pointed at the fake proxy."""

from __future__ import annotations

from typing import Any

from fixtures.pki import Pki
from sidecar.bench.settings import SECRET_ENV_DEFAULT, BenchSettings, resolve
from tests.bench_tool.fake_proxy import ACCESS_KEY_ID, KEY_ID, SECRET, URI_PATH


def settings_for(port: int, pki: Pki, **overrides: Any) -> BenchSettings:
    """Settings for a run against the fake proxy on ``port`` (mTLS as KMS)."""
    given: dict[str, Any] = {
        "endpoint": f"https://localhost:{port}",
        "uri_path": URI_PATH,
        "key_id": KEY_ID,
        "access_key_id": ACCESS_KEY_ID,
        "ca_file": pki.public_root_cert,
        "client_cert": pki.kms_client_chain,
        "client_key": pki.kms_client_key,
        "progress": False,
    }
    given.update(overrides)
    return resolve(given, None, {SECRET_ENV_DEFAULT: SECRET})
