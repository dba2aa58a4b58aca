"""The pieces of collect's limits: who the client is behind proxies, the account delay, number parsing."""

from __future__ import annotations

import pytest

pytest.importorskip("sqlalchemy", reason="the collect extra is not installed")

from dermkit.collect.auth import LoginLimits
from dermkit.collect.clients import client_id, trusted_networks
from dermkit.collect.parsing import MAX_ID, ascii_digits, row_id, whole_number
from dermkit.core.errors import InputError

PROXIES = trusted_networks(["10.0.0.0/8", "127.0.0.1", "fd00::/8"])


@pytest.mark.parametrize(("peer", "forwarded", "expected"), [
    ("198.51.100.7", ["203.0.113.1"], "198.51.100.7"),  # an untrusted peer's header is ignored
    ("127.0.0.1", [], "127.0.0.1"),  # a proxy that forwarded nothing is the client
    ("127.0.0.1", ["203.0.113.1"], "203.0.113.1"),
    ("10.0.0.2", ["192.0.2.66, 203.0.113.1, 10.0.0.9"], "203.0.113.1"),  # right-most untrusted hop
    ("10.0.0.2", ["192.0.2.66", "203.0.113.1"], "203.0.113.1"),  # several headers read in order
    ("10.0.0.2", ["203.0.113.1, garbage"], "10.0.0.2"),  # what the last proxy got is not an address
    ("10.0.0.2", ["10.0.0.3, 10.0.0.9"], "10.0.0.3"),  # only proxies: the farthest one
    ("::ffff:10.0.0.2", ["203.0.113.1"], "203.0.113.1"),  # IPv4-mapped peers are matched as IPv4
    ("2001:db8:1:2::17", [], "2001:db8:1:2::/64"),  # an IPv6 client counts as its /64
    ("fd00::1", ["2001:db8:1:2:aaaa::1"], "2001:db8:1:2::/64"),
    ("testclient", ["203.0.113.1"], "testclient"),  # not an address at all: its name
    (None, [], "unknown"),
])
def test_client_id(peer: str | None, forwarded: list[str], expected: str) -> None:
    assert client_id(peer, forwarded, PROXIES) == expected


def test_trusted_proxy_must_be_an_address_or_network() -> None:
    with pytest.raises(InputError, match="'trusted_proxy'"):
        trusted_networks(["10.0.0.0/8", "proxy.example"])


def test_account_delay_grows_and_is_capped() -> None:
    limits = LoginLimits(free_failures=2, first_delay=0.5, max_delay=3.0)
    assert [limits.delay(n) for n in range(7)] == [0, 0, 0.5, 1, 2, 3, 3]
    assert limits.delay(10**9) == 3.0  # no overflow however many failures


@pytest.mark.parametrize("text", ["", "²", "³", "¹", "٥", "５", "-1", "+1", "1.0", " 1", "1_000", "0x1", "1" * 20])
def test_only_ascii_digits_are_numbers(text: str) -> None:
    assert ascii_digits(text) is None
    with pytest.raises(InputError, match="'confidence_1'"):
        whole_number(text, "confidence_1")


def test_numbers_and_ids() -> None:
    assert ascii_digits("0042") == 42 and whole_number("5", "monk") == 5
    assert row_id(str(MAX_ID)) == MAX_ID
    assert [row_id(t) for t in (str(MAX_ID + 1), "9" * 25, "0", "abc", "٥")] == [None] * 5
