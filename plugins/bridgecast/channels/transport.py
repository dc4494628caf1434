"""The HTTP transport under the web channels (fanpage, portal): one Session, the credential in a header, a timeout
on every call, file bodies streamed from disk, redirects never followed, and ONE retry policy for calls that are
safe to repeat.

A channel keeps what is its own: its URLs, the mapping of answers onto the typed errors of `base.py` and the words
of its messages. The transport only reports what happened on the wire (no answer, unreachable, unusable URL).
"""
from __future__ import annotations

import base64
import io
import logging
import os
import random
import secrets
import time
from typing import Callable, Iterator, TypeVar
from urllib.parse import urlsplit

import requests
import tenacity
from requests.auth import AuthBase

from bridgecast.channels.base import ChannelError, RateLimited, Transient

log = logging.getLogger(__name__)

T = TypeVar("T")
Timeouts = tuple[float, float]  # (connect, read) seconds


# --- credentials --------------------------------------------------------------------------------------------------
class HeaderAuth(AuthBase):
    """Sets a prepared `Authorization` header: the credential travels in a header (never in a URL that logs and
    errors print) and no repr shows it."""

    __slots__ = ("_header", "_label")

    def __init__(self, header: str, label: str):
        self._header = header
        self._label = label

    @classmethod
    def token(cls, scheme: str, token: str, label: str = "access token") -> "HeaderAuth":
        return cls(f"{scheme} {token}", label)

    @classmethod
    def basic(cls, user: str, password: str, label: str = "password") -> "HeaderAuth":
        encoded = base64.b64encode(f"{user}:{password}".encode("utf-8")).decode("ascii")
        return cls(f"Basic {encoded}", label)

    def __call__(self, request):
        request.headers["Authorization"] = self._header
        return request

    def __repr__(self) -> str:
        return f"<{self._label}: hidden>"


# --- streamed multipart body --------------------------------------------------------------------------------------
class MultipartFile:
    """A multipart/form-data body: form fields plus one file part read from disk (`length` bytes from `offset`,
    the whole file by default) 1 MiB at a time. The length is announced up front (Content-Length, not chunked:
    PHP and Graph need it); requests' own `files=` would build the whole body in memory, and a recap is gigabytes.
    Use it as a context manager: it holds the file open."""

    block = 1024 * 1024

    def __init__(self, path: str, *, file_field: str, filename: str, content_type: str = "application/octet-stream",
                 fields: dict[str, str] | None = None, offset: int = 0, length: int | None = None):
        boundary = "bridgecast-" + secrets.token_hex(16)
        self.content_type = f"multipart/form-data; boundary={boundary}"
        head = "".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
                       for name, value in (fields or {}).items())
        head += (f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; filename="{filename}"\r\n'
                 f"Content-Type: {content_type}\r\n\r\n")
        self._head = io.BytesIO(head.encode("utf-8"))
        self._tail = io.BytesIO(f"\r\n--{boundary}--\r\n".encode())
        self._file = open(path, "rb")
        self._file.seek(offset)
        self._left = length if length is not None else max(0, _size(self._file) - offset)
        self._length = len(self._head.getvalue()) + self._left + len(self._tail.getvalue())

    def __len__(self) -> int:
        return self._length

    def read(self, size: int = -1) -> bytes:
        size = self.block if size is None or size < 0 else size
        chunk = self._head.read(size)
        if chunk:
            return chunk
        if self._left > 0:
            chunk = self._file.read(min(size, self._left))
            if not chunk:
                raise OSError(f"{self._file.name} is shorter than announced: was it changed during the upload?")
            self._left -= len(chunk)
            return chunk
        return self._tail.read(size)

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read(self.block):
            yield chunk

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "MultipartFile":
        return self

    def __exit__(self, *_exc) -> None:
        self.close()


def _size(fh) -> int:
    return os.fstat(fh.fileno()).st_size


# --- the retry policy ---------------------------------------------------------------------------------------------
class RetryPolicy:
    """The one retry policy, for calls that are safe to repeat (reads; setting a status; resending a chunk whose
    offset the server tracks). It retries what the typed error calls retryable (`Transient`, `RateLimited`):
    waits double from `first_wait_s` with up to 25 % jitter, a rate limit waits what the platform asked for, and
    a wait longer than `max_wait_s` is not sat out here — the error goes up and the task's own retry takes it."""

    def __init__(self, *, attempts: int = 4, first_wait_s: float = 1.0, max_wait_s: float = 30.0,
                 sleep: Callable[[float], None] = time.sleep):
        self.attempts = max(1, attempts)
        self.first_wait_s = first_wait_s
        self.max_wait_s = max_wait_s
        self.sleep = sleep

    def __repr__(self) -> str:
        return (f"RetryPolicy(attempts={self.attempts}, first_wait_s={self.first_wait_s}, "
                f"max_wait_s={self.max_wait_s})")

    def wait_s(self, error: BaseException | None, attempt: int) -> float:
        """Seconds before attempt `attempt + 1`, after `error` ended attempt `attempt`."""
        if isinstance(error, RateLimited):
            return error.retry_after_s
        return self.first_wait_s * 2 ** (attempt - 1) * (1 + random.random() / 4)

    def run(self, call: Callable[[], T], what: str) -> T:
        def wait(state: tenacity.RetryCallState) -> float:
            return self.wait_s(state.outcome.exception(), state.attempt_number)

        def too_long(state: tenacity.RetryCallState) -> bool:
            return state.upcoming_sleep > self.max_wait_s

        def announce(state: tenacity.RetryCallState) -> None:
            error = state.outcome.exception()
            log.warning("%s failed (%s); retry %d/%d in %.1f s", what, type(error).__name__, state.attempt_number,
                        self.attempts - 1, state.upcoming_sleep)

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(lambda exc: isinstance(exc, ChannelError) and exc.retryable),
            wait=wait, stop=tenacity.stop_after_attempt(self.attempts) | too_long, before_sleep=announce,
            sleep=self.sleep, reraise=True)
        return retrying(call)


# --- the transport ------------------------------------------------------------------------------------------------
def checked_base_url(url: str, *, service: str, conn_id: str) -> str:
    """`url` without a trailing slash, if it can be called at all; a ValueError naming the Connection otherwise
    (raised when the channel is built, so a broken host fails that channel alone and before any call)."""
    if "@" in url.split("?", 1)[0]:  # checked first, and never echoed: it would show the password
        raise ValueError(f"the {service} address must not carry credentials: put them in the login/password of "
                         f"Airflow Connection '{conn_id}'")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"the {service} address {url!r} is not an http(s) URL with a host (and a numeric port): "
                         f"fix the host of Airflow Connection '{conn_id}', e.g. https://example.org")
    return url.rstrip("/")


class HttpTransport:
    """What every web channel does on the wire. `send` makes one call and never repeats it; `repeat` runs a call
    under the retry policy — for calls that are safe to repeat only: a write that timed out may have happened,
    and the ledger, not a blind retry, finds out."""

    def __init__(self, auth: AuthBase, *, service: str, channel: str, conn_id: str,
                 timeout: Timeouts = (5.0, 30.0), upload_timeout: Timeouts = (5.0, 300.0),
                 read_attempts: int = 4, first_wait_s: float = 1.0, max_retry_wait_s: float = 30.0,
                 sleep: Callable[[float], None] = time.sleep, headers: dict[str, str] | None = None,
                 session: requests.Session | None = None):
        self.service, self.channel, self.conn_id = service, channel, conn_id
        self.timeout, self.upload_timeout = timeout, upload_timeout
        self.retry = RetryPolicy(attempts=read_attempts, first_wait_s=first_wait_s, max_wait_s=max_retry_wait_s,
                                 sleep=sleep)
        self.session = session or requests.Session()
        self.session.auth = auth
        self.session.headers.update({"User-Agent": f"bridgecast-{channel}/1", **(headers or {})})

    def __repr__(self) -> str:
        return f"HttpTransport({self.service!r}, conn_id={self.conn_id!r}, {self.retry!r})"

    def send(self, method: str, url: str, what: str, *, upload: bool = False, timeout: Timeouts | None = None,
             **kw) -> requests.Response:
        """One call. No answer, no connection or an unusable URL become typed errors; any HTTP answer (error
        statuses included) is returned for the channel to read."""
        timeout = timeout or (self.upload_timeout if upload else self.timeout)
        unknown = "" if method == "GET" else f" Whether {self.service} acted on it is unknown: the ledger reconciles."
        try:
            return self.session.request(method, url, timeout=timeout, allow_redirects=False, **kw)
        except requests.Timeout as exc:
            raise _unanswered(Transient(self.channel, f"No answer from {self.service} to {what} within "
                                                      f"{timeout[1]:g} s.{unknown}", code="timeout")) from exc
        except requests.ConnectionError as exc:
            raise _unanswered(Transient(self.channel, f"Could not reach {self.service} at {_origin(url)} for "
                                                      f"{what} ({type(exc).__name__}): check the network and the "
                                                      f"host of Airflow Connection '{self.conn_id}'.{unknown}",
                                        code="connection")) from exc
        except requests.exceptions.ChunkedEncodingError as exc:
            raise _unanswered(Transient(self.channel, f"The answer of {self.service} to {what} was cut off."
                                                      f"{unknown}", code="connection")) from exc
        except requests.RequestException as exc:  # InvalidURL, InvalidHeader…: nothing was sent
            raise ChannelError(self.channel, f"{what} cannot be sent to {self.service} ({type(exc).__name__}): "
                                             f"check the host of Airflow Connection '{self.conn_id}'.",
                               code="request") from exc

    def repeat(self, call: Callable[[], T], what: str) -> T:
        """`call` (which sends and reads the answer) under the retry policy."""
        return self.retry.run(call, what)


def _unanswered(error: ChannelError) -> ChannelError:
    """Marks a request that may have reached the service without an answer coming back (the ledger then waits out
    the service's window before it would create the item again)."""
    error.unanswered = True
    return error


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
