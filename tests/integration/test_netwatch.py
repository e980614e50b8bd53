"""The network change watch against a real kernel: in a network namespace made here (a veth
pair, both ends up), adding an address and then deleting it each give one debounced
callback carrying that address; loopback changes give none. Needs root and iproute2 (the
namespace is removed at the end)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tests.helpers import ROOT, wait_for

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("ip"),
    reason="needs root and iproute2 for a network namespace",
)

ADDRESS = "10.200.9.7"
FENCE = "10.200.9.99"


def ip(*args: str) -> str:
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def netns(unique: str) -> Iterator[str]:
    name = f"rn{unique[:6]}"
    try:
        ip("netns", "add", name)
        ip("-n", name, "link", "set", "lo", "up")
        ip("-n", name, "link", "add", "va", "type", "veth", "peer", "name", "vb")
        ip("-n", name, "link", "set", "va", "up")
        ip("-n", name, "link", "set", "vb", "up")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


@pytest.fixture
async def watch(netns: str) -> AsyncIterator[asyncio.subprocess.Process]:
    # IPv6 duplicate address detection on the new link ends with notifications of its
    # own; let it finish first, so what the test sees is what it did.
    await wait_for(lambda: not ip("-n", netns, "-6", "addr", "show", "tentative").strip())
    proc = await asyncio.create_subprocess_exec(
        "ip",
        "netns",
        "exec",
        netns,
        sys.executable,
        "-m",
        "tests.integration.netwatch_child",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert await line(proc) == {"ready": True}
        yield proc
    finally:
        if proc.returncode is None:
            proc.terminate()
        await proc.wait()


async def line(proc: asyncio.subprocess.Process, timeout: float = 10.0) -> Any:
    assert proc.stdout is not None
    raw = await asyncio.wait_for(proc.stdout.readline(), timeout)
    assert raw, "the watch process ended"
    return json.loads(raw)


def addresses(callback: Any, action: str) -> set[str]:
    return {
        c["address"]
        for c in callback["changes"]
        if c["kind"] == "address" and c["action"] == action
    }


async def test_adding_and_deleting_an_address_each_give_one_callback(
    netns: str, watch: asyncio.subprocess.Process
) -> None:
    va = int(ip("-n", netns, "-o", "link", "show", "va").split(":")[0])

    ip("-n", netns, "addr", "add", f"{ADDRESS}/24", "dev", "va")
    added = await line(watch)
    assert addresses(added, "new") == {ADDRESS}
    assert {"kind": "address", "action": "new", "ifindex": va, "address": ADDRESS} in [
        {k: c[k] for k in ("kind", "action", "ifindex", "address")} for c in added["changes"]
    ]
    # The prefix route came in the same burst (the local-table routes are not reported).
    assert [c["address"] for c in added["changes"] if c["kind"] == "route"] == ["10.200.9.0"]

    # The next line is the deletion's: the addition gave one callback, not more.
    ip("-n", netns, "addr", "del", f"{ADDRESS}/24", "dev", "va")
    deleted = await line(watch)
    assert addresses(deleted, "del") == {ADDRESS}
    assert addresses(deleted, "new") == set()

    # Loopback only: no callback. Then a change of its own is the next line, so neither the
    # deletion nor the loopback change gave another one.
    ip("-n", netns, "addr", "add", "127.0.0.5/8", "dev", "lo")
    ip("-n", netns, "addr", "add", f"{FENCE}/24", "dev", "va")
    fence = await line(watch)
    assert addresses(fence, "new") == {FENCE}
    assert not [c for c in fence["changes"] if c["ifindex"] != va]


async def test_losing_the_carrier_is_one_callback(
    netns: str, watch: asyncio.subprocess.Process
) -> None:
    va = int(ip("-n", netns, "-o", "link", "show", "va").split(":")[0])
    ip("-n", netns, "link", "set", "vb", "down")  # va's peer: va keeps IFF_UP, loses carrier
    down = await line(watch)
    links = {c["ifindex"]: c["up"] for c in down["changes"] if c["kind"] == "link"}
    assert links[va] is False
    ip("-n", netns, "addr", "add", f"{FENCE}/24", "dev", "va")
    assert addresses(await line(watch), "new") == {FENCE}  # nothing else came in between
