"""Reading webhook bodies: size-capped, form (`payload=<json>`) or JSON, with clear 4xx errors."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from fastapi import HTTPException, Request, status

from powertrip import jsontext
from powertrip.sources import json_text


async def read_capped(request: Request, limit: int) -> bytes:
    """The request body, at most `limit` bytes; a 413 beyond (declared or streamed)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"body over {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _json(text: str | bytes, what: str) -> Any:
    try:
        # Bytes that are no character cost the string holding them, not the batch its records.
        return jsontext.loads(json_text(text) if isinstance(text, bytes) else text)
    except jsontext.JsonError as exc:  # a number Python cannot hold is its record's, not here
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, f"{what} is not valid JSON: {exc}"
        ) from exc


def decode_payload(request: Request, body: bytes) -> Any:
    """JSON from either a JSON body or a form body's `payload` field."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    # `curl -d '{...}'` labels a JSON body as a form; a form body never starts with `{` or `[`.
    if content_type == "application/x-www-form-urlencoded" and body.lstrip()[:1] in (b"{", b"["):
        return _json(body, "the body")
    if content_type == "application/x-www-form-urlencoded":
        try:
            form = parse_qs(body.decode(), strict_parsing=bool(body))
        except (ValueError, UnicodeDecodeError) as exc:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, f"malformed form body: {exc}") from exc
        if "payload" not in form:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "form body has no `payload` field")
        if len(form["payload"]) > 1:
            # Which one a proxy or a log reader takes is not which one would be read here.
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST, "form body has more than one `payload` field"
            )
        return _json(form["payload"][0], "the `payload` field")
    if content_type in ("application/json", "application/x-ndjson", "text/plain", ""):
        if not body.strip():
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "empty body")
        return _json(body, "the body")
    raise HTTPException(
        status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
        f"unsupported content type {content_type!r}: send application/json or "
        "application/x-www-form-urlencoded with a `payload` field",
    )
