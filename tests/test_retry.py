from __future__ import annotations

import itertools
import random

import pytest

from segment_clone.retry import backoff_delays, is_retryable


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422, 501, 505, 301, 304, 200])
def test_not_retried(status: int) -> None:
    assert not is_retryable(status)


@pytest.mark.parametrize("status", [408, 410, 429, 460, 500, 502, 503, 504, 529, 599])
def test_retried(status: int) -> None:
    assert is_retryable(status)


def test_511_retried_only_with_oauth() -> None:
    assert not is_retryable(511)
    assert is_retryable(511, oauth=True)


def test_delay_schedule_without_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(random, "uniform", lambda a, b: a)
    delays = list(itertools.islice(backoff_delays(), 12))
    assert delays == [0, 0.5, 1, 2, 4, 8, 16, 32, 60, 60, 60, 60]


def test_delay_schedule_with_full_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(random, "uniform", lambda a, b: b)
    delays = list(itertools.islice(backoff_delays(), 9))
    assert delays[:4] == pytest.approx([0, 0.55, 1.1, 2.2])
    assert all(d <= 60 for d in delays)
    assert delays[-1] == 60


def test_real_jitter_stays_in_range() -> None:
    for _ in range(50):
        d = list(itertools.islice(backoff_delays(), 3))
        assert d[0] == 0
        assert 0.5 <= d[1] <= 0.55
        assert 1.0 <= d[2] <= 1.1
