"""Which sources have a log search API (`LogSearch`) here, and how each is opened from the
settings: the registry above the interface and its implementations (polling, API backfill).

A new pollable source: implement `LogSearch` in its own module, add its name to `POLLABLE` and a
branch to `open_search`.
"""

from __future__ import annotations

from powertrip.settings import Settings
from powertrip.sources.log_search import LogSearch, SearchError, SearchScope

POLLABLE = ("papertrail", "cloudwatch")


def scope_problem(source: str, scope: SearchScope) -> str | None:
    """Why `scope` cannot be searched on `source`, or None."""
    if source not in POLLABLE:
        return f"{source} has no log search API here (only {', '.join(POLLABLE)})"
    if source == "cloudwatch" and not scope.log_group:
        return "CloudWatch needs a log group (`sources.cloudwatch.poll.log_group`, --log-group)"
    return None


def open_search(source: str, settings: Settings, scope: SearchScope) -> LogSearch:
    """The search for `source` from the settings; `SearchError` (not retryable) when it is not
    configured."""
    problem = scope_problem(source, scope)
    if problem:
        raise SearchError(problem, retryable=False)
    if source == "cloudwatch":
        # Imported here: boto3 is heavy and only polling and backfill need it.
        from powertrip.sources.cloudwatch_api import CloudWatchSearch

        return CloudWatchSearch(
            scope,
            endpoint_url=settings.aws_endpoint_url,
            cloudtrail=scope.log_group in settings.cloudtrail_log_groups,
        )
    from powertrip.sources.papertrail_api import PapertrailSearch

    token = settings.papertrail_api_token
    if token is None:
        raise SearchError(
            "POWERTRIP_PAPERTRAIL_API_TOKEN is not set: cannot read Papertrail", retryable=False
        )
    return PapertrailSearch(token.get_secret_value(), settings.papertrail_api_url, scope=scope)
