"""The server side of HTTP/1.1 on one agent connection (h11 over asyncio streams).

Owns reading one request whole, within a size and a time limit, and writing one response,
its body streamed piece by piece as it is handed over. It never interprets a body.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import h11

MAX_HEADERS = 64 * 1024
"""Bytes of a request line and headers."""
MAX_BODY = 32 * 1024 * 1024
"""Bytes of a request body: the Messages API's own limit."""
READ_SIZE = 64 * 1024


class BadRequest(Exception):
    """Not HTTP/1.1 the gateway reads; the message is the sentence to answer with."""


class BodyTooLarge(BadRequest):
    pass


class ClientGone(Exception):
    """The client closed its connection (or reset it) mid-exchange."""


@dataclass
class Request:
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes = b""

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def query(self) -> str:
        parts = self.target.split("?", 1)
        return parts[1] if len(parts) > 1 else ""

    def header(self, name: str) -> str | None:
        """The last value of header `name` (case-insensitive), or None."""
        wanted = name.lower()
        found = None
        for k, v in self.headers:
            if k == wanted:
                found = v
        return found


@dataclass
class Connection:
    """One client connection; `next_request()` until it returns None, a response after each."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    h11: h11.Connection = field(
        default_factory=lambda: h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADERS)
    )
    pending: bytes = b""
    """Bytes that arrived while a response was being written (handed to h11 next)."""

    async def _receive(self, timeout: float) -> None:
        if self.pending:
            data, self.pending = self.pending, b""
        else:
            try:
                data = await asyncio.wait_for(self.reader.read(READ_SIZE), timeout)
            except (ConnectionError, OSError):
                data = b""
        self.h11.receive_data(data)

    async def next_request(self, *, idle: float, whole: float) -> Request | None:
        """The next request with its whole body; None when the client closed or stayed idle
        for `idle` seconds. A request must arrive whole within `whole` seconds of its start."""
        if self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE:
            self.h11.start_next_cycle()
        request: Request | None = None
        body = bytearray()
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        while True:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as e:
                raise BadRequest(
                    f"the request is not HTTP/1.1 the gateway can read ({e})"
                ) from None
            if event is h11.NEED_DATA:
                if deadline is None:
                    timeout = idle
                else:
                    timeout = deadline - loop.time()
                    if timeout <= 0:
                        raise BadRequest(f"the request did not arrive whole within {whole:g} s")
                try:
                    await self._receive(timeout)
                except TimeoutError:
                    if deadline is None:
                        return None  # idle keep-alive connection: close it quietly
                    raise BadRequest(
                        f"the request did not arrive whole within {whole:g} s"
                    ) from None
                if deadline is None:
                    deadline = loop.time() + whole
                continue
            if isinstance(event, h11.Request):
                headers = [
                    (k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in event.headers
                ]
                request = Request(
                    event.method.decode("ascii", "replace"), event.target.decode("latin-1"), headers
                )
                length = request.header("content-length")
                if length is not None and length.isdigit() and int(length) > MAX_BODY:
                    raise BodyTooLarge(
                        f"the request body is {int(length)} bytes, over the gateway's "
                        f"{MAX_BODY}-byte limit"
                    )
                if deadline is None:
                    deadline = loop.time() + whole
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > MAX_BODY:
                    raise BodyTooLarge(
                        f"the request body is over the gateway's {MAX_BODY}-byte limit"
                    )
            elif isinstance(event, h11.EndOfMessage):
                assert request is not None
                request.body = bytes(body)
                return request
            elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                return None

    @property
    def can_respond(self) -> bool:
        return self.h11.our_state in (h11.IDLE, h11.SEND_RESPONSE)

    async def _write(self, data: bytes | None) -> None:
        if not data:
            return
        try:
            self.writer.write(data)
            await self.writer.drain()
        except (ConnectionError, OSError) as e:
            raise ClientGone(str(e)) from None

    async def start_response(self, status: int, headers: list[tuple[str, str]]) -> None:
        try:
            data = self.h11.send(h11.Response(status_code=status, headers=headers))
        except h11.LocalProtocolError as e:
            raise ClientGone(f"cannot respond: {e}") from None
        await self._write(data)

    async def send_body(self, data: bytes) -> None:
        if data:
            await self._write(self.h11.send(h11.Data(data=data)))

    async def end_response(self) -> None:
        await self._write(self.h11.send(h11.EndOfMessage()))

    async def respond(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        """A whole response with a known length."""
        await self.start_response(status, [*headers, ("content-length", str(len(body)))])
        await self.send_body(body)
        await self.end_response()

    async def watch_hangup(self) -> None:
        """Return when the client closes its side; what it sends meanwhile is kept for later
        (a client pipelining its next request)."""
        while True:
            try:
                data = await self.reader.read(READ_SIZE)
            except (ConnectionError, OSError):
                return
            if not data:
                return
            self.pending += data
            if len(self.pending) > MAX_HEADERS + MAX_BODY:
                return  # nobody pipelines that much: treat it as gone

    @property
    def reusable(self) -> bool:
        return self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE

    async def close(self) -> None:
        try:
            self.writer.close()
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass
