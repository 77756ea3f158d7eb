"""Production's password hashing is argon2id at argon2-cffi's defaults (RFC 9106's second
recommended profile: 64 MiB, 3 passes, 4 lanes). The other tests swap in the same
algorithm at its smallest cost (tests/conftest.py); this checks the real one."""

from __future__ import annotations

import pytest
from argon2 import Type
from argon2.profiles import RFC_9106_LOW_MEMORY

from service.actions import coaches

pytestmark = pytest.mark.unit


def test_production_hashes_with_argon2id_at_rfc_9106s_profile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.undo()  # the module's own hasher, not the tests' stand-in
    params = coaches._HASHER._parameters
    assert params.type is Type.ID
    assert (params.memory_cost, params.time_cost, params.parallelism) == (
        RFC_9106_LOW_MEMORY.memory_cost,
        RFC_9106_LOW_MEMORY.time_cost,
        RFC_9106_LOW_MEMORY.parallelism,
    )
    assert coaches._HASHER.hash("a password").startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert coaches._DUMMY_HASH.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
