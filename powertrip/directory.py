"""Who is who: unix/cloud user names to Slack users, which accounts are bots or shared, and who
is on the security team (user ids, or a Slack user group)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

from powertrip.config import PowertripConfig

if TYPE_CHECKING:
    from slack_sdk.web.async_client import AsyncWebClient

T = TypeVar("T")

# A found user rarely changes; a missing one may join Slack any minute.
FOUND_TTL_SECONDS = 3600.0
MISSING_TTL_SECONDS = 300.0
GROUP_TTL_SECONDS = 300.0


class Identity(StrEnum):
    MAPPED = "mapped"
    BOT = "bot"
    SHARED = "shared"
    UNMAPPED = "unmapped"


class DirectoryEntry(BaseModel):
    actor: str
    identity: Identity
    slack_user: str | None = None
    email: str | None = None


def _folded(names: dict[str, T]) -> dict[str, T]:
    """Case-folded names, leaving out any two that fold alike (`alice` and `Alice`): which one
    a folded actor means cannot be known, so neither is assumed."""
    counts = Counter(name.casefold() for name in names)
    return {name.casefold(): v for name, v in names.items() if counts[name.casefold()] == 1}


class Directory:
    """The config file's view: explicit ids, emails to resolve, bots and shared accounts.

    Unix user names are case-sensitive: `ALICE` is another account than `alice`, so names
    compare exactly. A source whose systems treat names case-insensitively (Windows/AD, some
    cloud consoles) sets `sources.<name>.case_insensitive_users: true` to fold case for its
    events only.
    """

    def __init__(self, config: PowertripConfig) -> None:
        self._config = config
        self._bots = set(config.bots)
        self._users = dict(config.users)
        self._folded_bots = _folded(dict.fromkeys(config.bots, True))
        self._folded_users = _folded(config.users)

    def lookup(self, actor: str, source: str | None = None) -> DirectoryEntry:
        """The actor's entry; `source` decides whether case is folded (see the class)."""
        fold = source is not None and self._config.source_options(source).case_insensitive_users
        bots, users = (self._folded_bots, self._folded_users) if fold else (self._bots, self._users)
        key = actor.casefold() if fold else actor
        if key in bots:
            return DirectoryEntry(actor=actor, identity=Identity.BOT)
        entry = users.get(key)
        if entry is None:
            return DirectoryEntry(actor=actor, identity=Identity.UNMAPPED)
        if entry.shared:
            return DirectoryEntry(actor=actor, identity=Identity.SHARED)
        return DirectoryEntry(
            actor=actor, identity=Identity.MAPPED, slack_user=entry.slack, email=entry.email
        )


class _Cached:
    """A value with its expiry; a failed refresh keeps serving the old value."""

    def __init__(self) -> None:
        self._values: dict[str, tuple[float, object]] = {}

    async def get(
        self, key: str, fetch: Callable[[], Awaitable[T]], ttl: Callable[[T], float]
    ) -> T:
        now = time.monotonic()
        held = self._values.get(key)
        if held is not None and now < held[0]:
            return held[1]  # type: ignore[return-value]
        try:
            value = await fetch()
        except Exception:
            if held is not None:
                return held[1]  # type: ignore[return-value]
            raise
        self._values[key] = (now + ttl(value), value)
        return value


class SlackDirectory:
    """The Slack side of the directory, cached per worker process and refreshed on expiry.

    Raises `SlackApiError` for Slack failures other than "no such user"; the activities classify
    them (retry or fail fast).
    """

    def __init__(self, client: AsyncWebClient, config: PowertripConfig) -> None:
        self.client = client
        self.config = config
        self._emails = _Cached()
        self._groups = _Cached()
        self._names = _Cached()

    async def _slack_user(self, lookup: Callable[[], Awaitable[Any]]) -> dict[str, Any] | None:
        """The `user` object of a users.* answer; None when Slack has no such user."""
        from slack_sdk.errors import SlackApiError

        try:
            response = await lookup()
        except SlackApiError as exc:
            # Slack's docs spell it both ways.
            if exc.response.get("error") in ("users_not_found", "user_not_found"):
                return None
            raise
        user: dict[str, Any] = response["user"]
        return user

    async def user_by_email(self, email: str) -> str | None:
        async def fetch() -> str | None:
            user = await self._slack_user(lambda: self.client.users_lookupByEmail(email=email))
            return str(user["id"]) if user else None

        return await self._emails.get(
            email.lower(), fetch, lambda found: FOUND_TTL_SECONDS if found else MISSING_TTL_SECONDS
        )

    async def user_name(self, user: str) -> str | None:
        """The Slack user name of `user` (users.info), for plain-text output such as the CLI's;
        None if Slack has no such user."""

        async def fetch() -> str | None:
            found = await self._slack_user(lambda: self.client.users_info(user=user))
            if found is None:
                return None
            return str(found.get("name") or "") or None

        return await self._names.get(
            user, fetch, lambda found: FOUND_TTL_SECONDS if found else MISSING_TTL_SECONDS
        )

    async def slack_user_of(self, entry: DirectoryEntry) -> str | None:
        """The Slack user a mapped entry names: its `slack:` id, or its `email:` through
        users.lookupByEmail (cached); None for a bot, shared or unmapped account, or an email
        Slack has no user for. The one place an actor becomes a Slack user."""
        if entry.identity is not Identity.MAPPED:
            return None
        if entry.slack_user:
            return entry.slack_user
        return await self.user_by_email(entry.email) if entry.email else None

    async def is_security_team(self, user: str) -> bool:
        """Whether `user` is on the security team: a configured id (no Slack call), or a member
        of the configured user group (`security_team`, cached)."""
        if user in self.config.security_team:
            return True
        if not self.config.security_team_group:
            return False
        return user in await self.security_team()

    async def security_team(self) -> list[str]:
        """The configured ids plus the members of the configured user group, if any."""
        team = list(self.config.security_team)
        group = self.config.security_team_group
        if group:

            async def fetch() -> list[str]:
                response = await self.client.usergroups_users_list(usergroup=group)
                return [str(u) for u in response.get("users") or []]

            members = await self._groups.get(group, fetch, lambda _: GROUP_TTL_SECONDS)
            team += [m for m in members if m not in team]
        return team
