"""Pseudonymisation at the door: patient ids become keyed hashes before anything is stored."""

from __future__ import annotations

import hashlib
import hmac


class Pseudonymiser:
    """Keyed hash (HMAC-SHA256) of patient ids with the site-local secret made at `init`."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret
        self._cache: dict[str, str] = {}

    def __call__(self, patient_id: str) -> str:
        key = self._cache.get(patient_id)
        if key is None:
            if len(self._cache) > 20_000:  # an export lists a patient's results together
                self._cache.clear()
            key = hmac.new(self._secret, patient_id.encode("utf-8"), hashlib.sha256).hexdigest()[
                :32
            ]
            self._cache[patient_id] = key
        return key

    def __reduce__(self):  # to the validation worker: the secret, not the cache
        return Pseudonymiser, (self._secret,)
