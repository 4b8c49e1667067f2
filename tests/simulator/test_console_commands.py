"""The console's command layer, called directly: every command and its errors."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulator.console.commands import HELP, answer_confirmation, run_command
from simulator.console.context import ConsoleContext
from simulator.console.result import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CommandResult
from simulator.crypto import HsmCrypto
from simulator.errors import KeyNotFound
from simulator.faults import Faults
from simulator.hostproto.codec import ErrorCode
from simulator.keystore import KeyState, KeyStore, KeyUsage
from simulator.stats import Stats

MASTER_KEY = bytes(range(32))
BOTH = frozenset({KeyUsage.ENCRYPT, KeyUsage.DECRYPT})


@pytest.fixture
def store(tmp_path: Path) -> Iterator[KeyStore]:
    with KeyStore.open(tmp_path / "keys.db", MASTER_KEY) as opened:
        yield opened


@pytest.fixture
def ctx(store: KeyStore) -> ConsoleContext:
    return ConsoleContext(
        store=store,
        crypto=HsmCrypto(store),
        faults=Faults(),
        stats=Stats(),
        node_id="node-1",
        model="CryptoHub",
        version="7.0-sim",
    )


def run(ctx: ConsoleContext, line: str, *, interactive: bool = False) -> CommandResult:
    return run_command(line, ctx, interactive=interactive)


def assert_error(result: CommandResult, status: int, *fragments: str) -> None:
    """A failure is exactly one line starting with ``error:``."""
    assert result.status == status
    assert result.output.startswith("error: ")
    assert "\n" not in result.output
    for fragment in fragments:
        assert fragment in result.output


def shown_fields(result: CommandResult) -> dict[str, str]:
    """A ``name  value`` block as a dict (names may hold single spaces)."""
    assert result.status == EXIT_OK
    pairs = (
        re.split(r"\s{2,}", line, maxsplit=1) for line in result.output.splitlines()
    )
    return {name: value for name, value in pairs}


# -- general ------------------------------------------------------------------


def test_help_lists_every_command(ctx: ConsoleContext) -> None:
    result = run(ctx, "help")

    assert result.status == EXIT_OK
    for syntax, _ in HELP:
        assert syntax in result.output
    for group in ("keys destroy", "faults outage", "stats", "node", "exit"):
        assert group in result.output


def test_help_for_a_group_lists_only_that_group(ctx: ConsoleContext) -> None:
    output = run(ctx, "help faults").output

    assert "faults latency <ms>" in output
    assert "keys" not in output


def test_help_for_an_unknown_group_is_a_usage_error(ctx: ConsoleContext) -> None:
    assert_error(run(ctx, "help bogus"), EXIT_USAGE, "usage: help")


def test_a_blank_line_does_nothing(ctx: ConsoleContext) -> None:
    assert run(ctx, "   ") == CommandResult("")


def test_an_unknown_command_is_a_usage_error_naming_it(ctx: ConsoleContext) -> None:
    assert_error(run(ctx, "frobnicate now"), EXIT_USAGE, "'frobnicate'", "help")


def test_an_unclosed_quote_is_a_usage_error(ctx: ConsoleContext) -> None:
    assert_error(run(ctx, "keys show 'foo"), EXIT_USAGE, "quotation")


@pytest.mark.parametrize("word", ["exit", "quit"])
def test_exit_and_quit_end_the_session(ctx: ConsoleContext, word: str) -> None:
    result = run(ctx, word)

    assert result.end_session
    assert result.status == EXIT_OK


def test_a_key_store_failure_is_a_one_line_error(
    ctx: ConsoleContext, store: KeyStore
) -> None:
    store.close()

    assert_error(run(ctx, "keys list"), EXIT_FAILED, "closed")


# -- keys list and show ----------------------------------------------------------


def test_keys_list_says_so_when_there_are_no_keys(ctx: ConsoleContext) -> None:
    assert run(ctx, "keys list") == CommandResult("no keys")


def test_keys_list_shows_aligned_columns_sorted_by_label(
    ctx: ConsoleContext, store: KeyStore
) -> None:
    zed = store.create("zed", frozenset())
    a_key = store.create("a-much-longer-label", BOTH)

    lines = run(ctx, "keys list").output.splitlines()

    assert lines[0].split() == ["LABEL", "STATE", "USAGES", "VERSION", "UUID"]
    assert lines[1].split() == [
        "a-much-longer-label",
        "ENABLED",
        "ENCRYPT,DECRYPT",
        "1",
        a_key.uuid,
    ]
    assert lines[2].split() == ["zed", "ENABLED", "none", "1", zed.uuid]
    state_column = lines[0].index("STATE")
    assert all(line[state_column:].startswith("ENABLED") for line in lines[1:])


def test_keys_show_finds_a_key_by_label_and_by_uuid(
    ctx: ConsoleContext, store: KeyStore
) -> None:
    info = store.create("foo", BOTH)

    by_label = run(ctx, "keys show foo")
    by_uuid = run(ctx, f"keys show {info.uuid}")

    assert by_label == by_uuid
    assert shown_fields(by_label) == {
        "label": "foo",
        "uuid": info.uuid,
        "spec": "AES_256",
        "state": "ENABLED",
        "usages": "ENCRYPT,DECRYPT",
        "current version": "1",
        "versions": "1",
        "created": info.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def test_keys_show_of_an_unknown_key_fails(ctx: ConsoleContext) -> None:
    assert_error(run(ctx, "keys show nope"), EXIT_FAILED, "no key 'nope'")


@pytest.mark.parametrize("line", ["keys show", "keys show a b", "keys list extra"])
def test_keys_with_the_wrong_number_of_arguments_is_a_usage_error(
    ctx: ConsoleContext, line: str
) -> None:
    assert_error(run(ctx, line), EXIT_USAGE, "usage: keys")


@pytest.mark.parametrize("line", ["keys", "keys frob"])
def test_keys_without_a_known_subcommand_is_a_usage_error(
    ctx: ConsoleContext, line: str
) -> None:
    assert_error(run(ctx, line), EXIT_USAGE, "keys")


# -- keys create ----------------------------------------------------------------


def test_keys_create_defaults_to_encrypt_and_decrypt(
    ctx: ConsoleContext, store: KeyStore
) -> None:
    result = run(ctx, "keys create new-key")

    assert result.status == EXIT_OK
    assert result.output.startswith("created key new-key\n")
    assert store.get("new-key").usages == BOTH


@pytest.mark.parametrize(
    ("option", "usages"),
    [
        ("--usages wrap,UNWRAP", {KeyUsage.WRAP, KeyUsage.UNWRAP}),
        ("--usages=encrypt", {KeyUsage.ENCRYPT}),
        ("--usages none", set()),
    ],
)
def test_keys_create_takes_the_usages_given(
    ctx: ConsoleContext, store: KeyStore, option: str, usages: set[KeyUsage]
) -> None:
    assert run(ctx, f"keys create k {option}").status == EXIT_OK
    assert store.get("k").usages == usages


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("keys create", "usage: keys create"),
        ("keys create k --usages sign", "unknown usage 'sign'"),
        ("keys create k --usages", "--usages needs a value"),
        ("keys create k --force", "unknown option '--force'"),
    ],
)
def test_keys_create_with_bad_arguments_is_a_usage_error(
    ctx: ConsoleContext, store: KeyStore, line: str, fragment: str
) -> None:
    assert_error(run(ctx, line), EXIT_USAGE, fragment)
    assert store.list() == []


def test_keys_create_of_an_existing_label_fails(
    ctx: ConsoleContext, store: KeyStore
) -> None:
    store.create("foo", BOTH)

    assert_error(run(ctx, "keys create foo"), EXIT_FAILED, "already exists")


def test_keys_create_with_an_invalid_label_fails(ctx: ConsoleContext) -> None:
    assert_error(run(ctx, "keys create 'no spaces'"), EXIT_FAILED, "label")


# -- keys rotate, enable, disable, usages --------------------------------------


def test_keys_rotate_adds_a_current_version(
    ctx: ConsoleContext, store: KeyStore
) -> None:
    store.create("foo", BOTH)

    result = run(ctx, "keys rotate foo")

    assert result.status == EXIT_OK
    assert "current version  2" in result.output
    assert store.get("foo").versions == (1, 2)


def test_keys_disable_and_enable_change_the_state(
    ctx: ConsoleContext, store: KeyStore
) -> None:
    store.create("foo", BOTH)

    assert run(ctx, "keys disable foo").output.startswith("disabled key foo")
    assert store.get("foo").state is KeyState.DISABLED
    assert run(ctx, "keys enable foo").output.startswith("enabled key foo")
    assert store.get("foo").state is KeyState.ENABLED


@pytest.mark.parametrize("verb", ["rotate", "enable", "disable"])
def test_changing_an_unknown_key_fails(ctx: ConsoleContext, verb: str) -> None:
    assert_error(run(ctx, f"keys {verb} nope"), EXIT_FAILED, "no key 'nope'")


@pytest.mark.parametrize(
    ("text", "usages"),
    [
        ("encrypt", {KeyUsage.ENCRYPT}),
        ("none", set()),
        ("Wrap, unwrap", {KeyUsage.WRAP, KeyUsage.UNWRAP}),
    ],
)
def test_keys_usages_replaces_the_usages(
    ctx: ConsoleContext, store: KeyStore, text: str, usages: set[KeyUsage]
) -> None:
    store.create("foo", BOTH)

    assert run(ctx, f"keys usages foo '{text}'").status == EXIT_OK
    assert store.get("foo").usages == usages


def test_keys_usages_with_an_unknown_usage_changes_nothing(
    ctx: ConsoleContext, store: KeyStore
) -> None:
    store.create("foo", BOTH)

    assert_error(run(ctx, "keys usages foo encrypt,sign"), EXIT_USAGE, "'sign'")
    assert store.get("foo").usages == BOTH


def test_keys_usages_without_a_list_is_a_usage_error(ctx: ConsoleContext) -> None:
    assert_error(run(ctx, "keys usages foo"), EXIT_USAGE, "usage: keys usages")


# -- keys destroy ----------------------------------------------------------------


def test_keys_destroy_when_not_interactive_needs_yes(
    ctx: ConsoleContext, store: KeyStore
) -> None:
    store.create("foo", BOTH)

    assert_error(run(ctx, "keys destroy foo"), EXIT_USAGE, "--yes")
    assert store.get("foo").label == "foo"


def test_keys_destroy_with_yes_destroys_at_once(
    ctx: ConsoleContext, store: KeyStore
) -> None:
    info = store.create("foo", BOTH)

    result = run(ctx, "keys destroy foo --yes")

    assert result == CommandResult(f"destroyed key foo ({info.uuid})")
    with pytest.raises(KeyNotFound):
        store.get("foo")


def test_keys_destroy_interactive_asks_for_the_key_id_first(
    ctx: ConsoleContext, store: KeyStore
) -> None:
    info = store.create("foo", BOTH)
    store.rotate("foo")

    result = run(ctx, f"keys destroy {info.uuid}", interactive=True)

    assert result.status == EXIT_OK
    assert "2 version(s)" in result.output
    assert result.confirmation is not None
    assert result.confirmation.expected == "foo"
    assert "'foo'" in result.confirmation.prompt
    assert store.get("foo").uuid == info.uuid  # nothing destroyed yet


def test_keys_destroy_confirmed_destroys(ctx: ConsoleContext, store: KeyStore) -> None:
    store.create("foo", BOTH)
    pending = run(ctx, "keys destroy foo", interactive=True).confirmation
    assert pending is not None

    result = answer_confirmation(pending, "foo\n")

    assert result.status == EXIT_OK
    assert result.output.startswith("destroyed key foo")
    assert store.list() == []


@pytest.mark.parametrize("answer", ["", "fo", "yes", "FOO"])
def test_keys_destroy_not_confirmed_keeps_the_key(
    ctx: ConsoleContext, store: KeyStore, answer: str
) -> None:
    store.create("foo", BOTH)
    pending = run(ctx, "keys destroy foo", interactive=True).confirmation
    assert pending is not None

    assert_error(answer_confirmation(pending, answer), EXIT_FAILED, "not confirmed")
    assert store.get("foo").label == "foo"


def test_keys_destroy_confirmed_after_the_key_vanished_fails_cleanly(
    ctx: ConsoleContext, store: KeyStore
) -> None:
    store.create("foo", BOTH)
    pending = run(ctx, "keys destroy foo", interactive=True).confirmation
    assert pending is not None
    store.destroy("foo")

    assert_error(answer_confirmation(pending, "foo"), EXIT_FAILED, "no key")


def test_keys_destroy_of_an_unknown_key_fails_before_asking(
    ctx: ConsoleContext,
) -> None:
    result = run(ctx, "keys destroy nope", interactive=True)

    assert_error(result, EXIT_FAILED, "no key 'nope'")
    assert result.confirmation is None


# -- faults ---------------------------------------------------------------------


def test_faults_show_starts_with_everything_off(ctx: ConsoleContext) -> None:
    assert shown_fields(run(ctx, "faults show")) == {
        "latency ms": "0",
        "error rate": "0",
        "refuse connections": "off",
        "drop rate": "0",
        "outage": "off",
    }


def test_faults_setters_change_the_live_faults(ctx: ConsoleContext) -> None:
    run(ctx, "faults latency 250")
    run(ctx, "faults error-rate 0.25")
    run(ctx, "faults drop-rate 1")
    run(ctx, "faults refuse on")
    shown = shown_fields(run(ctx, "faults outage ON"))

    assert ctx.faults == Faults(250, 0.25, True, 1.0, True)
    assert shown["latency ms"] == "250"
    assert shown["error rate"] == "0.25"
    assert shown["outage"] == "on"


def test_faults_switches_turn_off(ctx: ConsoleContext) -> None:
    ctx.faults.update(refuse_connections=True, outage=True)

    run(ctx, "faults refuse off")
    run(ctx, "faults outage off")

    assert not ctx.faults.refuse_connections
    assert not ctx.faults.outage


def test_faults_clear_switches_everything_off(ctx: ConsoleContext) -> None:
    ctx.faults.update(latency_ms=10, error_rate=0.5, outage=True)

    run(ctx, "faults clear")

    assert ctx.faults == Faults()


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("faults latency -1", "between 0 and 60000"),
        ("faults latency 60001", "between 0 and 60000"),
        ("faults latency 1.5", "whole number"),
        ("faults latency", "usage: faults latency"),
        ("faults error-rate 1.01", "0 to 1"),
        ("faults error-rate nan", "0 to 1"),
        ("faults drop-rate -0.1", "0 to 1"),
        ("faults drop-rate lots", "0 to 1"),
        ("faults refuse maybe", "on or off"),
        ("faults outage", "usage: faults outage"),
        ("faults clear now", "usage: faults clear"),
        ("faults", "usage: faults"),
        ("faults jitter 5", "'faults jitter'"),
    ],
)
def test_faults_with_bad_arguments_change_nothing(
    ctx: ConsoleContext, line: str, fragment: str
) -> None:
    assert_error(run(ctx, line), EXIT_USAGE, fragment)
    assert ctx.faults == Faults()


# -- stats and node ---------------------------------------------------------------


def test_stats_before_any_command_says_so(ctx: ConsoleContext) -> None:
    output = run(ctx, "stats").output

    assert "connections open   0" in output
    assert output.endswith("no host-protocol commands yet")


def test_stats_shows_live_counters_per_command(ctx: ConsoleContext) -> None:
    ctx.stats.connection_opened()
    ctx.stats.record("GCEN", ErrorCode.OK, 0.002)
    ctx.stats.record("GCEN", ErrorCode.KEY_DISABLED, 0.004)
    ctx.stats.record("ECHO", ErrorCode.OK, 0.001)

    lines = run(ctx, "stats").output.splitlines()

    assert "connections open   1" in lines
    header = lines.index(next(line for line in lines if line.startswith("COMMAND")))
    assert lines[header].split() == [
        "COMMAND",
        "COUNT",
        "ERRORS",
        "MEAN",
        "LATENCY",
        "MS",
        "MAX",
        "LATENCY",
        "MS",
    ]
    assert lines[header + 1].split() == ["ECHO", "1", "0", "1", "1"]
    assert lines[header + 2].split() == ["GCEN", "2", "1", "3", "4"]


def test_stats_reset_forgets_the_command_counters(ctx: ConsoleContext) -> None:
    ctx.stats.record("ECHO", ErrorCode.OK, 0.001)

    assert run(ctx, "stats reset").status == EXIT_OK
    assert run(ctx, "stats").output.endswith("no host-protocol commands yet")


def test_stats_with_an_unknown_argument_is_a_usage_error(ctx: ConsoleContext) -> None:
    assert_error(run(ctx, "stats now"), EXIT_USAGE, "usage: stats")


def test_node_shows_identity_and_key_count(
    ctx: ConsoleContext, store: KeyStore
) -> None:
    store.create("foo", BOTH)

    assert shown_fields(run(ctx, "node")) == {
        "node id": "node-1",
        "model": "CryptoHub",
        "version": "7.0-sim",
        "keys": "1",
    }


def test_node_takes_no_arguments(ctx: ConsoleContext) -> None:
    assert_error(run(ctx, "node x"), EXIT_USAGE, "usage: node")


@pytest.mark.parametrize(
    ("line", "status"),
    [
        ("keys show ''", EXIT_FAILED),
        ("faults latency ''", EXIT_USAGE),
        ("keys usages foo ''", EXIT_USAGE),
        ("--", EXIT_USAGE),
        ("keys --", EXIT_USAGE),
        ("keys create k --usages=", EXIT_USAGE),
    ],
)
def test_odd_input_gets_a_one_line_error(
    ctx: ConsoleContext, line: str, status: int
) -> None:
    assert_error(run(ctx, line), status)
