"""Who is who: unix/cloud user names to Slack users, and which accounts are bots or shared."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel

from powertrip.config import PowertripConfig


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


class Directory:
    def __init__(self, config: PowertripConfig) -> None:
        self._config = config
        self._bots = {name.lower() for name in config.bots}
        self._users = {name.lower(): entry for name, entry in config.users.items()}

    def lookup(self, actor: str) -> DirectoryEntry:
        key = actor.lower()
        if key in self._bots:
            return DirectoryEntry(actor=actor, identity=Identity.BOT)
        entry = self._users.get(key)
        if entry is None:
            return DirectoryEntry(actor=actor, identity=Identity.UNMAPPED)
        if entry.shared:
            return DirectoryEntry(actor=actor, identity=Identity.SHARED)
        return DirectoryEntry(
            actor=actor, identity=Identity.MAPPED, slack_user=entry.slack, email=entry.email
        )

    def is_security_team(self, slack_user: str) -> bool:
        return slack_user in self._config.security_team
