"""`python -m powertrip.sandbox`: the fake Slack Web API on a local port, and at `/` a page showing
its messages with buttons that click as a chosen Slack user."""

from __future__ import annotations

import argparse
from pathlib import Path

import uvicorn

from powertrip.sandbox.fake_slack import FakeSlack, FakeUser, create_fake_slack_app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--token", required=True, help="The bot token Powertrip will present.")
    parser.add_argument(
        "--channel", action="append", default=[], help="A channel that exists: `C123[,name]`."
    )
    parser.add_argument(
        "--state", type=Path, help="JSON file keeping the messages across restarts."
    )
    parser.add_argument(
        "--user", action="append", default=[], help="A workspace member: `U123,name,email`."
    )
    parser.add_argument(
        "--signing-secret", help="Signs the sandbox page's button clicks like Slack does."
    )
    parser.add_argument(
        "--interaction-url", help="Powertrip's Slack interactivity URL (/slack/interactions)."
    )
    parser.add_argument(
        "--pagerduty-url", help="The fake PagerDuty's page (http): shown on the sandbox page."
    )
    args = parser.parse_args()
    channels = [spec.split(",", 1) for spec in args.channel]
    fake = FakeSlack(
        token=args.token,
        channels=[c[0] for c in channels],
        channel_names={c[0]: c[1] for c in channels if len(c) == 2 and c[1]},
        signing_secret=args.signing_secret,
        interaction_url=args.interaction_url,
        state=args.state,
        pagerduty_url=args.pagerduty_url,
    )
    for spec in args.user:
        user_id, name, email = [*spec.split(","), "", ""][:3]
        fake.users[user_id] = FakeUser(id=user_id, name=name or user_id, email=email or None)
    uvicorn.run(create_fake_slack_app(fake), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
