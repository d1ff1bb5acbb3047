"""Pod addresses: one loopback address per pod, reused as late as possible."""

import pytest

from switchboard_localcluster.nodeagent.addresses import AddressesExhausted, PodAddressPool


def test_each_pod_gets_its_own_address_and_keeps_it() -> None:
    pool = PodAddressPool("127.10.0.0/29", reserved=frozenset({"127.10.0.1"}))
    first = pool.allocate("pod-a")
    second = pool.allocate("pod-b")
    assert first != second
    assert "127.10.0.1" not in (first, second)
    assert pool.allocate("pod-a") == first


def test_released_addresses_are_reused_last() -> None:
    pool = PodAddressPool("127.10.0.0/29")
    first = pool.allocate("a")
    pool.release("a")
    assert pool.allocate("b") != first


def test_exhaustion_is_reported() -> None:
    pool = PodAddressPool("127.10.0.0/30")  # two usable hosts
    pool.allocate("a")
    pool.allocate("b")
    with pytest.raises(AddressesExhausted):
        pool.allocate("c")


def test_a_pod_keeps_the_address_it_reports_when_free() -> None:
    pool = PodAddressPool("127.10.0.0/24")
    assert pool.allocate("a", preferred="127.10.0.77") == "127.10.0.77"
    assert pool.allocate("b", preferred="127.10.0.77") != "127.10.0.77"
    assert pool.allocate("c", preferred="10.0.0.5") != "10.0.0.5"


def test_only_loopback_ranges() -> None:
    with pytest.raises(ValueError, match=r"127\.0\.0\.0/8"):
        PodAddressPool("10.0.0.0/24")
