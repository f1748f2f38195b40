"""The page routes: the index, an agent's page and the static assets. Each renders from the
live hub's rows (SQLite, read-only) and never changes anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bottle  # type: ignore[import-untyped]
from bottle import HTTPError  # type: ignore[import-untyped]

from ..hive.names import InvalidName
from . import pages, views
from .context import Context, agent_name, visitor

STATIC = Path(__file__).resolve().parent / "static"


def page(ctx: Context, topic: str) -> str:
    """A whole page of `topic`, with a banner when the coordinator is unreachable."""
    banner = None if ctx.hub.status.get("live") else ctx.hub.status.get("error")
    rows = ctx.hub.agent_rows(page=True)
    return ctx.renderer.page(topic, rows, visitor().csrf, banner)


def index(ctx: Context) -> str:
    """GET /"""
    return page(ctx, pages.INDEX)


def agents_page(ctx: Context) -> str:
    """GET /agents: every agent (the index lists at most views.INDEX_AGENTS)."""
    return page(ctx, pages.AGENTS)


def waiting_page(ctx: Context) -> str:
    """GET /waiting: everything that waits on the operator."""
    return page(ctx, pages.WAITING)


def history_page(ctx: Context) -> str:
    """GET /history: the audit trail."""
    return page(ctx, pages.HISTORY)


def agent_page(ctx: Context, name: str) -> str:
    """GET /agent/<name>: 404 for a bad name or an agent that does not exist."""
    try:
        name = agent_name(name)
    except InvalidName as e:
        raise HTTPError(404, str(e)) from None
    if not views.agent_exists(name):
        raise HTTPError(404, f"no agent named {name!r}: see the agents on the dashboard")
    return page(ctx, pages.agent_topic(name))


def static(ctx: Context, path: str) -> Any:
    """GET /static/<path>: public, no session needed."""
    return bottle.static_file(path, root=str(STATIC))
