"""What tokens cost, from Anthropic's list prices per model family, and a turn's running usage.

Prices are US dollars per million tokens (input, output); cache writes cost 1.25 times
input, cache reads 0.1 times. A model of no known family is counted at zero cost. The
gateway meters with `cost()`; the harness keeps its own running `Usage` of a turn.
"""

from __future__ import annotations

from dataclasses import dataclass

# (input, output) per million tokens, matched against the model name in this order.
PRICES: tuple[tuple[str, float, float], ...] = (
    ("opus-4-5", 5.0, 25.0),
    ("opus-4-6", 5.0, 25.0),
    ("opus", 15.0, 75.0),
    ("sonnet", 3.0, 15.0),
    ("haiku-4", 1.0, 5.0),
    ("3-5-haiku", 0.8, 4.0),
    ("haiku", 0.25, 1.25),
)
CACHE_WRITE = 1.25
CACHE_READ = 0.1


def prices(model: str) -> tuple[float, float]:
    name = model.lower()
    for key, inp, out in PRICES:
        if key in name:
            return inp, out
    return 0.0, 0.0


def cost(model: str, *, input: int, output: int, cache_write: int, cache_read: int) -> float:
    """US dollars for one response's usage (`input` is the uncached input the API reports)."""
    inp, out = prices(model)
    return (
        input * inp + cache_write * inp * CACHE_WRITE + cache_read * inp * CACHE_READ
    ) / 1e6 + output * out / 1e6


@dataclass
class Usage:
    input_tokens: int = 0
    """Uncached input, including tokens written to the cache."""
    output_tokens: int = 0
    cache_write_tokens: int = 0
    cached_tokens: int = 0
    """Input read from the prompt cache."""
    cost_usd: float = 0.0

    def add(
        self, model: str, *, input: int, output: int, cache_write: int, cache_read: int
    ) -> None:
        self.input_tokens += input + cache_write
        self.output_tokens += output
        self.cache_write_tokens += cache_write
        self.cached_tokens += cache_read
        self.cost_usd += cost(
            model, input=input, output=output, cache_write=cache_write, cache_read=cache_read
        )
