"""`powertrip dev`: Temporal dev server, fake Slack, fake PagerDuty, worker and API in one command;
Ctrl-C stops all of them."""

from __future__ import annotations

import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from powertrip.binaries import temporal_cli
from powertrip.cli.options import MAX_PORT
from powertrip.config import load_config
from powertrip.devserver import SQLITE_WAL_ARGS
from powertrip.sandbox.fake_pagerduty import FAKE_ROUTING_KEY
from powertrip.sandbox.tls import ensure_certificate
from powertrip.settings import FAKE_SLACK_TOKEN
from powertrip.temporal import SEARCH_ATTRIBUTES

REPO_ROOT = Path(__file__).resolve().parents[2]
STATE_DIR = Path(".powertrip")
FAKE_SLACK_USERS = [
    ("U0ALICE", "alice", "alice@example.com"),
    ("U0BOB", "bob", "bob@example.com"),
    ("U0SEC1", "sec1", "sec1@example.com"),
    ("U0SEC2", "sec2", "sec2@example.com"),
    ("U0MALLORY", "mallory", "mallory@example.com"),
]


def _local_secrets(path: Path, run: dict[str, str] | None = None) -> dict[str, str]:
    """Generated once per checkout so curl examples keep working across restarts; a secret a
    newer Powertrip needs is added to an existing file, the others are kept. `run`: settings of
    this run (the ports chosen), written over the last run's: the CLI in another shell sources
    this file, and would otherwise connect and link to the default ports."""
    values: dict[str, str] = {}
    if path.exists():
        pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
        values = {k: v for k, v in pairs}
    generators = {
        "POWERTRIP_WEBHOOK_TOKEN": lambda: secrets.token_urlsafe(18),
        "POWERTRIP_API_TOKEN": lambda: secrets.token_urlsafe(18),
        "POWERTRIP_API_WRITE_TOKEN": lambda: secrets.token_urlsafe(18),
        "POWERTRIP_SLACK_SIGNING_SECRET": lambda: secrets.token_hex(16),
        # A key per signer (powertrip.signing): the API's signs Slack clicks, the CLI's the
        # security team's overrides (`via: cli` only); the worker verifies both. One file holds
        # both here, on one machine; in production the CLI's operators get only theirs.
        "POWERTRIP_DECISION_KEY": lambda: secrets.token_hex(32),
        "POWERTRIP_CLI_DECISION_KEY": lambda: secrets.token_hex(32),
    }
    missing = {k: make() for k, make in generators.items() if k not in values}
    changed = {k: v for k, v in (run or {}).items() if values.get(k) != v}
    if missing or changed:
        values.update(missing | changed)
        path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
        path.chmod(0o600)
    return values


# The sandbox reminds within minutes, so trying it shows a reminder before one loses interest;
# the example (and production) value is 15m.
LOCAL_RENOTIFY_AFTER = "2m"


def write_local_config(path: Path) -> None:
    """`.powertrip/config.yaml` for the sandbox: `examples/config.yaml`, reminding after
    `LOCAL_RENOTIFY_AFTER`. Written once; edit it and restart to change anything."""
    example = (REPO_ROOT / "examples" / "config.yaml").read_text()
    local, replaced = re.subn(
        r"(?m)^renotify_after: *\S+.*$",
        f"renotify_after: {LOCAL_RENOTIFY_AFTER}"
        "                # local sandbox: reminders within minutes (example: 15m)",
        example,
    )
    if replaced != 1:
        raise RuntimeError("examples/config.yaml has no top-level `renotify_after:` line")
    path.write_text(local)


def stop_in_order(processes: list[tuple[str, subprocess.Popen[bytes]]], timeout: float) -> None:
    """SIGTERM each process, then wait for each; kill what outlives `timeout` seconds or a
    second Ctrl-C."""
    try:
        for _name, process in reversed(processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for name, process in reversed(processes):
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                typer.echo(f"{name} did not stop in time; killing it", err=True)
                process.kill()
    except KeyboardInterrupt:
        for _name, process in processes:
            process.kill()


def _ports_free(ports: dict[str, int]) -> None:
    """Exit with one line naming a port something else already listens on (another
    `powertrip dev`?): the service started on it would fail, and a readiness check would take
    the other program's answer for ours."""
    for option, port in ports.items():
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                typer.echo(
                    f"powertrip dev: port {port} is in use (another `powertrip dev`?); "
                    f"stop it, or choose another with {option}",
                    err=True,
                )
                raise typer.Exit(2) from None


def _wait_for_port(port: int, what: str, process: subprocess.Popen[bytes], within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not open port {port} within {within:.0f}s")


def dev(
    api_port: Annotated[
        int, typer.Option(min=1, max=MAX_PORT, help="Port of the Powertrip API.")
    ] = 8000,
    temporal_port: Annotated[
        int, typer.Option(min=1, max=MAX_PORT, help="Port of the Temporal dev server.")
    ] = 7233,
    ui_port: Annotated[
        int, typer.Option(min=1, max=MAX_PORT, help="Port of the Temporal Web UI.")
    ] = 8233,
    slack_port: Annotated[
        int, typer.Option(min=1, max=MAX_PORT, help="Port of the fake Slack (without Slack creds).")
    ] = 8765,
    pagerduty_port: Annotated[
        int,
        typer.Option(
            min=1,
            max=MAX_PORT,
            help="Port of the fake PagerDuty Events API, https (without a routing key).",
        ),
    ] = 8766,
    pagerduty_page_port: Annotated[
        int,
        typer.Option(
            min=1,
            max=MAX_PORT,
            help="Port of the fake PagerDuty's page: what PagerDuty would have received.",
        ),
    ] = 8767,
) -> None:
    """Run everything locally on the embedded Temporal dev server (SQLite under .powertrip/)."""
    STATE_DIR.mkdir(exist_ok=True)
    ports = {
        "POWERTRIP_TEMPORAL_ADDRESS": f"localhost:{temporal_port}",
        "POWERTRIP_TEMPORAL_UI_URL": f"http://localhost:{ui_port}",
    }
    # The file's values are this run's ports; one set by hand in the environment still wins,
    # unless it is just the file sourced before this run chose other ports.
    secrets_file = STATE_DIR / "secrets.env"
    before = _local_secrets(secrets_file)
    env = {**_local_secrets(secrets_file, ports), **os.environ}
    for name, value in ports.items():
        if os.environ.get(name) in (None, before.get(name)):
            env[name] = value
    # Passkey pages need a secure context: http://localhost is one (127.0.0.1 is not an RP id).
    env.setdefault("POWERTRIP_PUBLIC_URL", f"http://localhost:{api_port}")
    if "POWERTRIP_CONFIG" not in env:
        config = STATE_DIR / "config.yaml"
        if not config.exists():
            write_local_config(config)
        env["POWERTRIP_CONFIG"] = str(config)
    fake_slack = "POWERTRIP_SLACK_BOT_TOKEN" not in env
    if fake_slack:
        env["POWERTRIP_SLACK_BOT_TOKEN"] = FAKE_SLACK_TOKEN
        env["POWERTRIP_SLACK_API_URL"] = f"http://127.0.0.1:{slack_port}/api/"
        env.setdefault("POWERTRIP_SECURITY_CHANNEL", "C0SECURITY")
    fake_pagerduty = "POWERTRIP_PAGERDUTY_ROUTING_KEY" not in env
    pagerduty_tls = (STATE_DIR / "fake-pagerduty.pem", STATE_DIR / "fake-pagerduty-key.pem")
    if fake_pagerduty:
        # The pagerduty client speaks https only: the fake has its own certificate, trusted by
        # the worker through POWERTRIP_PAGERDUTY_CA_FILE and by nothing else.
        ensure_certificate(*pagerduty_tls, name="Powertrip fake PagerDuty")
        env["POWERTRIP_PAGERDUTY_ROUTING_KEY"] = FAKE_ROUTING_KEY
        env["POWERTRIP_PAGERDUTY_EVENTS_URL"] = f"https://127.0.0.1:{pagerduty_port}"
        env["POWERTRIP_PAGERDUTY_CA_FILE"] = str(pagerduty_tls[0])
    # Said here in one line, before anything starts: each service would say it with a traceback.
    load_config(env["POWERTRIP_CONFIG"])
    _ports_free(
        {"--api-port": api_port, "--temporal-port": temporal_port, "--ui-port": ui_port}
        | ({"--slack-port": slack_port} if fake_slack else {})
        | (
            {"--pagerduty-port": pagerduty_port, "--pagerduty-page-port": pagerduty_page_port}
            if fake_pagerduty
            else {}
        )
    )

    python = sys.executable
    processes: list[tuple[str, subprocess.Popen[bytes]]] = []

    def spawn(name: str, args: list[str]) -> subprocess.Popen[bytes]:
        # Own process group: Ctrl-C reaches us once, and we stop each child in order.
        process = subprocess.Popen(args, env=env, start_new_session=True)
        processes.append((name, process))
        return process

    def stop_all(*_: object) -> None:
        # Powertrip's processes first, Temporal last: a worker or API outliving the server
        # fills the terminal with connection errors on every Ctrl-C.
        stop_in_order([p for p in processes if p[1] is not server], timeout=35)
        stop_in_order([p for p in processes if p[1] is server], timeout=15)

    # Started in the background, a shell leaves SIGINT ignored; Ctrl-C and SIGTERM must both stop.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    server: subprocess.Popen[bytes] | None = None
    try:
        temporal_args = [
            temporal_cli(),
            "server",
            "start-dev",
            "--db-filename",
            str(STATE_DIR / "temporal.db"),
            "--port",
            str(temporal_port),
            "--ui-port",
            str(ui_port),
            *SQLITE_WAL_ARGS,
            # The dev server warns about its own internals (history page sizes, its system
            # workers losing their connection while it stops); errors still show.
            "--log-level",
            "error",
        ]
        for key in SEARCH_ATTRIBUTES:
            kind = "Datetime" if key.indexed_value_type.name == "DATETIME" else "Keyword"
            temporal_args += ["--search-attribute", f"{key.name}={kind}"]
        server = spawn("temporal", temporal_args)
        _wait_for_port(temporal_port, "Temporal dev server", server, 60)
        if fake_slack:
            channel = env["POWERTRIP_SECURITY_CHANNEL"]
            slack = spawn(
                "fake slack",
                [
                    python,
                    "-m",
                    "powertrip.sandbox",
                    "--port",
                    str(slack_port),
                    "--token",
                    FAKE_SLACK_TOKEN,
                    "--channel",
                    f"{channel},security",
                    # Kept like the dev server keeps its events: a restarted sandbox can still
                    # update the messages of events that are pending.
                    "--state",
                    str(STATE_DIR / "fake-slack.json"),
                    # The sandbox page signs its clicks and sends them to the API like Slack.
                    "--signing-secret",
                    env["POWERTRIP_SLACK_SIGNING_SECRET"],
                    "--interaction-url",
                    f"http://127.0.0.1:{api_port}/slack/interactions",
                    # The page shows what the fake PagerDuty received beside the messages.
                    *(
                        ["--pagerduty-url", f"http://127.0.0.1:{pagerduty_page_port}"]
                        if fake_pagerduty
                        else []
                    ),
                    *[arg for user in FAKE_SLACK_USERS for arg in ("--user", ",".join(user))],
                ],
            )
            _wait_for_port(slack_port, "fake Slack", slack, 30)
        if fake_pagerduty:
            pagerduty = spawn(
                "fake pagerduty",
                [
                    python,
                    "-m",
                    "powertrip.sandbox.fake_pagerduty",
                    "--port",
                    str(pagerduty_port),
                    "--page-port",
                    str(pagerduty_page_port),
                    "--cert",
                    str(pagerduty_tls[0]),
                    "--key",
                    str(pagerduty_tls[1]),
                    "--routing-key",
                    FAKE_ROUTING_KEY,
                    "--state",
                    str(STATE_DIR / "fake-pagerduty.json"),
                ],
            )
            _wait_for_port(pagerduty_port, "fake PagerDuty", pagerduty, 30)
            _wait_for_port(pagerduty_page_port, "fake PagerDuty's page", pagerduty, 30)
        spawn("worker", [python, str(REPO_ROOT / "worker.py")])
        api = spawn(
            "api",
            [
                python,
                "-m",
                "uvicorn",
                "api.main:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(api_port),
            ],
        )
        _wait_for_port(api_port, "API", api, 60)
        _banner(
            env,
            api_port,
            ui_port,
            slack_port if fake_slack else None,
            pagerduty_page_port if fake_pagerduty else None,
        )
        while all(p.poll() is None for _, p in processes):
            time.sleep(0.5)
        dead = [name for name, p in processes if p.poll() is not None]
        typer.echo(f"{', '.join(dead)} exited; stopping the rest", err=True)
        raise typer.Exit(1)
    except KeyboardInterrupt:
        typer.echo("\nstopping Powertrip…")
    except RuntimeError as exc:
        typer.echo(f"powertrip dev: {exc}", err=True)
        raise typer.Exit(1) from exc
    finally:
        stop_all()


def _banner(
    env: dict[str, str],
    api_port: int,
    ui_port: int,
    slack_port: int | None,
    pagerduty_page_port: int | None,
) -> None:
    token = env["POWERTRIP_WEBHOOK_TOKEN"]
    lines = [
        "",
        "Powertrip is running (Ctrl-C stops everything).",
        f"  API            http://localhost:{api_port}/docs",
        f"  Temporal UI    http://localhost:{ui_port}",
    ]
    if slack_port:
        lines.append(
            f"  Fake Slack     http://localhost:{slack_port}  (no Slack credentials given: "
            "open it to see the messages and click their buttons as any user; `/powertrip "
            "passkey` there registers a passkey)"
        )
    lines.append(f"  Step-up pages  {env['POWERTRIP_PUBLIC_URL']}/verify/…  (POWERTRIP_PUBLIC_URL)")
    if pagerduty_page_port:
        lines.append(
            f"  Fake PagerDuty http://localhost:{pagerduty_page_port}  (no routing key given: "
            "what PagerDuty would have received)"
        )
    lines += [
        f"  Config         {env['POWERTRIP_CONFIG']}",
        "  Secrets        .powertrip/secrets.env",
        "",
        "Try a login:",
        f"  curl -s -X POST 'http://localhost:{api_port}/webhooks/papertrail?token={token}' \\",
        "    -H 'Content-Type: application/json' \\",
        '    -d \'{"events":[{"id":1001,"hostname":"bastion","program":"sshd",'
        '"received_at":"2026-11-27T01:02:03Z",'
        '"message":"Accepted publickey for alice from 203.0.113.7 port 52100 ssh2"}]}\'',
        "",
    ]
    typer.echo("\n".join(lines))
