"""One agent connection at the gateway: its requests answered, forwarded or refused.

`POST /v1/messages` (metered) and `POST /v1/messages/count_tokens` go upstream with the
gateway's key, the response streamed back piece by piece as it arrives; `GET /hive/status`
says whether the gateway can serve this agent now (a key, its budget), waiting for a change
when asked. Who is calling is the socket the connection came in on (`agent`), never a
header; the `X-Hive-Turn` header is kept only to group usage rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import httpx2

from ..hive import log as hlog
from ..hive.db import now
from ..hive.vocab import GatewayRefusal, KeyState
from . import http1, refusals
from .metering import JsonMeter, Meter, Metered, StreamMeter, meter_for
from .roster import MAX_INFLIGHT, Account, Limit
from .upstream import Upstream, response_headers

MESSAGES = "/v1/messages"
COUNT_TOKENS = "/v1/messages/count_tokens"
FORWARDED_PATHS = frozenset({MESSAGES, COUNT_TOKENS})
METERED_PATHS = frozenset({MESSAGES})
STATUS = "/hive/status"
MAX_STATUS_WAIT = 180.0
IDLE_SECONDS = 300.0
"""A keep-alive connection with no request for this long is closed."""
REQUEST_SECONDS = 120.0
"""A request must arrive whole within this long of its first byte."""
TURN_HEADER = "x-hive-turn"
_TURN = re.compile(r"[A-Za-z0-9._:-]{1,64}")


@dataclass
class Context:
    """What a connection needs of the gateway, passed in (a test can build one alone)."""

    upstream: Upstream
    key_state: Callable[[], KeyState]
    key_refused: Callable[[], None]
    account: Callable[[str], Account | None]
    record: Callable[[str, str | None, Metered, str | None, float], Awaitable[float]]
    """Write a usage row (on the database thread); its cost."""
    changed: Callable[[], None]
    """Wake the status requests that wait for a change."""
    reached: Callable[[Account, Limit], None]
    """An agent is at a cap: tell the manager and the operator (once per window)."""
    wait_change: Callable[[float], Coroutine[Any, Any, None]]
    key_hint: str
    """Where the operator puts a key (one clause, for the sentences below)."""


def key_sentence(key: KeyState, hint: str) -> str | None:
    """Why the gateway cannot call the API for anyone, or None when it can."""
    if key is KeyState.MISSING:
        return f"the model gateway has no Anthropic API key: {hint}"
    if key is KeyState.REFUSED:
        return f"the Anthropic API refused the model gateway's key (401): {hint}, a valid one"
    return None


def turn_of(request: http1.Request) -> str | None:
    """The harness's turn id, if it sent a well-formed one (it only groups usage rows)."""
    value = request.header(TURN_HEADER)
    return value if value is not None and _TURN.fullmatch(value) else None


def status_token(key: KeyState, account: Account) -> str:
    """Changes whenever the answer to "may this agent think now" changes."""
    stop = account.stop(now())
    return f"{key.value}/" + (f"over:{stop.period}:{stop.cap.cap_usd}" if stop else "open")


async def refuse(conn: http1.Connection, agent: str, refusal: GatewayRefusal, message: str) -> None:
    hlog.log(
        f"refused a model request of {agent}: {message}",
        kind="gateway_refused",
        agent=agent,
        priority=hlog.NOTICE if refusal is GatewayRefusal.OVER_BUDGET else hlog.DEBUG,
        refusal=refusal.value,
    )
    if conn.can_respond:
        await conn.respond(
            refusal.http_status, refusals.headers(refusal), refusals.body(refusal, message)
        )


async def serve_connection(agent: str, conn: http1.Connection, ctx: Context) -> None:
    """Answer requests on one connection of `agent`'s socket until it closes."""
    try:
        while True:
            try:
                request = await conn.next_request(idle=IDLE_SECONDS, whole=REQUEST_SECONDS)
            except http1.BodyTooLarge as e:
                await refuse(conn, agent, GatewayRefusal.TOO_LARGE, str(e))
                return
            except http1.BadRequest as e:
                await refuse(conn, agent, GatewayRefusal.BAD_REQUEST, str(e))
                return
            if request is None:
                return
            keep = await handle(agent, conn, request, ctx)
            if not keep or not conn.reusable:
                return
    except http1.ClientGone:
        return
    finally:
        await conn.close()


async def handle(agent: str, conn: http1.Connection, request: http1.Request, ctx: Context) -> bool:
    """Answer one request; False when the connection must close after it."""
    path = request.path
    if request.method == "GET" and path == STATUS:
        return await status(agent, conn, request, ctx)
    if request.method == "POST" and path in FORWARDED_PATHS:
        return await forward(agent, conn, request, ctx)
    await refuse(
        conn,
        agent,
        GatewayRefusal.NOT_FORWARDED,
        f"the model gateway does not forward {request.method} {path[:200]}: it forwards "
        f"POST {MESSAGES} and POST {COUNT_TOKENS}",
    )
    return True


async def status(agent: str, conn: http1.Connection, request: http1.Request, ctx: Context) -> bool:
    """{agent, key, over_budget, period, spent_usd, cap_usd, state, detail}; with `wait` and
    `seen`, held until
    `state` differs from `seen` (or `wait` seconds pass, or the client hangs up)."""
    query = parse_qs(request.query)
    try:
        wait = min(max(float(query.get("wait", ["0"])[0]), 0.0), MAX_STATUS_WAIT)
    except ValueError:
        wait = 0.0
    seen = query.get("seen", [""])[0]
    account = ctx.account(agent)
    if account is None:
        await refuse(
            conn, agent, GatewayRefusal.UNAVAILABLE, f"{agent} is not an agent of this hive"
        )
        return False
    if wait > 0 and status_token(ctx.key_state(), account) == seen:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        hangup = asyncio.create_task(conn.watch_hangup())
        try:
            while (left := deadline - loop.time()) > 0 and not hangup.done():
                waiter = asyncio.create_task(ctx.wait_change(left))
                await asyncio.wait({waiter, hangup}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                account = ctx.account(agent)
                if account is None or status_token(ctx.key_state(), account) != seen:
                    break
        finally:
            hangup.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await hangup
        if hangup.done() and not hangup.cancelled():
            return False  # the client went away while it waited
        if account is None:
            await refuse(
                conn, agent, GatewayRefusal.UNAVAILABLE, f"{agent} is not an agent of this hive"
            )
            return False
    key = ctx.key_state()
    stop = account.stop(now())
    answer = {
        "agent": agent,
        "key": key.value,
        "over_budget": stop is not None,
        "period": None if stop is None else str(stop.period),
        "spent_usd": round(account.spent_usd if stop is None else stop.spent, 6),
        "cap_usd": None if stop is None else stop.cap.cap_usd,
        "state": status_token(key, account),
        "detail": key_sentence(key, ctx.key_hint)
        or (None if stop is None else stop.standing().sentence(agent)),
    }
    await conn.respond(200, [refusals.JSON], json.dumps(answer).encode())
    return True


def _request_id(response: httpx2.Response) -> str | None:
    return response.headers.get("request-id") or response.headers.get("x-request-id")


async def forward(agent: str, conn: http1.Connection, request: http1.Request, ctx: Context) -> bool:
    account = ctx.account(agent)
    if account is None:
        await refuse(
            conn, agent, GatewayRefusal.UNAVAILABLE, f"{agent} is not an agent of this hive"
        )
        return False
    metered = request.path in METERED_PATHS
    if not ctx.upstream.has_key:
        await refuse(
            conn, agent, GatewayRefusal.NO_KEY, key_sentence(KeyState.MISSING, ctx.key_hint) or ""
        )
        return True
    stop = account.stop(now()) if metered else None
    if stop is not None:
        ctx.reached(account, stop)  # said once per window, even after a restart
        await refuse(conn, agent, GatewayRefusal.OVER_BUDGET, stop.standing().sentence(agent))
        return True
    if account.inflight >= MAX_INFLIGHT:
        await refuse(
            conn,
            agent,
            GatewayRefusal.BUSY,
            f"{agent} has {account.inflight} model requests under way at the gateway, its "
            "most at once: wait for one to end",
        )
        return True
    account.inflight += 1
    meter: Meter | None = None
    started = now()
    turn = turn_of(request)
    request_id: str | None = None
    recorded = False
    keep = True

    async def record(usage: Metered) -> None:
        nonlocal recorded
        if not recorded and usage.seen:
            recorded = True
            await _record(agent, turn, usage, request_id, started, account, ctx)

    try:
        try:
            async with ctx.upstream.send(
                request.method, request.target, request.headers, request.body
            ) as response:
                request_id = _request_id(response)
                if response.status_code == 401:
                    ctx.key_refused()
                if metered and response.status_code == 200:
                    meter = meter_for(response.headers.get("content-type"))
                await conn.start_response(response.status_code, response_headers(response.headers))
                keep = await pump(conn, response, meter, record)
        except httpx2.TimeoutException as e:
            keep = False
            await refuse(
                conn,
                agent,
                GatewayRefusal.UPSTREAM_DOWN,
                f"the Anthropic API did not answer in time ({type(e).__name__})",
            )
        except httpx2.TransportError as e:
            keep = False
            await refuse(
                conn,
                agent,
                GatewayRefusal.UPSTREAM_DOWN,
                f"the model gateway could not reach the Anthropic API at "
                f"{ctx.upstream.base_url} ({type(e).__name__}: {e})",
            )
    finally:
        account.inflight -= 1
        if meter is not None:  # a response cut off: what it used so far, marked incomplete
            await record(meter.usage)
    return keep


async def pump(
    conn: http1.Connection,
    response: httpx2.Response,
    meter: Meter | None,
    record: Callable[[Metered], Awaitable[None]],
) -> bool:
    """Pass the response body on as it arrives; False if either side broke off.

    Its usage is recorded before the client gets the end of it (a stream's `message_stop`,
    a JSON message's last bytes), so a harness that has read a whole answer finds it
    metered in SQLite; every earlier piece goes on the moment it arrives."""

    async def body() -> None:
        held = b""  # a JSON message: its last piece waits for the usage in it
        async for chunk in response.aiter_bytes():
            if isinstance(meter, StreamMeter):
                if b"message_stop" in chunk:  # the end: metered before it goes on
                    meter.feed(chunk)
                    if meter.usage.complete:
                        await record(meter.usage)
                    await conn.send_body(chunk)
                else:  # on its way first, read after
                    await conn.send_body(chunk)
                    meter.feed(chunk)
            elif isinstance(meter, JsonMeter):
                meter.feed(chunk)
                await conn.send_body(held)
                held = chunk
            else:
                await conn.send_body(chunk)
        if isinstance(meter, JsonMeter):
            meter.finish()
            await record(meter.usage)
            await conn.send_body(held)
        await conn.end_response()

    sending = asyncio.create_task(body())
    hangup = asyncio.create_task(conn.watch_hangup())
    try:
        await asyncio.wait({sending, hangup}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sending, hangup):
            task.cancel()
        for task in (sending, hangup):
            with contextlib.suppress(asyncio.CancelledError, http1.ClientGone, httpx2.HTTPError):
                await task
    return not sending.cancelled() and sending.done() and sending.exception() is None


async def _record(
    agent: str,
    turn: str | None,
    usage: Metered,
    request_id: str | None,
    started: float,
    account: Account,
    ctx: Context,
) -> None:
    was = account.stop(now())
    try:
        price = await ctx.record(agent, turn, usage, request_id, started)
    except Exception as e:  # the journal keeps the numbers the database could not
        price = usage.cost_usd
        hlog.log(
            f"could not record {agent}'s usage ({e!r}): model {usage.model}, "
            f"{usage.input_tokens} in, {usage.output_tokens} out, "
            f"{usage.cache_write_tokens} cache write, {usage.cache_read_tokens} cache read, "
            f"${price:.6f}",
            kind="model_usage",
            agent=agent,
            priority=hlog.ERR,
            turn=turn,
        )
    account.add(price, now())
    stop = account.stop(now())
    if stop is not None and was is None:
        ctx.reached(account, stop)
        ctx.changed()
