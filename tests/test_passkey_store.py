"""The per-user passkey store (`PasskeyWorkflow`) on the time-skipping server: links expire by the
workflow's clock (no sleeping), are used once even when posted concurrently, registrations
follow the enrollment rules, sign counts never go back, and the state survives continue-as-new.

Ceremonies with a real authenticator are in tests/test_step_up_browser.py; here the updates
carry credentials as the service would after py_webauthn verified them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from powertrip.contracts.passkeys import (
    AssertionRecorded,
    ClaimLink,
    LinkPurpose,
    OpenLink,
    PasskeyQuery,
    PasskeyRefused,
    PasskeyStore,
    PasskeyUpdate,
    RecordAssertion,
    Refusal,
    StepUpRefused,
    passkey_workflow_id,
)
from powertrip.services.stepup import (
    Link,
    begin_ceremony,
    complete_step_up,
    decide_registration,
    issue_registration_link,
    issue_step_up_link,
    link_view,
    passkeys_of,
    relying_party,
)
from powertrip.settings import Settings
from tests.harness import add_passkey, claim_passkey_link, make_event, passkey
from workflows.passkeys import PasskeyWorkflow

USER = "U0ALICE"


def _settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = dict(
        public_url="http://localhost:8443", task_queue=f"passkeys-{uuid.uuid4().hex[:8]}"
    )
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings() -> Settings:
    return _settings()


@pytest.fixture
async def store_worker(
    time_skipping_env: WorkflowEnvironment, settings: Settings
) -> AsyncIterator[Client]:
    client = time_skipping_env.client
    async with Worker(client, task_queue=settings.task_queue, workflows=[PasskeyWorkflow]):
        yield client


def _token(url: str) -> str:
    return url.rsplit("/", 1)[1]


def _handle(client: Client, user: str = USER) -> WorkflowHandle[Any, Any]:
    return client.get_workflow_handle(passkey_workflow_id(user))


async def test_first_passkey_is_active_and_announced_others_wait_for_the_security_team(
    store_worker: Client, settings: Settings
) -> None:
    client = store_worker
    first = await add_passkey(client, settings, passkey(1))
    assert first.status == "active" and first.first is True

    second = await add_passkey(client, settings, passkey(2))
    assert second.status == "pending_approval" and second.first is False
    store = await passkeys_of(client, USER)
    assert store is not None
    assert [c.credential_id for c in store.credentials] == ["cred-1"]
    assert [p.pending_id for p in store.pending] == ["cred-2"]

    # The owner cannot approve their own new passkey (their Slack session may be the thief's).
    with pytest.raises(PasskeyRefused) as refused:
        await decide_registration(
            client, user=USER, pending_id="cred-2", approver=USER, approve=True
        )
    assert refused.value.refusal is Refusal.SELF_APPROVAL

    enrollment = await decide_registration(
        client, user=USER, pending_id="cred-2", approver="U0SEC1", approve=True
    )
    assert enrollment.status == "active"
    store = await passkeys_of(client, USER)
    assert store is not None and not store.pending
    assert {c.credential_id: c.approved_by for c in store.credentials} == {
        "cred-1": None,
        "cred-2": "U0SEC1",
    }

    # A rejected one never becomes usable.
    await add_passkey(client, settings, passkey(3))
    rejected = await decide_registration(
        client, user=USER, pending_id="cred-3", approver="U0SEC1", approve=False
    )
    assert rejected.status == "rejected"
    store = await passkeys_of(client, USER)
    assert store is not None and "cred-3" not in {c.credential_id for c in store.credentials}


async def test_replacing_a_passkey_removes_the_old_one_only_once_approved(
    store_worker: Client, settings: Settings
) -> None:
    client = store_worker
    await add_passkey(client, settings, passkey(1))
    pending = await add_passkey(client, settings, passkey(9), replaces="cred-1")
    assert pending.status == "pending_approval" and pending.replaced == "cred-1"
    store = await passkeys_of(client, USER)
    assert store is not None and [c.credential_id for c in store.credentials] == ["cred-1"]

    done = await decide_registration(
        client, user=USER, pending_id="cred-9", approver="U0SEC1", approve=True
    )
    assert done.replaced == "cred-1"
    store = await passkeys_of(client, USER)
    assert store is not None and [c.credential_id for c in store.credentials] == ["cred-9"]


async def test_a_step_up_link_expires_by_the_workflow_clock(
    time_skipping_env: WorkflowEnvironment, store_worker: Client, settings: Settings
) -> None:
    client = store_worker
    await add_passkey(client, settings, passkey(1))
    event = make_event()
    issued = await issue_step_up_link(client, settings, user=USER, event=event)
    token = _token(issued.url)
    assert issued.url.startswith("http://localhost:8443/verify/U0ALICE.")
    view = await link_view(client, token)
    assert view.refusal is None and view.event is not None
    assert view.event.event_id == event.event_id and view.event.host == "bastion"

    await time_skipping_env.sleep(timedelta(seconds=settings.step_up_link_seconds + 1))

    assert (await link_view(client, token)).refusal is Refusal.LINK_EXPIRED
    rp = relying_party(settings)
    with pytest.raises(PasskeyRefused) as refused:
        await begin_ceremony(client, rp, token, LinkPurpose.STEP_UP)
    assert refused.value.refusal is Refusal.LINK_EXPIRED
    outcome = await complete_step_up(client, rp, token, {"id": "x"})
    assert isinstance(outcome, StepUpRefused)
    assert outcome.refusal is Refusal.LINK_EXPIRED
    assert outcome.event_id == event.event_id and outcome.user == USER
    assert "link_expired" in outcome.timeline_detail()


async def test_a_link_is_claimed_once_even_by_concurrent_posts(
    store_worker: Client, settings: Settings
) -> None:
    client = store_worker
    await add_passkey(client, settings, passkey(1))
    issued = await issue_step_up_link(client, settings, user=USER, event=make_event())
    link = Link.parse(_token(issued.url))
    handle = _handle(client)
    await handle.execute_update(
        PasskeyUpdate.OPEN_LINK,
        OpenLink(token_hash=link.token_hash, purpose=LinkPurpose.STEP_UP, challenge="c" * 43),
    )

    async def claim() -> str:
        try:
            await handle.execute_update(
                PasskeyUpdate.CLAIM_LINK,
                ClaimLink(token_hash=link.token_hash, purpose=LinkPurpose.STEP_UP),
            )
        except Exception as exc:
            return str(getattr(exc.__cause__, "type", exc))
        return "claimed"

    results = await asyncio.gather(*(claim() for _ in range(5)))
    assert sorted(results) == ["claimed"] + [Refusal.LINK_USED.value] * 4


async def test_a_user_without_a_passkey_is_told_so_and_a_wrong_purpose_link_does_nothing(
    store_worker: Client, settings: Settings
) -> None:
    client = store_worker
    issued = await issue_step_up_link(client, settings, user=USER, event=make_event())
    token = _token(issued.url)
    assert (await link_view(client, token)).passkeys == 0
    rp = relying_party(settings)
    with pytest.raises(PasskeyRefused) as refused:
        await begin_ceremony(client, rp, token, LinkPurpose.STEP_UP)
    assert refused.value.refusal is Refusal.NO_PASSKEY
    # A step-up link cannot register a passkey (and a registration link approves nothing).
    with pytest.raises(PasskeyRefused) as wrong:
        await begin_ceremony(client, rp, token, LinkPurpose.REGISTRATION)
    assert wrong.value.refusal is Refusal.LINK_WRONG_PURPOSE
    registration = _token((await issue_registration_link(client, settings, user=USER)).url)
    outcome = await complete_step_up(client, rp, registration, {"id": "x"})
    assert isinstance(outcome, StepUpRefused)
    assert outcome.refusal is Refusal.LINK_WRONG_PURPOSE


async def test_unknown_and_forged_links_are_refused(
    store_worker: Client, settings: Settings
) -> None:
    client = store_worker
    await add_passkey(client, settings, passkey(1))
    rp = relying_party(settings)
    for token in [
        "not-a-token",
        f"{USER}.{'A' * 43}",  # well formed, never issued
        f"U0NOBODY.{'A' * 43}",  # a user with no store at all
        "../../etc.passwd",
    ]:
        outcome = await complete_step_up(client, rp, token, {})
        assert isinstance(outcome, StepUpRefused), token
        assert outcome.refusal is Refusal.LINK_UNKNOWN, token


async def test_a_sign_count_that_goes_back_is_refused_and_kept_as_an_alert(
    store_worker: Client, settings: Settings
) -> None:
    client = store_worker
    await add_passkey(client, settings, passkey(1, sign_count=5))

    async def assert_with(count: int) -> AssertionRecorded:
        issued = await issue_step_up_link(client, settings, user=USER, event=make_event())
        token = _token(issued.url)
        await claim_passkey_link(client, token, LinkPurpose.STEP_UP)
        recorded: AssertionRecorded = await _handle(client).execute_update(
            PasskeyUpdate.RECORD_ASSERTION,
            RecordAssertion(
                token_hash=Link.parse(token).token_hash, credential_id="cred-1", sign_count=count
            ),
            result_type=AssertionRecorded,
        )
        return recorded

    assert (await assert_with(7)).refusal is None
    regressed = await assert_with(7)  # equal is not greater: a clone replaying the counter
    assert regressed.refusal is Refusal.SIGN_COUNT_REGRESSED
    assert (await assert_with(3)).refusal is Refusal.SIGN_COUNT_REGRESSED
    assert (await assert_with(8)).refusal is None
    store = await passkeys_of(client, USER)
    assert store is not None
    assert store.credentials[0].sign_count == 8
    assert [a.kind for a in store.alerts] == [Refusal.SIGN_COUNT_REGRESSED] * 2
    assert store.alerts[0].detail == "authenticator counter 7, last seen 7"


async def test_open_links_per_user_are_bounded(store_worker: Client, settings: Settings) -> None:
    client = store_worker
    event = make_event()
    for _ in range(20):
        await issue_step_up_link(client, settings, user=USER, event=event)
    with pytest.raises(PasskeyRefused) as refused:
        await issue_step_up_link(client, settings, user=USER, event=event)
    assert refused.value.refusal is Refusal.TOO_MANY_LINKS


async def test_state_and_open_links_survive_continue_as_new(
    store_worker: Client, settings: Settings
) -> None:
    client = store_worker
    # A store that continues as new after every 3 accepted updates.
    await client.start_workflow(
        "PasskeyWorkflow",
        PasskeyStore(user=USER, user_name="alice", user_handle="aGFuZGxl", updates_per_run=3),
        id=passkey_workflow_id(USER),
        task_queue=settings.task_queue,
    )
    first_run = (await _handle(client).describe()).run_id
    await add_passkey(client, settings, passkey(1))  # issue, open, claim, add: 4 updates
    issued = await issue_step_up_link(client, settings, user=USER, event=make_event())
    token = _token(issued.url)
    for _ in range(3):
        await issue_step_up_link(client, settings, user=USER, event=make_event())

    description = await _handle(client).describe()
    assert description.run_id != first_run
    view = await link_view(client, token)
    assert view.refusal is None and view.passkeys == 1
    store: PasskeyStore = await _handle(client).query(PasskeyQuery.STORE, result_type=PasskeyStore)
    assert [c.credential_id for c in store.credentials] == ["cred-1"]
    assert store.user_handle == "aGFuZGxl"
    claimed = await claim_passkey_link(client, token, LinkPurpose.STEP_UP)
    assert claimed.link.event is not None


async def test_the_passkey_list_is_read_without_a_worker(
    time_skipping_env: WorkflowEnvironment, settings: Settings
) -> None:
    client = time_skipping_env.client
    async with Worker(client, task_queue=settings.task_queue, workflows=[PasskeyWorkflow]):
        await add_passkey(client, settings, passkey(1))
    store = await passkeys_of(client, USER)
    assert store is not None and store.credentials[0].label == "laptop 1"
    assert store.links == []  # the memo never carries links
    assert await passkeys_of(client, "U0NOBODY") is None


async def test_a_closed_store_is_never_replaced_by_an_empty_one(
    store_worker: Client, settings: Settings
) -> None:
    client = store_worker
    await add_passkey(client, settings, passkey(1))
    await _handle(client).terminate("an operator's mistake")
    # A fresh, empty store would make the next passkey a "first" one that needs no approval.
    with pytest.raises(PasskeyRefused) as refused:
        await issue_registration_link(client, settings, user=USER)
    assert refused.value.refusal is Refusal.STORE_CLOSED
