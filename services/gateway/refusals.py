"""The gateway's own answers, shaped like the Anthropic API's errors so any SDK reads them.

Each carries the API's error `type` for its status, one sentence as `message`, and the
hive's `hive_refusal` (what the harness branches on) and `code` (vocab.Code).
"""

from __future__ import annotations

import json

from ..hive.vocab import GatewayRefusal

JSON = ("content-type", "application/json")


def body(refusal: GatewayRefusal, message: str) -> bytes:
    return json.dumps(
        {
            "type": "error",
            "error": {
                "type": refusal.error_type,
                "message": message,
                "hive_refusal": refusal.value,
                "code": refusal.code.value,
            },
        }
    ).encode()


def headers(refusal: GatewayRefusal) -> list[tuple[str, str]]:
    out = [JSON, ("x-hive-refusal", refusal.value)]
    if refusal is GatewayRefusal.BUSY:
        out.append(("retry-after", "1"))
    return out
