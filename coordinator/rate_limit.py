"""A per-site rate limit on submissions: a token bucket per site, so one site flooding the intake
is refused cheaply (RESOURCE_EXHAUSTED, which nodes retry later by themselves) and every other
site's submissions go on as before."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from coordinator.errors import RateLimited

DEFAULT_BURST = 120  # submissions a site may send at once
DEFAULT_PER_MINUTE = 60.0  # and then on average (a lab sends a few a day)


class SiteRateLimit:
    """`take(site)` refuses with RateLimited once a site has used its burst and sends faster
    than `per_minute`; per_minute 0 switches the limit off (load tests)."""

    def __init__(
        self,
        per_minute: float = DEFAULT_PER_MINUTE,
        burst: int = DEFAULT_BURST,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_minute < 0 or burst < 1:
            raise ValueError("the rate must be 0 (no limit) or more, the burst 1 or more")
        self.per_second = per_minute / 60.0
        self.burst = burst
        self.clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # site: (tokens, at)

    @property
    def enabled(self) -> bool:
        return self.per_second > 0

    def take(self, site_id: str) -> None:
        if not self.enabled:
            return
        with self._lock:
            now = self.clock()
            tokens, at = self._buckets.get(site_id, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * self.per_second)
            if tokens < 1:
                self._buckets[site_id] = (tokens, now)
                wait = (1 - tokens) / self.per_second
                raise RateLimited(
                    f"site {site_id} sent more than {self.burst} submissions at "
                    f"{60 * self.per_second:g} a minute; wait {wait:.0f} s (the node retries by "
                    "itself). If this lab really needs more, the centre raises `serve --site-rate`"
                )
            self._buckets[site_id] = (tokens - 1, now)
