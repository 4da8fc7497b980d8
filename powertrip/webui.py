"""Links into the Temporal Web UI (its v2 routes): the one builder every message, API answer and
CLI line uses, so every event id, run id, namespace and query in a link is URL-escaped."""

from __future__ import annotations

from urllib.parse import quote, urlencode

from pydantic import BaseModel, Field

from powertrip import temporal as attributes
from powertrip.contracts.approval import EventRecord


class UiLinks(BaseModel):
    """Where to look in the Temporal Web UI."""

    workflow: str = Field(description="The event's workflow (latest run): status, summary, input.")
    history: str = Field(description="This run's event history: every Slack call and signal.")
    same_actor: str = Field(description="Workflow list: every event of this actor.")
    same_host: str | None = Field(description="Workflow list: every event on this host.")


class WebUi(BaseModel):
    """The Web UI at `base_url` (e.g. `http://localhost:8233`), for one namespace."""

    base_url: str
    namespace: str

    @classmethod
    def at(cls, base_url: str | None, namespace: str) -> WebUi | None:
        """The UI, or None when no URL is configured (messages then carry no link)."""
        return cls(base_url=base_url, namespace=namespace) if base_url else None

    def _ns(self) -> str:
        return f"{self.base_url.rstrip('/')}/namespaces/{quote(self.namespace, safe='')}"

    def list_url(self, query: str) -> str:
        """The workflow list filtered by a visibility `query`."""
        return f"{self._ns()}/workflows?{urlencode({'query': query})}"

    def workflow_url(self, workflow_id: str) -> str:
        """A workflow (its latest run), e.g. an event by its id."""
        return f"{self._ns()}/workflows/{quote(workflow_id, safe='')}"

    def links(self, record: EventRecord, run_id: str) -> UiLinks:
        """Everything an investigator opens about one event's run."""
        event = record.event
        workflow = self.workflow_url(event.event_id)
        actor = f'{attributes.ACTOR.name} = "{event.actor}"'
        host = f'{attributes.HOST.name} = "{event.host}"' if event.host else None
        return UiLinks(
            workflow=workflow,
            history=f"{workflow}/{quote(run_id, safe='')}/history",
            same_actor=self.list_url(actor),
            same_host=self.list_url(host) if host else None,
        )
