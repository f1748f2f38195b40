"""Action links: made for one pending approval or question, or one agent at a spending cap
(hive-notify asks, per channel), redeemed once by the confirming POST of their page (hive-web
passes the secret on).

A redeemed link acts as the operator, through the same `Approvals`, `Questions` and
`Budgets` calls the dashboard uses, and records itself as who decided (`action link #12
(ntfy)`). It is marked
used before it acts (one conditional UPDATE), so two POSTs of one link act once; a request
the item refuses as malformed (an answer not among the options) gives the use back.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Mapping
from typing import Any

from ..hive import actionlinks, sessions
from ..hive import log as hlog
from ..hive.db import ActionLink, Approval, OperatorQuestion, now, write_tx
from ..hive.protocol import Refusal
from ..hive.vocab import ApprovalStatus, Code, LinkAction, LinkItem, QuestionStatus
from . import history
from .approvals import Approvals, approval_dict
from .budgets import Budgets, reply_of
from .questions import Questions

TTL_SETTING = "HIVE_NOTIFY_LINK_TTL"


_COMMAND_OF = {
    LinkAction.APPROVE: "approve",
    LinkAction.DENY: "deny",
    LinkAction.ANSWER: "answer_question",
    LinkAction.RAISE: "set_budget",
    LinkAction.RESET: "set_budget",
}
"""The admin command each link action stands for, as the audit trail names it."""


class LinkRefused(Refusal):
    code = Code.FORBIDDEN


def link_ttl(env: Mapping[str, str]) -> float:
    """HIVE_NOTIFY_LINK_TTL in seconds (24 h when unset or not a positive number)."""
    try:
        value = float(env.get(TTL_SETTING) or actionlinks.DEFAULT_TTL)
    except ValueError:
        return actionlinks.DEFAULT_TTL
    return value if value > 0 else actionlinks.DEFAULT_TTL


class ActionLinks:
    def __init__(
        self,
        approvals: Approvals,
        questions: Questions,
        budgets: Budgets,
        env: Mapping[str, str] | None = None,
    ) -> None:
        e = os.environ if env is None else env
        self.approvals = approvals
        self.questions = questions
        self.budgets = budgets
        self.url = sessions.web_url(e)
        self.ttl = link_ttl(e)

    # making --------------------------------------------------------------------------------
    def make(self, item: LinkItem, item_id: int, channel: str, by: str) -> dict[str, Any]:
        """A new link for a pending approval or question, or an agent at a cap (the id of its
        budget_reached event), to go out on `channel`."""
        with write_tx():
            item_hash = self._pending(item, item_id)
            secret = sessions.new_secret()
            expires = now() + self.ttl
            link = ActionLink.create(
                token_hash=sessions.digest(secret),
                item_kind=str(item),
                item_id=item_id,
                item_hash=item_hash,
                channel=channel,
                created_by=by,
                expires_at=expires,
            )
        hlog.log(
            f"action link #{link.id} for {item} #{item_id} made for {channel} by {by}",
            kind="operator_action",
        )
        return {
            "id": link.id,
            "url": f"{self.url}{actionlinks.PATH}{secret}",
            "expires_at": expires,
            "valid_seconds": self.ttl,
        }

    @staticmethod
    def _pending(item: LinkItem, item_id: int) -> str | None:
        """The item's hash (approvals, caps), refusing an item that is gone or no longer
        pending."""
        if item is LinkItem.BUDGET:
            cap = actionlinks.cap_item(item_id)
            if cap is None:
                raise LinkRefused(f"no budget_reached event #{item_id}", code=Code.NOT_FOUND)
            closed = actionlinks.cap_closed(cap)
            if closed is not None:
                raise LinkRefused(closed, code=Code.CONFLICT)
            e = cap.event
            return actionlinks.window_hash(e.agent, e.period, e.since)
        if item is LinkItem.APPROVAL:
            a: Approval | None = Approval.get_or_none(Approval.id == item_id)
            if a is None:
                raise LinkRefused(f"no approval #{item_id}", code=Code.NOT_FOUND)
            if a.status != ApprovalStatus.PENDING:
                raise LinkRefused(f"approval #{item_id} is already {a.status}", code=Code.CONFLICT)
            return actionlinks.item_hash(a)
        q: OperatorQuestion | None = OperatorQuestion.get_or_none(OperatorQuestion.id == item_id)
        if q is None:
            raise LinkRefused(f"no question #{item_id}", code=Code.NOT_FOUND)
        if q.status != QuestionStatus.PENDING:
            raise LinkRefused(f"question #{item_id} is already {q.status}", code=Code.CONFLICT)
        return None

    # redeeming -----------------------------------------------------------------------------
    async def redeem(
        self,
        secret: str,
        token: str,
        action: LinkAction,
        answer: str | list[str] | None,
        note: str | None,
        peer: str,
        usd: float | None = None,
    ) -> dict[str, Any]:
        """Act once through the link of `secret`, as the operator; refuse with the sentence
        its page shows when it may not. `usd` is a budget link's new cap (`raise`)."""
        view = actionlinks.inspect(secret)
        if view.link is None:
            raise LinkRefused(view.sentence, code=view.code)
        if not hmac.compare_digest(token.encode(), actionlinks.form_token(secret).encode()):
            raise LinkRefused(
                "the form's token does not belong to this link: open the link again and "
                "confirm from its page"
            )
        if not view.usable:
            raise LinkRefused(view.sentence, code=view.code)
        link = view.link
        item = LinkItem(link.item_kind)
        if action not in item.actions:
            allowed = " or ".join(item.actions)
            raise LinkRefused(
                f"a link for {item} #{link.item_id} can {allowed}, not {action}", code=Code.INVALID
            )
        if action is LinkAction.ANSWER and not answer:
            raise LinkRefused("choose or type an answer first", code=Code.INVALID)
        if action is LinkAction.RAISE:
            self._check_raise(view, usd)
        self._use(link, action)
        by = f"action link #{link.id} ({link.channel}), {peer}"
        cmd = _COMMAND_OF[action]
        trail: dict[str, Any] = {"id": int(link.item_id), "answer": answer, "note": note}
        if view.cap is not None:
            period = view.cap.period
            trail = {"name": view.cap.agent, "event": int(link.item_id)}
            trail.update({period.config_key: usd} if usd is not None else {"reset": [period]})
        try:
            result = await self._act(link, action, answer, note, by, view, usd)
        except Refusal as e:
            if e.code is Code.INVALID:  # the request was wrong, the link is not spent
                ActionLink.update(used_at=None, used_action=None).where(
                    ActionLink.id == link.id
                ).execute()
            history.record(cmd, by, trail, f"refused: {e}")
            raise
        history.record(cmd, by, trail, "ok", result)
        hlog.log(
            f"{item} #{link.item_id} {action.done} through action link #{link.id} ({link.channel})",
            kind="operator_action",
            operator=by,
        )
        return result

    @staticmethod
    def _check_raise(view: actionlinks.View, usd: float | None) -> None:
        """A raise names a cap above what was spent (else the agent stays stopped)."""
        assert view.cap is not None
        s = view.cap.standing
        if usd is None:
            raise LinkRefused("give the new cap in US dollars first", code=Code.INVALID)
        if usd <= s.spent_usd:
            raise LinkRefused(
                f"a {s.period} cap of ${usd:.2f} is not above the ${s.spent_usd:.2f} "
                f"{view.cap.agent} has spent {s.period.noun}: give more, or reset the count",
                code=Code.INVALID,
            )

    @staticmethod
    def _use(link: ActionLink, action: LinkAction) -> None:
        with write_tx():
            used = (
                ActionLink.update(used_at=now(), used_action=str(action))
                .where((ActionLink.id == link.id) & ActionLink.used_at.is_null())
                .execute()
            )
        if not used:
            raise LinkRefused(
                "this link was used already: each link works once", code=Code.CONFLICT
            )

    async def _act(
        self,
        link: ActionLink,
        action: LinkAction,
        answer: str | list[str] | None,
        note: str | None,
        by: str,
        view: actionlinks.View,
        usd: float | None,
    ) -> dict[str, Any]:
        aid = int(link.item_id)
        if view.cap is not None:
            agent, period = view.cap.agent, view.cap.period
            if action is LinkAction.RAISE:
                assert usd is not None
                standings = self.budgets.set(agent, {period: usd}, [], by)
                said = f"{agent}'s {period} cap raised to ${usd:.2f}"
            else:
                standings = self.budgets.set(agent, {}, [period], by)
                said = f"{agent}'s {period} count reset"
            return {"message": said, "budget": reply_of(agent, standings)}
        if action is LinkAction.APPROVE:
            a = await self.approvals.approve(aid, by, wait=False)
            return {"message": f"approval #{aid} approved", "approval": approval_dict(a)}
        if action is LinkAction.DENY:
            a = self.approvals.deny(aid, note, by)
            return {"message": f"approval #{aid} denied", "approval": approval_dict(a)}
        q: OperatorQuestion | None = OperatorQuestion.get_or_none(OperatorQuestion.id == aid)
        if q is not None and q.multi and isinstance(answer, str):
            answer = [answer]
        elif q is not None and not q.multi and isinstance(answer, list) and len(answer) == 1:
            answer = answer[0]
        assert answer is not None
        row = self.questions.answer(aid, answer, by)
        return {"message": f"question #{aid} answered", "question": row}
