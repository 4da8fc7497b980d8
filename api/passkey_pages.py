"""HTML of the step-up and passkey registration pages, and what each refusal tells a person.

Everything shown comes from log lines or people (actor, host, labels): it is HTML-escaped, and
control and bidirectional characters are shown as visible `\\u…` escapes, so `\\u202eecila` never
displays as `alice`. The pages load one script and one stylesheet from this server (no CDN) and
are served with a CSP that allows nothing else.
"""

from __future__ import annotations

import html
import unicodedata
from dataclasses import dataclass
from datetime import datetime

from fastapi import status

from powertrip.contracts.passkeys import (
    EventSummary,
    LinkPurpose,
    LinkView,
    PasskeyToApprove,
    Refusal,
)

STATIC = "/passkeys/static"
# The pages run one same-origin script; the token in the URL must not leak through Referer.
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}
HOW_TO_REGISTER = (
    "To register one, type <code>/powertrip passkey</code> in Slack: Powertrip sends you a "
    "one-time registration link. Until then a security-team member can approve on your behalf."
)


@dataclass(frozen=True)
class Explanation:
    title: str
    text: str
    """HTML: fixed text only, never data."""
    http_status: int


EXPLANATIONS: dict[Refusal, Explanation] = {
    Refusal.LINK_UNKNOWN: Explanation(
        "This link is not valid",
        "It may be incomplete, or older than a day. Nothing was approved. Press "
        "<strong>Approve</strong> in Slack again for a new link.",
        status.HTTP_404_NOT_FOUND,
    ),
    Refusal.LINK_EXPIRED: Explanation(
        "This link has expired",
        "Links are valid for a few minutes only. Nothing was approved. Press "
        "<strong>Approve</strong> in Slack again for a new link.",
        status.HTTP_410_GONE,
    ),
    Refusal.LINK_USED: Explanation(
        "This link was already used",
        "Each link works once, and this one approves nothing now. If you did not use it "
        "yourself, tell the security team.",
        status.HTTP_410_GONE,
    ),
    Refusal.LINK_WRONG_PURPOSE: Explanation(
        "This link is for something else",
        "A registration link cannot approve, and an approval link cannot register a passkey.",
        status.HTTP_404_NOT_FOUND,
    ),
    Refusal.LINK_NOT_OPENED: Explanation(
        "Start from the page",
        "Open the link and press the button on the page. Nothing was approved.",
        status.HTTP_409_CONFLICT,
    ),
    Refusal.NO_PASSKEY: Explanation(
        "You have no passkey yet", HOW_TO_REGISTER, status.HTTP_409_CONFLICT
    ),
    Refusal.CREDENTIAL_NOT_REGISTERED: Explanation(
        "That passkey is not the one this link is for",
        "This link was sent to one person, and only their own passkeys can approve with it. "
        "Nothing was approved, and the link is used up.",
        status.HTTP_403_FORBIDDEN,
    ),
    Refusal.USER_VERIFICATION_MISSING: Explanation(
        "Your authenticator did not verify you",
        "Approving needs a passkey that checks it is you (fingerprint, face or PIN), not only "
        "that someone touched it. Nothing was approved; press <strong>Approve</strong> in "
        "Slack again and use such a passkey.",
        status.HTTP_403_FORBIDDEN,
    ),
    Refusal.INVALID_RESPONSE: Explanation(
        "The passkey's answer did not check out",
        "Nothing was approved, and the link is used up. Press <strong>Approve</strong> in "
        "Slack again for a new link.",
        status.HTTP_400_BAD_REQUEST,
    ),
    Refusal.SIGN_COUNT_REGRESSED: Explanation(
        "This passkey may have been copied",
        "Its use counter went backwards, which a copied (cloned) authenticator does. Nothing "
        "was approved, and this is reported to the security team.",
        status.HTTP_403_FORBIDDEN,
    ),
    Refusal.DUPLICATE_CREDENTIAL: Explanation(
        "This passkey is registered already",
        "Nothing changed. Use a different authenticator to add another passkey.",
        status.HTTP_409_CONFLICT,
    ),
    Refusal.TOO_MANY_CREDENTIALS: Explanation(
        "Too many passkeys",
        "Ask the security team to remove one, or to decide the ones waiting for approval.",
        status.HTTP_409_CONFLICT,
    ),
    Refusal.STORE_CLOSED: Explanation(
        "Your passkeys are locked",
        "Your passkey store was closed by an operator. Ask the security team.",
        status.HTTP_409_CONFLICT,
    ),
    Refusal.TEMPORARILY_UNAVAILABLE: Explanation(
        "Powertrip is busy",
        "Nothing was approved. Try again in a moment.",
        status.HTTP_503_SERVICE_UNAVAILABLE,
    ),
}


NEW_REGISTRATION_LINK = "Type <code>/powertrip passkey</code> in Slack for a new link."
# Where a registration link's problem needs other words than an approval link's.
REGISTRATION_EXPLANATIONS: dict[Refusal, Explanation] = {
    Refusal.LINK_UNKNOWN: Explanation(
        "This link is not valid",
        f"It may be incomplete, or older than a day. {NEW_REGISTRATION_LINK}",
        status.HTTP_404_NOT_FOUND,
    ),
    Refusal.LINK_EXPIRED: Explanation(
        "This link has expired",
        f"Registration links are valid for a few minutes only. {NEW_REGISTRATION_LINK}",
        status.HTTP_410_GONE,
    ),
    Refusal.USER_VERIFICATION_MISSING: Explanation(
        "Your authenticator did not verify you",
        "Powertrip needs a passkey that checks it is you (fingerprint, face or PIN), not only "
        f"that someone touched it. Nothing was registered. {NEW_REGISTRATION_LINK}",
        status.HTTP_403_FORBIDDEN,
    ),
    Refusal.INVALID_RESPONSE: Explanation(
        "The new passkey did not check out",
        f"Nothing was registered, and the link is used up. {NEW_REGISTRATION_LINK}",
        status.HTTP_400_BAD_REQUEST,
    ),
}


def explain(refusal: Refusal, purpose: LinkPurpose = LinkPurpose.STEP_UP) -> Explanation:
    """What to tell the person whose `purpose` link was refused for `refusal`."""
    if purpose is LinkPurpose.REGISTRATION and refusal in REGISTRATION_EXPLANATIONS:
        return REGISTRATION_EXPLANATIONS[refusal]
    return EXPLANATIONS.get(
        refusal,
        Explanation("Not done", "Nothing was approved.", status.HTTP_409_CONFLICT),
    )


def visible(text: str | None) -> str:
    """`text` safe inside HTML, with invisible and direction-changing characters made visible."""
    if text is None:
        return "—"
    shown = "".join(
        f"\\u{ord(ch):04x}" if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") else ch
        for ch in text
    )
    return html.escape(shown, quote=True)


def _when(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S %Z").strip()


def _page(title: str, body: str, *, state: str, ceremony: str | None = None) -> str:
    ceremony_attr = f' data-ceremony="{ceremony}"' if ceremony else ""
    script = f'<script src="{STATIC}/passkeys.js"></script>' if ceremony else ""
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{html.escape(title)} · Powertrip</title>
<link rel="stylesheet" href="{STATIC}/passkeys.css">
</head>
<body>
<main class="card" data-testid="page" data-state="{state}"{ceremony_attr}>
<p class="brand">Powertrip</p>
{body}
</main>
{script}
</body>
</html>
"""


def refusal_page(refusal: Refusal, purpose: LinkPurpose = LinkPurpose.STEP_UP) -> str:
    explanation = explain(refusal, purpose)
    body = (
        f'<h1 data-testid="title">{html.escape(explanation.title)}</h1>\n'
        f'<p data-testid="explanation" data-refusal="{refusal.value}">{explanation.text}</p>'
    )
    return _page(explanation.title, body, state="refused")


def _summary_rows(event: EventSummary) -> str:
    origin = event.address
    if origin and event.port is not None:
        origin = f"{origin} port {event.port}"
    actor = visible(event.actor)
    if not event.actor.isascii():
        actor += ' <span class="flag">non-ASCII name: check each letter</span>'
    rows = [
        ("Who", actor),
        ("Did", visible(event.action)),
        ("On", visible(event.host)),
        ("From", visible(origin)),
        ("When", visible(_when(event.occurred_at))),
        ("Rule", f"{visible(event.rule_title)} <code>{visible(event.rule_id)}</code>"),
        ("Event", f"<code>{visible(event.event_id)}</code>"),
    ]
    return "\n".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in rows)


def _passkey_rows(passkey: PasskeyToApprove) -> str:
    owner = visible(passkey.user_name or passkey.user)
    rows = [
        ("Whose", f"{owner} <code>{visible(passkey.user)}</code>"),
        ("Passkey", visible(passkey.credential.label)),
        ("Id", f"<code>{visible(passkey.credential.credential_id)}</code>"),
        ("Replaces", f"<code>{visible(passkey.replaces)}</code>" if passkey.replaces else "—"),
    ]
    return "\n".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in rows)


def step_up_page(view: LinkView) -> str:
    """The confirmation page of a usable step-up link: what is approved (an event, or another
    user's pending passkey on a security-team member's link), and one button."""
    if view.passkey is not None:
        return _passkey_approval_page(view, view.passkey)
    assert view.event is not None
    body = f"""<h1 data-testid="title">Was this you?</h1>
<p>Approving as <strong>{visible(view.user_name)}</strong>. Check every line: your passkey
confirms <em>this</em> action, and nothing else.</p>
<dl class="summary" data-testid="summary">
{_summary_rows(view.event)}
</dl>
<button id="go" type="button" data-testid="confirm">Yes, approve with my passkey</button>
<p id="status" class="status" data-testid="status" role="status" aria-live="polite"></p>
<p class="small">This link works once and expires at {visible(_when(view.expires_at))}.
Not you? Do not continue: press <strong>Not me</strong> in Slack.</p>"""
    return _page("Confirm approval", body, state="ready", ceremony="get")


def _passkey_approval_page(view: LinkView, passkey: PasskeyToApprove) -> str:
    body = f"""<h1 data-testid="title">Approve a new passkey?</h1>
<p>Approving as <strong>{visible(view.user_name)}</strong>, for the security team. Once approved
this passkey can approve everything its owner may: make sure they registered it themselves.</p>
<dl class="summary" data-testid="summary">
{_passkey_rows(passkey)}
</dl>
<button id="go" type="button" data-testid="confirm">Approve with my passkey</button>
<p id="status" class="status" data-testid="status" role="status" aria-live="polite"></p>
<p class="small">This link works once and expires at {visible(_when(view.expires_at))}.
Not sure? Do not continue: press <strong>Reject</strong> in Slack.</p>"""
    return _page("Approve a passkey", body, state="ready", ceremony="get")


def registration_page(view: LinkView) -> str:
    """The page of a usable registration link: a name for the passkey, and one button."""
    first = view.passkeys == 0
    rule = (
        "This is your first passkey: it works at once, and the security team is told."
        if first
        else "You have a passkey already: the new one works once a security-team member "
        "approves it."
    )
    replacing = "Register a passkey" if view.passkeys == 0 else "Add a passkey"
    body = f"""<h1 data-testid="title">{replacing}</h1>
<p>For <strong>{visible(view.user_name)}</strong>. Powertrip asks for it before approving
sensitive logins, so that a stolen laptop or Slack session cannot approve them.</p>
<p data-testid="rule">{rule}</p>
<label for="label">Name it (so you recognise it later)</label>
<input id="label" data-testid="label" maxlength="64" value="" placeholder="e.g. MacBook Touch ID">
<button id="go" type="button" data-testid="confirm">Create passkey</button>
<p id="status" class="status" data-testid="status" role="status" aria-live="polite"></p>
<p class="small">This link works once and expires at {visible(_when(view.expires_at))}.</p>"""
    return _page("Register a passkey", body, state="ready", ceremony="create")
