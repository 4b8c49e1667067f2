"""Where secrets come from: a private file or an environment variable.

A secret (a SigV4 secret access key, the TLS key passphrase) is named in the
configuration by *where* it is, never by its value: ``<name>_file`` (a path)
or ``<name>_env`` (a variable name). The value itself in the TOML
(``<name> = "..."``) is refused, because configuration files get committed,
copied into tickets and printed by ``check-config``; the command line is
never a source either, since any local user can read it in ``ps``.

A secret file must be readable by its owner only (no group or other
permission bits), as ssh insists for private keys: a secret the whole machine
can read is not a secret, and refusing to start is the one way to make sure
somebody notices. Nothing here puts any part of a secret's value into an
error message.
"""

from __future__ import annotations

import stat
from collections.abc import Mapping
from pathlib import Path

from sidecar.config_reader import Table

# Secret access keys are 43 to 64 characters (spec, Appendix A); passphrases
# are short too. A bigger file is the wrong file.
_MAX_SECRET_FILE_BYTES = 4096


def check_private_file(table: Table, key: str, path: Path) -> None:
    """Refuse ``path`` unless it is a regular file only its owner may read."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise table.error(key, f"cannot read {path}: {exc.strerror}") from exc
    if not stat.S_ISREG(mode):
        raise table.error(key, f"{path} is not a regular file")
    if mode & 0o077:
        raise table.error(
            key,
            f"{path} is open to group or others (mode {stat.S_IMODE(mode):o});"
            f" restrict it: chmod 600 {path}",
        )


def secret_source(table: Table, name: str) -> tuple[Path | None, str | None]:
    """The file or variable named for secret ``name``: exactly one of them."""
    if table.has(name):
        raise table.error(
            name,
            f"secrets are never written into the configuration; put it in a"
            f" file (mode 600) named by {name}_file, or in an environment"
            f" variable named by {name}_env",
        )
    file = table.optional_path(f"{name}_file")
    variable = table.optional_text(f"{name}_env")
    if file is not None and variable is not None:
        raise table.error(f"{name}_file", f"set {name}_file or {name}_env, not both")
    return file, variable


def read_secret(table: Table, name: str, env: Mapping[str, str]) -> str:
    """The value of required secret ``name``, from its file or variable."""
    file, variable = secret_source(table, name)
    if file is not None:
        return _read_secret_file(table, f"{name}_file", file)
    if variable is not None:
        return _read_secret_variable(table, f"{name}_env", variable, env)
    raise table.error(name, f"missing; add {name}_file or {name}_env")


def _read_secret_file(table: Table, key: str, path: Path) -> str:
    check_private_file(table, key, path)
    try:
        raw = path.read_bytes()[: _MAX_SECRET_FILE_BYTES + 1]
    except OSError as exc:
        raise table.error(key, f"cannot read {path}: {exc.strerror}") from exc
    if len(raw) > _MAX_SECRET_FILE_BYTES:
        raise table.error(key, f"{path} is too large to hold one secret")
    try:
        # One trailing newline is how editors and `echo` end a file.
        value = raw.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError as exc:
        raise table.error(key, f"{path} is not UTF-8 text") from exc
    if not value:
        raise table.error(key, f"{path} is empty; write the secret into it")
    return value


def _read_secret_variable(
    table: Table, key: str, variable: str, env: Mapping[str, str]
) -> str:
    value = env.get(variable)
    if not value:
        raise table.error(key, f"environment variable {variable} is unset or empty")
    return value
