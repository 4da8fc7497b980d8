"""`powertrip rules test` and `powertrip rules packs`, as a user developing a rule runs them."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from typer.testing import CliRunner

from powertrip.cli import app
from tests.servers import CORPUS

runner = CliRunner()


def test_rules_test_prints_rule_and_event_or_why_not() -> None:
    result = runner.invoke(
        app,
        ["rules", "test", "--pack", "sshd", "--pack", "sudo", str(CORPUS / "beats" / "test.log")],
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "line 1: sshd-accepted" in lines[0] and "actor=vagrant" in lines[0]
    assert "address=10.0.2.2" in lines[0] and "host=localhost" in lines[0]
    # A failed password is a known non-event: counted, never sent for review.
    assert "line 4: known non-event sshd-failed-login" in lines[3]
    assert "line 5: sudo-command" in lines[4] and "command='/bin/ls'" in lines[4]
    assert "line 9: no rule matched" in lines[8]
    assert "sshd-accepted: program 'groupadd' does not match" in lines[8]
    assert "sudo-command: program 'groupadd' does not match" in lines[8]
    assert "4 event(s), 3 known non-event(s), 3 unmatched (sent for review), 0 invalid" in lines


def test_expect_fails_naming_the_lines_that_do_not_match() -> None:
    text = (
        "# my sshd lines\n"
        "Accepted password for bob from 2001:db8::1 port 22 ssh2\n"
        "\n"
        "Failed password for bob from 2001:db8::1 port 22 ssh2\n"
    )
    result = runner.invoke(app, ["rules", "test", "-", "--program", "sshd", "--expect"], input=text)
    assert result.exit_code == 1
    assert "1 line(s) expected to match a rule did not: 4" in result.output
    passing = runner.invoke(
        app,
        ["rules", "test", "-", "--program", "sshd", "--expect", "--rule", "sshd-accepted"],
        input=text.splitlines()[1],
    )
    assert passing.exit_code == 0, passing.output
    wrong_rule = runner.invoke(
        app,
        ["rules", "test", "-", "--program", "sshd", "--expect", "--rule", "sudo-command"],
        input=text.splitlines()[1],
    )
    assert wrong_rule.exit_code == 1


def test_rules_test_with_a_config_json_events_and_json_output(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "rule_packs: [custom-example]\nrules:\n"
        "  - id: deploy\n    title: Deploy\n"
        "    match: {message: 'deployed by (?<who>\\w+)'}\n"
        "    event: {actor: '{who}', action: deploy}\n"
    )
    lines = tmp_path / "lines.txt"
    lines.write_text(
        "release 42 deployed by carol\n"
        + json.dumps({"event": "vpn.login", "user": "bob", "ip": "192.0.2.1"})
        + "\n"
    )
    result = runner.invoke(app, ["rules", "test", "--config", str(config), "--json", str(lines)])
    assert result.exit_code == 0, result.output
    first, second = (json.loads(line) for line in result.stdout.splitlines())
    assert (first["rule"], first["event"]["actor"]) == ("deploy", "carol")
    assert (second["rule"], second["event"]["address"]) == ("custom-vpn-login", "192.0.2.1")


def test_broken_config_is_reported_with_the_rule_id(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "rules:\n  - id: broken\n    title: t\n    match: {message: '(?<x>'}\n"
        "    event: {actor: '{x}', action: a}\n"
    )
    result = runner.invoke(app, ["rules", "test", "--config", str(config), "-"], input="x\n")
    assert result.exit_code == 2
    assert "broken" in result.output and "does not compile" in result.output


def test_rules_packs_lists_every_pack_and_what_is_enabled(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("rule_packs: [sshd, cloudtrail]\n")
    result = runner.invoke(app, ["rules", "packs", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "sshd (enabled)" in result.output and "cloudtrail (enabled)" in result.output
    assert "sudo (available)" in result.output
    assert "cloudtrail-assume-admin-role" in result.output


def test_rules_test_names_the_packs_it_used_and_those_that_are_off(tmp_path: Path) -> None:
    # A cron session no default pack knows (host privileged access: sshd, sudo, su) is
    # reviewed; the summary names the packs that are off, `noise` among them, which knows it.
    cron_line = "pam_unix(cron:session): session opened for user root by (uid=0)\n"
    result = runner.invoke(app, ["rules", "test", "-", "--program", "CRON"], input=cron_line)
    assert result.exit_code == 0, result.output
    assert "1 unmatched" in result.stdout
    last = result.stdout.splitlines()[-1]
    assert "pack(s): sshd, sudo, su;" in last
    assert "off: cloudtrail, custom-example, noise" in last
    assert "rule_packs:" in last  # how to turn one on

    sudo_line = "bob : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/ls\n"

    config = tmp_path / "config.yaml"
    config.write_text(
        "rule_packs: [sshd, sudo]\nrules:\n"
        "  - id: deploy\n    title: Deploy\n"
        "    match: {message: 'deployed by (?<who>\\w+)'}\n"
        "    event: {actor: '{who}', action: deploy}\n"
    )
    result = runner.invoke(
        app,
        # A bare line names no program: a rule on the program needs one (issue 10, section 3).
        ["rules", "test", "--config", str(config), "--json", "--program", "sudo", "-"],
        input=sudo_line,
    )
    assert json.loads(result.stdout)["rule"] == "sudo-command"  # stdout stays JSON only
    assert "1 rule(s) of your own, then the built-in pack(s): sshd, sudo;" in result.stderr
    assert "off: cloudtrail, custom-example, noise, su " in result.stderr


def test_hostile_numbers_are_each_lines_reason_not_a_hang_or_a_traceback() -> None:
    """Red-team F1/F2: `"time": 1e999` hung `rules test` for good, a 5,000-digit integer
    printed a traceback. Each line says what is wrong with it; the others are tried."""
    login = "Accepted publickey for alice from 198.51.100.9 port 4000 ssh2"
    record = '{"host":"bastion","program":"sshd","message":"' + login + '",EXTRA}'
    text = "\n".join(
        [
            record.replace("EXTRA", '"time":1e999'),
            record.replace("EXTRA", '"time":NaN'),
            record.replace("EXTRA", '"n":' + "1" * 5000),
            "[" + "1" * 5000 + "]",
            f"Nov 30 25:00:00 bastion sshd[999]: {login}",
        ]
    )
    result = runner.invoke(app, ["rules", "test", "--pack", "sshd", "-"], input=text)
    assert result.exit_code == 0 and result.exception is None, result.output
    lines = result.output.splitlines()
    # An unreadable record says so: it is `invalid` (reviewed as such), not "no rule matched",
    # which would send its author hunting for a rule when the record itself is at fault.
    invalid = "(sent for review) -"
    assert f"line 1: invalid {invalid} time: not a time: a number out of range: 1e999" in lines[0]
    assert f"line 2: invalid {invalid} time: not a time: NaN" in lines[1]
    assert f"line 3: invalid {invalid} fields: " in lines[2] and "5000 digits" in lines[2]
    assert f"line 4: invalid {invalid} expected a JSON object" in lines[3]
    assert not any("no rule matched" in line for line in lines[:4])
    assert "line 5: sshd-accepted" in lines[4]  # the stamp is no time; the login still is one
    assert "1 event(s), 0 known non-event(s), 0 unmatched (sent for review), 4 invalid" in lines


ACCEPTED = (
    b"Nov 27 01:02:03 bastion sshd[1]: Accepted publickey for %s from 203.0.113.7 port %d ssh2\n"
)


def test_rules_test_reads_what_the_backfill_reads_a_bad_byte_costs_only_itself(
    tmp_path: Path,
) -> None:
    """A latin-1 byte, a gzipped file, a binary file: each was a UnicodeDecodeError traceback
    that lost the whole file. Now read as the backfill reads them (sources.files.InputLines)."""
    latin1 = ACCEPTED % (b"jos\xe9", 1) + ACCEPTED % (b"bob", 2)
    plain = tmp_path / "auth.log"
    plain.write_bytes(latin1)
    zipped = tmp_path / "auth.log.gz"
    zipped.write_bytes(gzip.compress(latin1))
    for path in (plain, zipped):
        result = runner.invoke(app, ["rules", "test", "--pack", "sshd", str(path)])
        assert result.exit_code == 0, result.output
        assert "line 1: sshd-accepted" in result.output and "actor=jos\ufffd" in result.output
        assert "line 2: sshd-accepted" in result.output and "actor=bob" in result.output
    stdin = runner.invoke(app, ["rules", "test", "--pack", "sshd", "-"], input=latin1)
    assert stdin.exit_code == 0 and "2 event(s)" in stdin.output, stdin.output
    binary = tmp_path / "binary.log"
    binary.write_bytes(
        b"\x7fELF\x02\x01\x01\x00\n" + bytes(range(256)) + b"\n" + ACCEPTED % (b"al", 3)
    )
    result = runner.invoke(app, ["rules", "test", "--pack", "sshd", str(binary)])
    assert result.exit_code == 0, result.output
    assert "line 4: sshd-accepted" in result.output  # 256 bytes hold one newline


def test_rules_test_on_a_cut_gzip_or_a_directory_is_one_line(tmp_path: Path) -> None:
    cut = tmp_path / "auth.log.gz"
    cut.write_bytes(gzip.compress(ACCEPTED % (b"al", 1) * 50)[:40])
    result = runner.invoke(app, ["rules", "test", str(cut)])
    assert result.exit_code == 2
    assert "auth.log.gz is no complete gzip file" in " ".join(result.output.split())
    assert result.exception is None or isinstance(result.exception, SystemExit)
    folder = runner.invoke(app, ["rules", "test", str(tmp_path)])
    assert folder.exit_code == 2 and "it is a directory" in folder.output


def test_expect_an_unknown_rule_is_refused_naming_the_known_ones() -> None:
    """It listed every line as not matching a rule that does not exist."""
    result = runner.invoke(
        app,
        ["rules", "test", "-", "--pack", "sshd", "--expect", "--rule", "sshd-acepted"],
        input=ACCEPTED.decode(),
    )
    assert result.exit_code == 2
    assert "--rule sshd-acepted: no such rule" in result.output
    assert "sshd-accepted" in result.output and "line 1" not in result.output
