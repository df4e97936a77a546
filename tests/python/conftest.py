"""Shared fixtures: unique queue names, queues removed at the end of each test."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest

import currant

_counter = itertools.count()


def unique_name(tag: str = "q") -> str:
    return f"pytest-{tag}-{os.getpid()}-{next(_counter)}"


@pytest.fixture
def queue_name() -> Iterator[str]:
    """A fresh queue name; whatever queue carries it is removed afterwards."""
    name = unique_name()
    yield name
    currant.Queue.remove(name)


@pytest.fixture
def queue(queue_name: str) -> Iterator[currant.Queue]:
    """A small new queue with one entrypoint "jobs" (memory durability)."""
    q = currant.Queue.create(queue_name, slots=256, payload_bytes=64, max_participants=16)
    q.declare_entrypoint("jobs")
    yield q
    q.close()
