"""Expected failures of any `powertrip` command, said in one line instead of a traceback.

Every command goes through `powertrip.cli.main`, which hands what a command raised to
`one_line`: Temporal unreachable or refusing (with the address and what to check), settings and
config errors, files that cannot be read or written. Anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from powertrip.config import ConfigError
from powertrip.settings import Settings, SettingsError
from powertrip.temporal import connect, namespace_not_found

# Exit codes: 1 for a failure of the work (Temporal, a refused request), 2 for a usage problem
# (settings, config, files), as click uses 2 for a bad option.
WORK_FAILED = 1
USAGE = 2


class TemporalUnreachable(Exception):
    """Connecting to Temporal failed; `reason` is the transport's own words, shortened."""

    def __init__(self, address: str, reason: str) -> None:
        super().__init__(f"cannot reach Temporal at {address}: {reason}")
        self.address = address
        self.reason = reason


@dataclass
class _Target:
    address: str | None = None
    namespace: str | None = None


# The Temporal this process talks to, for naming it when a later call fails.
_target = _Target()


async def connect_cli(settings: Settings) -> Client:
    """`powertrip.temporal.connect` for a command: failure is `TemporalUnreachable`."""
    _target.address, _target.namespace = settings.temporal_address, settings.temporal_namespace
    try:
        return await connect(settings)
    except RuntimeError as exc:
        text = str(exc)
        if "InvalidContentType" in text:  # the answer to our TLS hello was no TLS record
            raise SettingsError(
                f"Temporal at {settings.temporal_address} does not speak TLS, but TLS is on "
                "(POWERTRIP_TEMPORAL_TLS, _TLS_CERT, _TLS_CA or an API key): "
                "for a plain server set none of them"
            ) from exc
        for marker, setting in _UNREADABLE_TLS_FILES.items():
            if marker in text:  # settings check the files are PEM; this is what is left
                path = getattr(settings, setting.removeprefix("POWERTRIP_").lower())
                raise SettingsError(f"{setting}: {path} cannot be read ({marker})") from exc
        raise TemporalUnreachable(settings.temporal_address, _transport_reason(text)) from exc


# The SDK's words for a TLS file it cannot use, and the setting that names the file.
_UNREADABLE_TLS_FILES = {
    "PrivateKeyParseError": "POWERTRIP_TEMPORAL_TLS_KEY",
    "failed to parse private key": "POWERTRIP_TEMPORAL_TLS_KEY",
    "NoCertificatesPresented": "POWERTRIP_TEMPORAL_TLS_CERT",
}


def _transport_reason(text: str) -> str:
    """The readable part of the SDK's connect error, e.g. from `... ConnectError("tcp connect
    error", 127.0.0.1:7999, Os { code: 111, kind: ConnectionRefused, message: "Connection
    refused" })))`: `connection refused`."""
    for pattern in (r'error: "([^"]+)"', r'message: "((?!transport error)[^"]+)"'):
        found = re.search(pattern, text)
        if found:
            return found.group(1)[0].lower() + found.group(1)[1:]
    kind = re.findall(r"Kind\((\w+)\)", text)
    if kind:
        return re.sub(r"(?<!^)([A-Z])", r" \1", kind[-1]).lower() + " (is it a Temporal frontend?)"
    return text.removeprefix("Failed client connect: ")[:200]


def _where() -> str:
    return f"Temporal at {_target.address}" if _target.address else "Temporal"


def one_line(exc: BaseException) -> tuple[str, int] | None:
    """The message and exit code for an expected failure, or None for a bug."""
    if isinstance(exc, TemporalUnreachable):
        return (
            f"{exc}. Is Temporal running there? Locally `./scripts/run` starts it; "
            "POWERTRIP_TEMPORAL_ADDRESS names another.",
            WORK_FAILED,
        )
    if isinstance(exc, RPCError):
        return _rpc_line(exc), WORK_FAILED
    if isinstance(exc, SettingsError | ConfigError):
        return str(exc), USAGE
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or exc}", USAGE
    if isinstance(exc, FileNotFoundError):  # e.g. powertrip.binaries: "`temporal` not found: …"
        return str(exc), USAGE
    return None


def _rpc_line(exc: RPCError) -> str:
    message = exc.message or str(exc)
    if namespace_not_found(exc):
        return (
            f"{_where()} has no namespace {_target.namespace!r} ({message}); "
            "POWERTRIP_TEMPORAL_NAMESPACE names it"
        )
    if exc.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
        return f"lost {_where()}: {message}"
    if exc.status in (RPCStatusCode.UNAUTHENTICATED, RPCStatusCode.PERMISSION_DENIED):
        return (
            f"{_where()} refused the request: {message} "
            "(check POWERTRIP_TEMPORAL_API_KEY or the TLS certificate)"
        )
    return f"{_where()} answered {exc.status.name}: {message}"
