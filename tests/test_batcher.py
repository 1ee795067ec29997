"""The conveyor's group commit: items handed over are processed in batches by another thread."""

from __future__ import annotations

import threading

import pytest

from lacus.daemons.batcher import Batcher


def test_every_item_is_processed_once_in_order_and_close_waits_for_them() -> None:
    batches: list[list[int]] = []
    threads: set[str] = set()

    def process(batch: list[int]) -> None:
        threads.add(threading.current_thread().name)
        batches.append(batch)

    batcher = Batcher(process, interval=60.0, max_items=4, name="test-batcher")
    for item in range(10):
        batcher.put(item)
    batcher.close()  # the last items are not kept waiting for the interval
    assert [item for batch in batches for item in batch] == list(range(10))
    assert all(batches)
    assert threads == {"test-batcher"}


def test_an_item_is_processed_once_the_interval_has_passed_without_more_coming() -> None:
    processed = threading.Event()
    batches: list[list[int]] = []

    def process(batch: list[int]) -> None:
        batches.append(batch)
        processed.set()

    batcher = Batcher(process, interval=0.0, max_items=100, name="test-batcher")
    batcher.put(1)
    assert processed.wait(timeout=30), "a lone item waited for the batcher to close"
    batcher.close()
    assert batches == [[1]]


def test_a_full_batch_goes_at_once() -> None:
    processed = threading.Event()
    batches: list[list[int]] = []

    def process(batch: list[int]) -> None:
        batches.append(batch)
        processed.set()

    batcher = Batcher(process, interval=3600.0, max_items=3, name="test-batcher")
    for item in range(3):
        batcher.put(item)
    assert processed.wait(timeout=30), "a full batch waited for the interval"
    batcher.close()
    assert batches == [[0, 1, 2]]


def test_the_items_not_taken_yet_can_be_looked_at() -> None:
    """What the conveyor renews the leases of: copies finished, not registered yet."""
    batches: list[list[int]] = []
    batcher = Batcher(batches.append, interval=3600.0, max_items=100, name="test-batcher")
    batcher.put(1)
    batcher.put(2)
    with batcher.queued() as queued:
        assert queued == [1, 2]
        assert batches == []
    batcher.close()
    assert batches == [[1, 2]]
    with batcher.queued() as queued:
        assert queued == []


def test_an_error_of_the_processing_reaches_the_owner() -> None:
    def process(batch: list[int]) -> None:
        raise RuntimeError(f"the catalog is down ({len(batch)} items)")

    batcher = Batcher(process, interval=0.0, max_items=1, name="test-batcher")
    batcher.put(1)
    with pytest.raises(RuntimeError, match="catalog is down"):
        batcher.close()
    with pytest.raises(RuntimeError, match="catalog is down"):
        batcher.put(2)
