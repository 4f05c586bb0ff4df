"""Fault injection: make a share of ingestion requests fail, or answer slowly.

A failure is decided before anything of the request is stored, so a failed request leaves no
trace and the client's retry is what delivers the messages. The delay is applied just before
answering (after storing, when the request succeeds), which is how a client can time out on a
request that did land and then prove that its retry is deduplicated.
"""

from __future__ import annotations

import random
import threading
from dataclasses import asdict, dataclass
from typing import Any

FIELDS = ("fail_rate", "fail_status", "retry_after", "delay_ms")
MAX_DELAY_MS = 60_000.0
MAX_RETRY_AFTER = 86_400.0


@dataclass(frozen=True)
class FaultSettings:
    fail_rate: float = 0.0
    fail_status: int = 503
    retry_after: float | None = None
    delay_ms: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.fail_rate <= 1.0:
            raise ValueError(f"fail_rate must be between 0 and 1, got: {self.fail_rate!r}")
        if not 400 <= self.fail_status <= 599:
            raise ValueError(f"fail_status must be a 4xx or 5xx status, got: {self.fail_status!r}")
        if self.retry_after is not None and not 0 <= self.retry_after <= MAX_RETRY_AFTER:
            raise ValueError(
                f"retry_after must be between 0 and {MAX_RETRY_AFTER:g}, got: {self.retry_after!r}"
            )
        if not 0 <= self.delay_ms <= MAX_DELAY_MS:
            raise ValueError(
                f"delay_ms must be between 0 and {MAX_DELAY_MS:g}, got: {self.delay_ms!r}"
            )


@dataclass(frozen=True)
class Decision:
    """What to do with one ingestion request: fail it with ``status``, or not (None)."""

    status: int | None
    retry_after: float | None
    delay: float

    def describe(self) -> str | None:
        """The fault in words (``status 503, delay 250 ms``), None when there is none."""
        parts = [] if self.status is None else [f"status {self.status}"]
        if self.delay:
            parts.append(f"delay {self.delay * 1000:g} ms")
        return ", ".join(parts) or None


class Faults:
    """The current settings (replaceable at run time) and the random source behind them."""

    def __init__(self, settings: FaultSettings | None = None, rng: random.Random | None = None):
        self._lock = threading.Lock()
        self._settings = settings or FaultSettings()
        self._rng = rng or random.Random()
        self.injected = 0

    @property
    def settings(self) -> FaultSettings:
        return self._settings

    def update(self, changes: dict[str, Any]) -> FaultSettings:
        """Apply the given fields (names as in ``FIELDS``), keep the others; ValueError if bad."""
        unknown = set(changes) - set(FIELDS)
        if unknown:
            raise ValueError(f"unknown fault setting(s): {', '.join(sorted(unknown))}")
        merged = {**asdict(self._settings), **changes}
        try:
            settings = FaultSettings(
                fail_rate=float(merged["fail_rate"]),
                fail_status=_int(merged["fail_status"]),
                retry_after=None if merged["retry_after"] is None else float(merged["retry_after"]),
                delay_ms=float(merged["delay_ms"]),
            )
        except (TypeError, OverflowError) as e:
            raise ValueError(str(e)) from None
        with self._lock:
            self._settings = settings
        return settings

    def decide(self) -> Decision:
        with self._lock:
            s = self._settings
            fail = s.fail_rate > 0 and self._rng.random() < s.fail_rate
            if fail:
                self.injected += 1
        return Decision(s.fail_status if fail else None, s.retry_after, s.delay_ms / 1000)

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self._settings), "injected": self.injected}

    def reset_count(self) -> None:
        with self._lock:
            self.injected = 0


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise ValueError(f"fail_status must be an integer, got: {value!r}")
    return int(value)
