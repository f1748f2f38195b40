"""The dashboard's route table: which method and URL run which route, and the hooks around
every request. The routes live in their own modules (`pageviews`, `signin`, `streams`,
`actions`) as functions of `(ctx, ...)`; `build` binds them to one `Context` and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import bottle  # type: ignore[import-untyped]

from . import actionpage, actions, guard, pageviews, signin, streams
from .context import MAX_FORM, Context

__all__ = ["ROUTES", "Context", "build"]

ROUTES: tuple[tuple[str, str, Callable[..., Any]], ...] = (
    ("GET", "/", pageviews.index),
    ("GET", "/agent/<name>", pageviews.agent_page),
    ("GET", "/waiting", pageviews.waiting_page),
    ("GET", "/history", pageviews.history_page),
    ("GET", "/static/<path:path>", pageviews.static),
    ("GET", "/login", signin.login_form),
    ("POST", "/login", signin.login_password),
    ("GET", "/login/<secret>", signin.login_link),
    ("POST", "/logout", signin.logout),
    ("GET", "/api/session", signin.session_info),
    ("GET", "/act/<secret>", actionpage.show),
    ("POST", "/act/<secret>", actionpage.confirm),
    ("GET", "/api/events", streams.events),
    ("GET", "/api/journal/<name>", streams.journal_recent),
    ("GET", "/api/journal/<name>/stream", streams.journal_stream),
    ("GET", "/api/model", actions.model_get),
    ("POST", "/api/model", actions.model_set),
    ("POST", "/approve/<aid:int>", actions.approve),
    ("POST", "/deny/<aid:int>", actions.deny),
    ("POST", "/answer-question/<qid:int>", actions.answer),
    ("POST", "/cancel-question/<qid:int>", actions.cancel_question),
    ("POST", "/cancel-turn/<name>", actions.cancel_turn),
    ("POST", "/spawn", actions.spawn),
    ("POST", "/update-all", actions.update_all),
    ("POST", "/send/<name>", actions.send),
    ("POST", "/drop/<mid:int>", actions.drop),
    ("POST", "/cap/<name>", actions.set_cap),
    ("POST", "/reset-budget/<name>", actions.reset_budget),
    *(("POST", f"/{cmd}/<name>", partial(actions.lifecycle, cmd=cmd)) for cmd in actions.VERBS),
)
"""(method, rule, route): each route is called as `route(ctx, **the rule's arguments)`."""


def build(ctx: Context) -> bottle.Bottle:
    """The dashboard's WSGI app, every route and hook bound to `ctx`."""
    app = bottle.Bottle(catchall=True)
    app.config["json.enable"] = False
    bottle.BaseRequest.MEMFILE_MAX = MAX_FORM
    app.add_hook("before_request", partial(guard.check, ctx))
    app.add_hook("after_request", partial(guard.after, ctx))
    app.default_error_handler = guard.error_page  # type: ignore[method-assign]
    for method, rule, route in ROUTES:
        app.route(rule, method, partial(route, ctx))
    return app
