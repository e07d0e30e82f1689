"""Shrink a history on which the driver and the oracle disagree to a small one that still does.

Greedy: drop events, changes, coupons and items one at a time, simplify settings (zone, tax,
balance, policy) and end the history at an earlier invoice, keeping every step after which the
two still disagree (or the driver still raises the same error). Usage:
``python -m tests.oracle.shrink N`` prints the shrunk history ``N`` and both sides' invoices.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace

from billing.domain.simulation import simulate
from tests.oracle import oracle
from tests.oracle.histories import random_history
from tests.oracle.test_differential import _driver_invoice, _oracle_invoice, _show, translate


def outcome(history: oracle.History) -> str | None:
    """None when both sides agree; otherwise what kind of disagreement this is."""
    try:
        expected = [_oracle_invoice(i) for i in oracle.invoices(history)]
    except Exception:  # a simplification the oracle cannot run is not a reproduction
        return None
    try:
        actual = [_driver_invoice(d) for d in simulate(translate(history)).invoices]
    except Exception as error:
        return f"driver raises {type(error).__name__}"
    return None if expected == actual else "disagree"


def _candidates(h: oracle.History) -> Iterator[oracle.History]:
    for i in range(len(h.changes)):
        yield replace(h, changes=h.changes[:i] + h.changes[i + 1 :])
    for i in range(len(h.events)):
        yield replace(h, events=h.events[:i] + h.events[i + 1 :])
    for i in range(len(h.coupons)):
        yield replace(h, coupons=h.coupons[:i] + h.coupons[i + 1 :])
    for i, item in enumerate(h.items):
        if item.key != "seat":
            yield replace(h, items=h.items[:i] + h.items[i + 1 :])
    for invoice in oracle.invoices(h)[:-1]:
        end = invoice.at
        yield replace(h, horizon=end, changes=tuple(c for c in h.changes if c.at < end))
    for field, simple in (
        ("zone", "UTC"),
        ("tax_rates", {}),
        ("credit_balance", 0),
        ("per_day", False),
        ("calendar", False),
        ("trial_end", None),
        ("created_at", None),
    ):
        if getattr(h, field) != simple:
            yield replace(h, **{field: simple})


def shrink(history: oracle.History, keep: Callable[[oracle.History], bool]) -> oracle.History:
    progress = True
    while progress:
        progress = False
        for candidate in _candidates(history):
            if keep(candidate):
                history, progress = candidate, True
                break
    return history


def main(n: int) -> None:
    history = random_history(random.Random(n))
    wanted = outcome(history)
    if wanted is None:
        print(f"history {n}: both sides agree")
        return
    small = shrink(history, lambda h: outcome(h) == wanted)
    print(f"history {n} ({wanted}), shrunk:\n{small}\n")
    print("oracle:\n" + _show([_oracle_invoice(i) for i in oracle.invoices(small)]))
    try:
        print("driver:\n" + _show([_driver_invoice(d) for d in simulate(translate(small)).invoices]))
    except Exception as error:
        print(f"driver: {type(error).__name__}: {error}")


if __name__ == "__main__":
    main(int(sys.argv[1]))
