"""``xks-bench``: load-test an XKS proxy as KMS would, before registering it.

    xks-bench --endpoint https://xks.example.com --uri-path /ks1/kms/xks/v1 \\
        --key-id foo --access-key-id AKIA... --secret-file secret.txt \\
        --client-cert kms.pem --client-key kms.key --ca-file ca.pem

The report goes to stdout (and with ``--json PATH`` to a file), progress and
problems to stderr. Exit status: 0 PASS, 1 FAIL, 2 bad settings, 3
INCONCLUSIVE (the tool itself could not keep its timetable), 4 the run
could not start (no connection, or the warm-up made nothing to decrypt).
docs/load-tool.md explains the figures.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import trio

from sidecar.bench.report_text import render
from sidecar.bench.runner import BenchSetupError, run_bench
from sidecar.bench.settings import BenchSettings, SettingsError, add_arguments, resolve
from sidecar.bench.tls import TlsSetupError

EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_INCONCLUSIVE, EXIT_SETUP = 0, 1, 2, 3, 4
_EXIT_BY_STATUS = {
    "PASS": EXIT_PASS,
    "FAIL": EXIT_FAIL,
    "INCONCLUSIVE": EXIT_INCONCLUSIVE,
}

_log = logging.getLogger("sidecar.bench")


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="xks-bench: %(message)s")
    # No abbreviations: "--secret" must not quietly mean "--secret-file".
    parser = argparse.ArgumentParser(
        prog="xks-bench",
        description="Load-test an XKS proxy as AWS KMS would call it.",
        allow_abbrev=False,
    )
    add_arguments(parser)
    args = vars(parser.parse_args(argv))
    try:
        settings = resolve(args, args.pop("config"), os.environ)
    except SettingsError as exc:
        _log.error("%s", exc)
        return EXIT_USAGE
    try:
        report = trio.run(
            run_bench, settings, sys.stderr if settings.progress else None
        )
    except (BenchSetupError, TlsSetupError) as exc:
        _log.error("%s", exc)
        return EXIT_SETUP
    _emit(report, settings)
    return _EXIT_BY_STATUS[report["status"]]


def _emit(report: dict[str, Any], settings: BenchSettings) -> None:
    sys.stdout.write(render(report))
    sys.stdout.flush()
    if settings.json is not None:
        _write_json(settings.json, report)


def _write_json(path: Path, report: dict[str, Any]) -> None:
    # Written whole to a neighbour, then renamed: a reader never sees half.
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    partial.replace(path)


if __name__ == "__main__":
    sys.exit(main())
