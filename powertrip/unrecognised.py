"""Nothing silently dropped: a record no rule understands, or that cannot be read at all, is
counted per source and (unless its source says `ignore_unmatched`, for unmatched records) sent to
the security channel for review, once per distinct message shape per hour, not once per line.

The hour bucket and the shape form the review workflow's id (`contracts.reviews.review_id`);
started with REJECT_DUPLICATE (`services.starts.request_review`), the second line of the same
shape in the same hour is a duplicate start, which is the throttle.

Reviews are also paced per source: the review workflow hands its request to the source's
`ReviewPacerWorkflow` for that hour, which posts the first `ReviewPacing.before_digest` shapes on
their own and lists every later one in a digest, at most one every `digest_every_seconds`. So
300 records of 300 shapes in one request are a few posts and one digest, not 300 posts.
"""

from __future__ import annotations

import json
import re
from typing import Any

from powertrip.models import RawEvent
from powertrip.sources.cloudtrail import ID_NAMESPACE as CLOUDTRAIL_NAMESPACE
from powertrip.sources.cloudtrail import is_cloudtrail_record, outcome_of

SAMPLE_CHARS = 2000
# A review's sample keeps a record's fields whole up to this much JSON, and at most this many
# of their keys beyond it (`review_sample`).
SAMPLE_FIELDS_CHARS = 16_000
SAMPLE_KEYS = 50
_NAME = r"[^\s;,()\"':][^\s;,():]*"
# A user name is part of what varies, not of the shape: `Failed password for invalid user <name>`
# from a brute-force run is one shape, not one per guessed name, and a review shows no names it
# need not. Where each auth program puts names:
_USER = [
    # The word after `user`, `for` or `by`, any case (login's `FOR admin`), skipping sshd's
    # `invalid`/`illegal`/`authenticating`; never sudo's `user NOT in sudoers`.
    (
        re.compile(
            r"\b(?P<lead>(?i:for|by|user)(?: (?:invalid|illegal|authenticating|unknown))?"
            rf"(?: user)?) (?!NOT\b)(?P<name>{_NAME})"
        ),
        r"\g<lead> <user>",
    ),
    (re.compile(r"\b(?P<key>(?:r|)user|USER|logname|acct|account)=[^\s;,\]]*"), r"\g<key>=<user>"),
    # sudo: `alice : TTY=...`, `mallory : user NOT in sudoers ; ...`.
    (re.compile(rf"^(?P<pad>\s*){_NAME} : "), r"\g<pad><user> : "),
    # pkexec: `alice: Executing command ...`, `mallory: Error executing command ...`.
    (re.compile(rf"^{_NAME}(?=: (?:Error executing|Executing) command)"), "<user>"),
    # util-linux su: `(to root) alice on pts/0`, `FAILED SU (to root) mallory on ...`.
    (re.compile(rf"\(to {_NAME}\) {_NAME}(?= on )"), "(to <user>) <user>"),
    # BSD and macOS su: `BAD SU mallory to root on ...`, `alice to www on ...`; AIX `from alice
    # to root at ...`.
    (
        re.compile(rf"^(?P<lead>BAD SU (?:from )?|from )?{_NAME} to {_NAME}(?= on | at |$)"),
        r"\g<lead><user> to <user>",
    ),
    # shadow and BusyBox su: `+ pts/0 alice:root`, `- pts/0 mallory:root`.
    (re.compile(r"^(?P<lead>[+-] \S+ )[^\s:]+:\S+$"), r"\g<lead><user>:<user>"),
    # Home directories and working directories name their user: `PWD=/home/mallory`.
    (re.compile(r"\b(?P<key>PWD|CWD|OLDPWD|HOME)=[^\s;\]]*"), r"\g<key>=<path>"),
    (re.compile(r"(?P<root>/(?:home|Users|usr/home|export/home))/[^/\s;,\]]+"), r"\g<root>/<user>"),
]
_VARIABLE = [
    (re.compile(r"\b[0-9a-fA-F]{1,4}(?::[0-9a-fA-F]{0,4}){2,7}\b"), "<addr>"),  # IPv6
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b"), "<addr>"),
    (re.compile(r"\"[^\"]*\"|'[^']*'"), "<str>"),
    # Anything with a digit: ids, ports, pids, times, keys. Only tried where a token starts:
    # from every position inside a long digit-free token `\S*` rescanned the rest (quadratic on
    # a hostile line, in the API's event loop); the matches are the same whole tokens.
    (re.compile(r"(?<!\S)\S*\d\S*"), "<n>"),
]


def mask(text: str) -> str:
    """`text` with its variable parts masked: user names, addresses, numbers, quoted values."""
    for pattern, replacement in (*_USER, *_VARIABLE):
        text = pattern.sub(replacement, text)
    return text


def message_shape(raw: RawEvent) -> str:
    """What lines of one kind share: program and message with user names, addresses, numbers and
    quoted values masked; a JSON record without a message by its sorted field names; a
    CloudTrail(-shaped) record by its service, call and failure code, never by who made it (a
    console password spray is one shape, not one per guessed name)."""
    if is_cloudtrail_record(raw.fields):
        return _cloudtrail_shape(raw.fields)
    if raw.id_namespace == CLOUDTRAIL_NAMESPACE:
        # Read from CloudTrail but not a whole record: its message names the principal, so its
        # shape is what was done.
        done = [raw.fields.get(key) for key in ("eventName", "errorCode")]
        text = " ".join(str(part) for part in done if part) or "-"
    elif raw.message.strip():
        text = mask(raw.message.strip())
    else:
        text = "{" + ",".join(sorted(raw.fields)) + "}"
    return f"{raw.program or '-'}: {text}"[:500]


def review_sample(raw: RawEvent) -> RawEvent:
    """`raw` as its review shows it and Temporal keeps it: the message, host and program at most
    `SAMPLE_CHARS` characters each; the fields whole while their JSON fits `SAMPLE_FIELDS_CHARS`,
    otherwise the first `SAMPLE_KEYS` keys, each value whose JSON is longer than `SAMPLE_CHARS`
    clipped to that much of its JSON text (ending in "…"). A record of any size matched a rule
    fine, but its review's input grew with it past Temporal's 2 MB and failed the batch."""
    clip: dict[str, Any] = {
        name: value[:SAMPLE_CHARS]
        for name in ("message", "host", "program")
        if isinstance(value := getattr(raw, name), str) and len(value) > SAMPLE_CHARS
    }
    if len(json.dumps(raw.fields, default=str)) > SAMPLE_FIELDS_CHARS:
        clip["fields"] = {
            key[:SAMPLE_CHARS]: _clipped(value)
            for key, value in list(raw.fields.items())[:SAMPLE_KEYS]
        }
    return raw.model_copy(update=clip) if clip else raw


def _clipped(value: Any) -> Any:
    text = json.dumps(value, default=str)
    return value if len(text) <= SAMPLE_CHARS else text[: SAMPLE_CHARS - 1] + "…"


def invalid_sample(source: str, reason: str, sample: str | None) -> RawEvent:
    """What the review of an invalid record shows: the record as received, clipped."""
    return RawEvent(source=source, provider_id="invalid", message=(sample or "")[:SAMPLE_CHARS])


def invalid_shape(reason: str) -> str:
    """Invalid records of one kind share their reason, with its variable parts masked (so `line
    3: not JSON` and `line 9: not JSON` are one review)."""
    return f"invalid: {mask(reason)}"[:500]


def _cloudtrail_shape(record: dict[str, Any]) -> str:
    outcome, _ = outcome_of(record)
    code = record.get("errorCode")
    failed = f" ({mask(str(code))})" if code not in (None, "") else " (failure)"
    text = f"{record.get('eventSource')}: {record.get('eventName')}"
    return f"{text}{failed if outcome == 'failure' else ''}"[:500]
