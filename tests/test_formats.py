"""The format conformance corpus (tests/formats): every file is one dialect or shipper, and the
`<name>.expected.json` beside it says what each record in it must become. Each file is read the
three ways a user sends it: `powertrip rules test`, `powertrip backfill`'s reader, and the
webhook its sender posts to (on the real API and dev server). Adding a dialect is adding a file.

`backfill_format` in the expectations names the `--format` a backfill of the file needs. An
expectation is `null` (no rule recognises it: reviewed), `{"non_event": "<rule id>"}` (a
known non-event), `{"invalid": "<part of the reason>"}`, or the event: any of `rule`, `actor`,
`host`, `action`, `address`, `port`, `kind`, `id` (the event id, the same on every route) and
`time` (UTC ISO 8601; `--MM-DDT...` for a stamp that has no year).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from powertrip.cli import app
from powertrip.config import available_rule_packs, config_from_mapping
from powertrip.models import SecurityEvent
from powertrip.rules import RuleSet
from powertrip.sources.cloudtrail import actor_of, cloudtrail_records
from powertrip.sources.files import InputFormat, open_input, records
from powertrip.sources.generic import iter_json_values
from powertrip.sources.syslog import ANNOTATION
from powertrip.sources.wazuh import parse_wazuh
from tests.harness import WEBHOOK_HEADERS, api_client, fresh_namespace, settings_with_config

FORMATS = Path(__file__).parent / "formats"
SUFFIXES = (".log", ".ndjson", ".json", ".export", ".sse")
CASES = sorted(p for p in FORMATS.iterdir() if p.suffix in SUFFIXES)
CASES = [p for p in CASES if not p.name.endswith(".expected.json")]
PACKS = available_rule_packs()


@dataclass(frozen=True)
class Outcome:
    """What became of one record on one route."""

    event: dict[str, Any] | None = None
    non_event: str | None = None
    invalid: str | None = None

    @classmethod
    def of(cls, event: SecurityEvent) -> Outcome:
        return cls(event=facts(event.model_dump(mode="json")))


def facts(event: dict[str, Any]) -> dict[str, Any]:
    when = datetime.fromisoformat(str(event["occurred_at"]).replace("Z", "+00:00"))
    return {
        "id": event["event_id"],
        "rule": event["rule_id"],
        "actor": event["actor"],
        "host": event.get("host"),
        "action": event["action"],
        "address": event.get("address"),
        "port": event.get("port"),
        "kind": event.get("kind"),
        "time": when.astimezone(UTC).isoformat().replace("+00:00", "Z"),
    }


def expected(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.with_name(f"{path.stem}.expected.json").read_text())
    return data


def check(path: Path, route: str, outcomes: list[Outcome]) -> None:
    wanted = expected(path)["records"]
    assert len(outcomes) == len(wanted), f"{path.name} via {route}: {outcomes}"
    for number, (want, got) in enumerate(zip(wanted, outcomes, strict=True), start=1):
        where = f"{path.name} record {number} via {route}"
        if want is None:
            assert got == Outcome(), f"{where}: expected no rule to match, got {got}"
        elif "non_event" in want:
            assert got.non_event == want["non_event"], f"{where}: {got}"
        elif "invalid" in want:
            assert got.invalid is not None and want["invalid"] in got.invalid, f"{where}: {got}"
        else:
            assert got.event is not None, f"{where}: no event ({got})"
            for key, value in want.items():
                actual = got.event[key]
                if key == "time" and value.startswith("--"):
                    actual = actual[4:]  # without the year a stamp without one was given
                    value = value[1:]
                assert actual == value, f"{where}: {key} is {actual!r}, not {value!r}"


@pytest.fixture(scope="module")
def rules() -> RuleSet:
    return config_from_mapping({"rule_packs": PACKS}, Path.cwd(), "formats").rule_set()


def via_rules_test(path: Path) -> list[Outcome]:
    args = ["rules", "test", "--json", str(path)]
    for pack in PACKS:
        args += ["--pack", pack]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    outcomes = []
    for line in result.stdout.splitlines():  # stderr names the packs tried
        answer = json.loads(line)
        if answer["event"]:
            outcomes.append(Outcome(event=facts(answer["event"])))
        elif answer["non_event"]:
            outcomes.append(Outcome(non_event=answer["rule"]))
        elif answer["error"]:
            outcomes.append(Outcome(invalid=answer["error"]))
        else:
            outcomes.append(Outcome())
    return outcomes


def via_backfill(path: Path, rules: RuleSet, fmt: InputFormat = InputFormat.AUTO) -> list[Outcome]:
    with open_input(path) as stream:
        lines = [line.decode() for line in stream]
    outcomes = []
    for located in records(lines, fmt, source="backfill"):
        raw = located.item.raw
        if raw is None:
            outcomes.append(Outcome(invalid=located.item.error))
        elif event := rules.recognise(raw):
            outcomes.append(Outcome.of(event))
        elif known := rules.non_event(raw):
            outcomes.append(Outcome(non_event=known.id))
        else:
            outcomes.append(Outcome())
    return outcomes


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.name)
def test_every_record_through_rules_test_and_backfill(path: Path, rules: RuleSet) -> None:
    check(path, "powertrip rules test", via_rules_test(path))
    # `backfill_format`: the `--format` a backfill of the file needs (saved EventBridge
    # deliveries are CloudTrail's only when the operator says so).
    fmt = InputFormat(expected(path).get("backfill_format", "auto"))
    check(path, "powertrip backfill", via_backfill(path, rules, fmt))


def test_a_gzipped_cloudtrail_delivery_file_is_read_as_it_is(
    tmp_path: Path, rules: RuleSet
) -> None:
    # CloudTrail writes its delivery files to S3 gzipped.
    plain = FORMATS / "cloudtrail-delivery.json"
    zipped = tmp_path / "123456789012_CloudTrail_us-east-1_20140718T1510Z_abc.json.gz"
    zipped.write_bytes(gzip.compress(plain.read_bytes()))
    zipped.with_name(f"{zipped.stem}.expected.json").write_text(
        plain.with_name("cloudtrail-delivery.expected.json").read_text()
    )
    check(zipped, "powertrip backfill (gzip)", via_backfill(zipped, rules))


# The webhooks ------------------------------------------------------------------------------


@pytest.fixture
async def namespace(dev_env: WorkflowEnvironment) -> Client:
    """Each file in its own namespace: the same login written in two dialects (two files) is
    one event by its natural identity, which would hide the second file's own reading."""
    return await fresh_namespace(dev_env)


@pytest.fixture
async def http(
    dev_env: WorkflowEnvironment, namespace: Client, slack_api_url: str, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    config = json.dumps({"rule_packs": PACKS})
    settings = settings_with_config(
        dev_env, slack_api_url, tmp_path, config, temporal_namespace=namespace.namespace
    )
    async with api_client(settings) as client:
        yield client


def requests_for(path: Path, how: str) -> list[tuple[str, dict[str, str], bytes]]:
    """(endpoint, headers, body) for each request the file's sender makes."""
    body = path.read_bytes()
    if how == "text":
        return [("/webhooks/json", {"Content-Type": "text/plain"}, body)]
    if how == "ndjson":
        return [("/webhooks/json", {"Content-Type": "application/x-ndjson"}, body)]
    if how == "json":  # one document a request: a Loki push, an OTLP export
        return [("/webhooks/json", {"Content-Type": "application/json"}, body)]
    if how == "export":  # `journalctl -o export | curl --data-binary @- ...`
        return [("/webhooks/json", {"Content-Type": "application/vnd.fdo.journal"}, body)]
    if how == "wazuh":  # a custom integration posts one alert a request
        lines = [line for line in body.splitlines() if line.strip()]
        return [("/webhooks/wazuh", {"Content-Type": "application/json"}, line) for line in lines]
    assert how == "eventbridge"
    events = []
    for read in iter_json_values(body.decode()):
        assert read.error is None
        value = read.value
        if "detail-type" in value:
            events.append(value)
            continue
        for record, problem in cloudtrail_records(value):
            assert problem is None
            events.append(
                {"detail-type": "AWS API Call via CloudTrail", "source": "aws", "detail": record}
            )
    return [
        ("/webhooks/eventbridge", {"Content-Type": "application/json"}, json.dumps(events).encode())
    ]


async def via_webhook(
    http: httpx.AsyncClient, client: Client, path: Path, how: str
) -> list[Outcome]:
    outcomes = []
    for endpoint, headers, body in requests_for(path, how):
        response = await http.post(endpoint, content=body, headers={**WEBHOOK_HEADERS, **headers})
        assert response.status_code == 202, response.text
        for result in response.json()["results"]:
            status = result["status"]
            if status in ("started", "duplicate"):
                description = await client.get_workflow_handle(result["event_id"]).describe()
                memo = await description.memo_value("record")
                outcomes.append(Outcome(event=facts(memo["event"])))
            elif status == "non_event" and result["rule_id"] is None:
                # A saved header or marker (`-- Boot <id> --`): answered, and no record.
                assert result["reason"] == ANNOTATION, result
            elif status == "non_event":
                outcomes.append(Outcome(non_event=result["rule_id"]))
            elif status == "invalid":
                outcomes.append(Outcome(invalid=result["reason"]))
            else:
                assert status == "unmatched", result
                outcomes.append(Outcome())
    return outcomes


WEBHOOK_CASES = [p for p in CASES if expected(p)["webhook"]]


@pytest.mark.parametrize("path", WEBHOOK_CASES, ids=lambda p: p.name)
async def test_every_record_through_its_webhook(
    path: Path, http: httpx.AsyncClient, namespace: Client
) -> None:
    how = expected(path)["webhook"]
    check(path, f"webhook ({how})", await via_webhook(http, namespace, path, how))


def test_wazuh_alerts_wrapped_by_its_shuffle_integration_are_read(rules: RuleSet) -> None:
    # Wazuh's built-in Shuffle integration posts {"all_fields": <alert>, ...}.
    alert = json.loads((FORMATS / "wazuh-alerts.ndjson").read_text().splitlines()[0])
    [item] = parse_wazuh({"severity": 1, "title": "sshd", "all_fields": alert})
    assert item.raw is not None
    event = rules.recognise(item.raw)
    assert event is not None and (event.event_id, event.actor) == (
        "wazuh-1732669324.1045733",
        "alice",
    )


def test_every_identity_type_names_its_person() -> None:
    # The documented order, beyond what the corpus' records show.
    center = {"type": "IdentityCenterUser", "onBehalfOf": {"userId": "906725b4-12a3"}}
    assert actor_of({"userIdentity": center}) == ("906725b4-12a3", "userIdentity.onBehalfOf.userId")
    chained = {
        "type": "AssumedRole",
        "arn": "arn:aws:sts::1:assumed-role/Ops/ci-42",
        "sessionContext": {"sourceIdentity": "alice"},
    }
    assert actor_of({"userIdentity": chained}) == (
        "alice",
        "userIdentity.sessionContext.sourceIdentity",
    )
    opaque = {"type": "AWSAccount", "principalId": "AIDAOPAQUE", "accountId": "2"}
    assert actor_of({"userIdentity": opaque}) == ("AIDAOPAQUE", "userIdentity.principalId")
    assert actor_of({}) == (None, None)
