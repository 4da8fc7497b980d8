"""A flood of record shapes no rule knows (issue 10, section 6): 300 records of 300 shapes in one
request are each kept for review, and the security channel sees a few posts and a digest, not
300 posts. Moved from tests/test_review_pacing.py on 2026-12-02 for the main suite's 10-minute
budget (12 to 15 s of it)."""

from __future__ import annotations

import json
import random
import string
import uuid

import httpx

from powertrip.sandbox.fake_slack import FakeSlack, SlackMessage
from powertrip.settings import Settings
from tests.harness import WEBHOOK_HEADERS, eventually
from tests.test_review_pacing import posts, stack  # noqa: F401  (stack: a fixture)


def word(rng: random.Random) -> str:
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(12))


async def test_three_hundred_shapes_are_a_few_posts_and_one_digest(
    stack: tuple[httpx.AsyncClient, Settings],  # noqa: F811  (the fixture imported above)
    fake_slack: FakeSlack,
) -> None:
    http, _ = stack
    rng = random.Random(uuid.uuid4().int)
    marker = word(rng)  # every shape carries it: the posts of this test
    records = [
        {"id": uuid.uuid4().hex, "program": "app", "message": f"{marker} {word(rng)} {word(rng)}"}
        for _ in range(300)
    ]
    response = await http.post("/webhooks/json", json=records, headers=WEBHOOK_HEADERS)
    assert response.status_code == 202, response.text
    results = response.json()["results"]
    assert {r["status"] for r in results} == {"unmatched"}
    assert {r["review"] for r in results} == {"requested"}  # every shape is recorded...
    assert len({r["review_id"] for r in results}) == 300

    def digests() -> list[SlackMessage]:
        return [m for m in posts(fake_slack, marker) if "digest" in json.dumps(m.blocks)]

    def listed() -> int:
        return sum(int(m.text.split(" more ", 1)[0]) for m in digests())

    await eventually(lambda: listed() == 297, within=90)
    # ...but the channel sees the first three on their own and the rest in a digest (one per
    # `review_digest_every` while they keep arriving: here 10 s, in production 10 minutes).
    singles = [m for m in posts(fake_slack, marker) if m not in digests()]
    assert len(singles) == 3
    assert all("Unrecognised json record needs review" in m.text for m in singles)
    assert 1 <= len(digests()) <= 3, [m.text for m in digests()]
