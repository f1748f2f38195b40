"""Compaction: before the conversation outgrows the context window, the model summarises it.

The summary replaces the summarised messages (which go to the archive file); the newest
user message is kept word for word when it is plain text (a new inbox message), so the
model still reads it as written. Nothing here decides when to call the API.
"""

from __future__ import annotations

from collections.abc import Callable

from .conversation import Block, Conversation, Message, text_block

SUMMARY_REQUEST = (
    "Your conversation is about to be compacted to fit your context window. Write the "
    "summary you will continue from, in your own words, for yourself: who you are "
    "working with and for; every open task with its state and next step; decisions, "
    "facts, names, paths, ids (approvals, questions, messages) you must remember; what "
    "you promised to whom; anything you were waiting for. Leave out what is finished and "
    "no longer matters. Plain text, at most about 1500 words. Do not call tools."
)
PREFACE = "[The earlier conversation was compacted (compaction #{n}). Your summary of it:]\n\n"
CONTINUE = "\n\n[You were in the middle of a turn when it was compacted: continue it.]"


def is_plain_text(message: Message) -> bool:
    content = message["content"]
    if isinstance(content, str):
        return True
    return all(isinstance(b, dict) and b.get("type") == "text" for b in content)


def compact(conv: Conversation, summarise: Callable[[list[Message]], str]) -> bool:
    """Replace the conversation by a summary the model writes; False if nothing to compact.

    `summarise(messages)` sends `messages` (which end with the summary request) to the
    model with tools disabled and returns its text.
    """
    messages = conv.messages
    keep: list[Block] = []
    if messages and messages[-1]["role"] == "user" and is_plain_text(messages[-1]):
        content = messages[-1]["content"]
        keep = [text_block(content)] if isinstance(content, str) else list(content)
        messages = messages[:-1]
    if len(messages) < 2:
        return False
    request = [dict(m) for m in messages]
    ask = text_block(SUMMARY_REQUEST)
    if request[-1]["role"] == "user":
        content = request[-1]["content"]
        blocks = [text_block(content)] if isinstance(content, str) else list(content)
        request[-1]["content"] = [*blocks, ask]
    else:
        request.append({"role": "user", "content": [ask]})
    summary = summarise(request).strip() or "(the summary came back empty)"
    conv.archive(messages)
    conv.compactions += 1
    conv.summary = summary
    head = PREFACE.format(n=conv.compactions) + summary + ("" if keep else CONTINUE)
    conv.messages = [{"role": "user", "content": [text_block(head), *keep]}]
    conv.measured(0)
    conv.save()
    return True


DROPPED = "[Older messages were archived without a summary: they no longer fit.]"


def drop_oldest(conv: Conversation) -> bool:
    """Archive the older half of the conversation unsummarised (when even a summary request
    is too long); it cuts before a plain user message so no tool result loses its call."""
    messages = conv.messages
    cut = next(
        (
            i
            for i in range(max(1, len(messages) // 2), len(messages))
            if messages[i]["role"] == "user" and is_plain_text(messages[i])
        ),
        None,
    )
    if cut is None:
        return False
    conv.archive(messages[:cut])
    first = dict(messages[cut])
    content = first["content"]
    blocks = [text_block(content)] if isinstance(content, str) else list(content)
    first["content"] = [text_block(DROPPED), *blocks]
    conv.messages = [first, *messages[cut + 1 :]]
    conv.measured(0)
    conv.save()
    return True
