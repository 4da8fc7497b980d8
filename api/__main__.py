"""`python -m api`: the API as the container runs it, with Powertrip's logging (JSON when
`POWERTRIP_LOG_FORMAT=json`) instead of uvicorn's own."""

from __future__ import annotations

import argparse
import sys

import uvicorn

from powertrip.logs import configure_logging
from powertrip.settings import API_SECRETS, SettingsError, load_settings


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m api", description=__doc__)
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    try:
        settings = load_settings()
        settings.require(*API_SECRETS, who="API")
    except SettingsError as exc:
        sys.exit(f"powertrip api: {exc}")
    configure_logging(settings)
    uvicorn.run(
        "api.main:app",
        host=args.host,
        port=args.port,
        log_config=None,
        # Slack waits 3 s; let requests in flight finish when the container is replaced.
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
