"""The sandbox's fake Slack keeps its messages under `.powertrip/` like the dev server keeps its
events: after a restart, deciding an old event updates its message instead of recording
`message_not_found` (issue 17)."""

from __future__ import annotations

from pathlib import Path

import httpx
from slack_sdk.web.async_client import AsyncWebClient

from powertrip.sandbox.fake_slack import FakeSlack, create_fake_slack_app
from tests.servers import SECURITY_CHANNEL, SLACK_TOKEN, ServedApp


def sandbox(state: Path) -> ServedApp:
    fake = FakeSlack(token=SLACK_TOKEN, channel_names={SECURITY_CHANNEL: "security"}, state=state)
    return ServedApp(create_fake_slack_app(fake))


async def test_messages_and_replies_survive_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "fake-slack.json"
    async with sandbox(state) as first:
        slack = AsyncWebClient(token=SLACK_TOKEN, base_url=f"{first.url}/api/")
        posted = await slack.chat_postMessage(channel=SECURITY_CHANNEL, text="Was this you?")
        async with httpx.AsyncClient() as http:
            await http.post(
                f"{first.url}/response/U0MALLORY.{SECURITY_CHANNEL}.{posted['ts']}",
                json={"text": "not allowed"},
            )

    async with sandbox(state) as second:
        slack = AsyncWebClient(token=SLACK_TOKEN, base_url=f"{second.url}/api/")
        updated = await slack.chat_update(
            channel=SECURITY_CHANNEL, ts=str(posted["ts"]), text="Approved by @alice"
        )
        assert updated["ok"]
        again = await slack.chat_postMessage(channel=SECURITY_CHANNEL, text="another")
        assert again["ts"] != posted["ts"]
        async with httpx.AsyncClient(base_url=second.url) as http:
            messages = (await http.get("/_fake/messages")).json()
            replies = (await http.get("/_fake/responses")).json()
            channels = (await http.get("/_fake/channels")).json()
    assert [(m["text"], m["updates"]) for m in messages] == [
        ("Approved by @alice", 1),
        ("another", 0),
    ]
    assert [r["text"] for r in replies] == ["not allowed"]
    assert channels == {SECURITY_CHANNEL: "security"}
