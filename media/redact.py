"""Secrets out of text the toolkit hands back (error messages, stderr tails, argv): stream URLs and URL credentials.

ffmpeg prints its input and output URLs when it fails, and an RTMP(S) output URL carries the stream key (Facebook:
`rtmps://live-api-s.facebook.com:443/rtmp/<key>`; a point: `rtmp://host/live/<point>?key=<key>`). This module only
knows URL *shapes*; the product's logging filter (`bridgecast.redact`) adds the secrets it knows by value.
"""
from __future__ import annotations

import re
from collections.abc import Iterable

REDACTED = "***"

# rtmp://host[:port]/app/<stream…>: the app is kept (it says which ingest), everything after it is the secret part.
_STREAM_URL = re.compile(r"(?i)\b(rtmpt?[es]?://[^/\s'\"]+/[^/\s'\"?]+/)[^\s'\"<>]+")
# A query value that names a credential: ?key=… &token=… &X-Amz-Signature=… (presigned S3 links carry two).
_SECRET_PARAM = re.compile(r"(?i)([?&;](?:key|stream_key|token|access_token|secret|password|passwd|sig|signature|"
                           r"x-amz-signature|x-amz-credential|x-amz-security-token|awsaccesskeyid)=)[^&\s'\"<>]+")
# scheme://user:password@host — the password part.
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^:/\s@'\"]*:)[^@/\s'\"]+@")
_BEARER = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]{8,}")

MIN_SECRET_LEN = 8  # shorter "secrets" (a login like "admin") would blank ordinary words


def redact_urls(text: str) -> str:
    """Mask the secret parts of stream URLs, credential query values, URL passwords and bearer tokens."""
    if not text:
        return text
    text = _STREAM_URL.sub(rf"\g<1>{REDACTED}", text)
    text = _SECRET_PARAM.sub(rf"\g<1>{REDACTED}", text)
    text = _USERINFO.sub(rf"\g<1>{REDACTED}@", text)
    return _BEARER.sub(rf"\g<1>{REDACTED}", text)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`redact_urls` plus every literal in `secrets` (longest first, so a secret containing another goes whole)."""
    if not text:
        return text
    for secret in sorted({s for s in secrets if s and len(s) >= MIN_SECRET_LEN}, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
    return redact_urls(text)


def url_secrets(url: str) -> list[str]:
    """The literals of `url` that are secret on their own: its stream part (after the app) and the pieces of it.

    A relay is given its output URL once; these must never appear in what it reports (the host and app may: they
    say where the relay was sending)."""
    out = []
    match = _STREAM_URL.search(url)
    if match:
        stream = url[match.end(1):]
        out.append(stream)
        out.extend(part for part in re.split(r"[?&/=]", stream) if len(part) >= MIN_SECRET_LEN)
    return out
