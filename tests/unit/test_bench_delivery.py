"""The broker benchmark's exactly-once check: lost, duplicated and misdelivered are each seen."""

from __future__ import annotations

from bench.broker_runs import check_delivery
from bench.broker_systems import Record


def receipt(seq: int, receiver: int, drained: bool = False) -> Record:
    return Record(seq, 0, 1, receiver, drained)


def test_every_message_at_its_own_receiver_once_is_clean() -> None:
    records = [receipt(seq, seq % 3) for seq in range(9)]
    d = check_delivery(records, list(range(9)), receivers=3, addressed=True)
    assert (d.sent, d.once, d.lost, d.duplicated, d.misdelivered) == (9, 9, 0, 0, 0)
    assert d.unexpected == d.drained == 0


def test_a_lost_a_duplicated_and_a_misdelivered_message_are_each_counted() -> None:
    records = [receipt(seq, seq % 3) for seq in range(9) if seq != 4]  # 4 is lost
    records.append(receipt(5, 2, drained=True))  # 5 twice, the copy found by the drain
    records.remove(receipt(7, 1))
    records.append(receipt(7, 0))  # 7 reached receiver 0, not its own (1)
    d = check_delivery(records, list(range(9)), receivers=3, addressed=True)
    assert d.lost == 1
    assert d.duplicated == 1
    assert d.misdelivered == 1
    assert d.once == 6  # 0, 1, 2, 3, 6, 8
    assert d.drained == 1


def test_a_receipt_of_a_message_never_sent_is_unexpected() -> None:
    records = [receipt(0, 0), receipt(1, 1), receipt(99, 1)]
    d = check_delivery(records, [0, 1], receivers=2, addressed=True)
    assert d.unexpected == 1  # at its receiver by address (99 % 2 == 1), but never sent
    assert (d.once, d.lost, d.misdelivered) == (2, 0, 0)


def test_without_addressee_misdelivery_does_not_apply() -> None:
    records = [receipt(seq, -1) for seq in range(4)] + [receipt(2, -1)]
    d = check_delivery(records, list(range(4)), receivers=2, addressed=False)
    assert d.misdelivered is None
    assert (d.once, d.duplicated, d.lost) == (3, 1, 0)
