"""The fault lab: a vehicle, the radio link between, and the center, as three network
namespaces, with faults applied on the link at run time.

    vehicle ns            link ns (faults)                   core ns
    veh0 10.200.0.2 <---> lv0 ==[linkd]== lc0 <---> core0 10.200.0.1

Each side's veth pair joins its namespace to the link namespace, where the link emulator
(tests/lab/linkd.py) copies frames between lv0 and lc0 through one fault model per
direction: uplink = vehicle -> core, downlink = core -> vehicle. The vehicle has no default
route; both ends share a /24. Only 10.200.0.0/16 is used, and only inside these namespaces.
This kernel has no netem, so the user-space emulator is the only path, on every machine
alike.
"""

from __future__ import annotations

import ipaddress
import json
import os
import select
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any, Literal, TypeVar

from tests.lab.control import DirectionName, LinkState
from tests.lab.model import Faults
from tests.lab.netns import LabError, NamespaceWorker, exec_argv, sh, write_sysctl

T = TypeVar("T")
Where = Literal["vehicle", "link", "core"]

ROOT = Path(__file__).parents[2]
LAB_NET = ipaddress.ip_network("10.200.0.0/16")
PREFIX = 24
CORE_ADDRESS = "10.200.0.1"
VEHICLE_ADDRESS = "10.200.0.2"
VEHICLE_IFACE, CORE_IFACE = "veh0", "core0"
LINK_VEHICLE_SIDE, LINK_CORE_SIDE = "lv0", "lc0"
CONTROL_TIMEOUT_S = 5.0
STOP_TIMEOUT_S = 5.0


class FaultLab:
    """Build with `start()`, always `close()`; the `fault_lab` fixture does both."""

    def __init__(self, tag: str | None = None) -> None:
        tag = tag or uuid.uuid4().hex[:8]
        self.namespaces: dict[Where, str] = {
            "vehicle": f"rtcc-veh-{tag}",
            "link": f"rtcc-link-{tag}",
            "core": f"rtcc-core-{tag}",
        }
        self.core_address = CORE_ADDRESS
        self.vehicle_address = VEHICLE_ADDRESS
        self._created: list[str] = []
        self._processes: list[subprocess.Popen[Any]] = []
        self._cleanups: list[Callable[[], object]] = []
        self._linkd: subprocess.Popen[str] | None = None
        self._workers: dict[Where, NamespaceWorker] = {}

    # ---- life cycle -------------------------------------------------------------------

    def start(self) -> None:
        for where, namespace in self.namespaces.items():
            sh("ip", "netns", "add", namespace)
            self._created.append(namespace)
            self._workers[where] = NamespaceWorker(namespace)
            sh("ip", "-n", namespace, "link", "set", "lo", "up")
            # No IPv6 chatter (router solicitations, DAD) on a link whose frames are counted.
            for key in ("all", "default"):
                self.call(where, write_sysctl, f"net.ipv6.conf.{key}.disable_ipv6", "1")
        link = self.namespaces["link"]
        sides: tuple[tuple[Where, str, str], ...] = (
            ("vehicle", VEHICLE_IFACE, LINK_VEHICLE_SIDE),
            ("core", CORE_IFACE, LINK_CORE_SIDE),
        )
        for side, inner, outer in sides:
            namespace = self.namespaces[side]
            sh("ip", "-n", namespace, "link", "add", inner, "type", "veth", "peer", "name", outer)
            sh("ip", "-n", namespace, "link", "set", outer, "netns", link)
            # One segment per frame: the emulator drops, delays and meters packets as they
            # would be on the air, not 64 KB offload bursts. This works without ethtool.
            sh("ip", "-n", namespace, "link", "set", inner, "gso_max_segs", "1", "up")
            sh("ip", "-n", link, "link", "set", outer, "gso_max_segs", "1", "promisc", "on", "up")
            for where, iface in ((side, inner), ("link", outer)):
                self._offloads_off(where, iface)
        self._address("vehicle", "add", self.vehicle_address)
        self._address("core", "add", self.core_address)
        self._linkd = subprocess.Popen(
            exec_argv(
                link,
                [sys.executable, "-m", "tests.lab.linkd", LINK_VEHICLE_SIDE, LINK_CORE_SIDE],
            ),
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._read_state()  # its first line: forwarding

    def close(self) -> None:
        """Everything this lab started or built goes, whatever state it is in."""
        errors: list[str] = []
        for cleanup in reversed(self._cleanups):
            try:
                cleanup()
            except Exception as exc:
                errors.append(f"cleanup: {exc}")
        self._cleanups.clear()
        for proc in reversed(self._processes):
            stop_process(proc)
        self._processes.clear()
        for worker in self._workers.values():
            worker.close()  # children it started that asked to die with it get SIGTERM
        self._workers.clear()
        if self._linkd is not None:
            assert self._linkd.stdin is not None
            self._linkd.stdin.close()  # end of its control channel: it exits
            stop_process(self._linkd)
            self._linkd = None
        for namespace in reversed(self._created):
            done = subprocess.run(
                ["ip", "netns", "del", namespace], check=False, capture_output=True
            )
            if done.returncode != 0:
                errors.append(f"ip netns del {namespace}: {done.stderr.decode().strip()}")
        self._created.clear()
        if errors:
            raise LabError("; ".join(errors))

    def __enter__(self) -> FaultLab:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # ---- the link ---------------------------------------------------------------------

    def set_faults(self, faults: Faults, direction: DirectionName = "both") -> LinkState:
        """Replace the faults of one or both directions (a cut stays as it is)."""
        return self._control(
            {"op": "set", "direction": direction, "faults": faults.model_dump(mode="json")}
        )

    def clear_faults(self) -> LinkState:
        self.restore()
        return self.set_faults(Faults())

    def cut(self, direction: DirectionName = "both") -> LinkState:
        """Drop every frame, including those already on their way; `state.now` is when."""
        return self._control({"op": "cut", "direction": direction})

    def restore(self, direction: DirectionName = "both") -> LinkState:
        return self._control({"op": "restore", "direction": direction})

    def stats(self) -> LinkState:
        return self._control({"op": "stats"})

    def handover(self, new_address: str) -> None:
        """The vehicle moves to another address on the same /24 (a new cell's lease): the
        old address goes, and with it every connection bound to it."""
        check_lab_address(new_address)
        # Old first: deleting a primary address would also take a new secondary with it.
        self._address("vehicle", "del", self.vehicle_address)
        self._address("vehicle", "add", new_address)
        self.vehicle_address = new_address

    # ---- running things inside ----------------------------------------------------------

    def spawn(
        self,
        where: Where,
        argv: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        stdin: int | IO[Any] | None = subprocess.DEVNULL,
        stdout: int | IO[Any] | None = subprocess.DEVNULL,
        stderr: int | IO[Any] | None = subprocess.DEVNULL,
        text: bool = True,
    ) -> subprocess.Popen[str]:
        """A process in a namespace (`ip netns exec`), stopped when the lab closes. `env`
        adds to this process's environment."""
        proc = subprocess.Popen(
            exec_argv(self.namespaces[where], argv),
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            text=text,
        )
        self._processes.append(proc)
        return proc

    def spawn_python(self, where: Where, *args: str, **kwargs: Any) -> subprocess.Popen[str]:
        """`python ARGS...` with this interpreter, from the repository root."""
        return self.spawn(where, [sys.executable, *args], **kwargs)

    def call(self, where: Where, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` from inside a namespace, in this process: sockets it opens and
        processes it starts live there (see tests/lab/netns.py)."""
        return self._workers[where].call(fn, *args)

    def adopt(self, proc: subprocess.Popen[Any]) -> subprocess.Popen[Any]:
        """Stop `proc` when the lab closes (for processes started through `call`)."""
        self._processes.append(proc)
        return proc

    def on_close(self, cleanup: Callable[[], object]) -> None:
        """Run `cleanup` when the lab closes, before its processes are stopped."""
        self._cleanups.append(cleanup)

    def ip(self, where: Where, *args: str) -> str:
        return sh("ip", "-n", self.namespaces[where], *args)

    # ---- internals ----------------------------------------------------------------------

    def _offloads_off(self, where: Where, iface: str) -> None:
        """Where ethtool exists, receive offload goes too (a veth has it off by default)."""
        if shutil.which("ethtool") is not None:
            subprocess.run(
                exec_argv(
                    self.namespaces[where],
                    ["ethtool", "-K", iface, "gro", "off", "gso", "off", "tso", "off"],
                ),
                check=False,
                capture_output=True,
            )

    def _address(self, where: Where, action: str, address: str) -> None:
        check_lab_address(address)
        iface = VEHICLE_IFACE if where == "vehicle" else CORE_IFACE
        self.ip(where, "addr", action, f"{address}/{PREFIX}", "dev", iface)

    def _control(self, request: dict[str, Any]) -> LinkState:
        linkd = self._linkd
        if linkd is None or linkd.stdin is None:
            raise LabError("the link emulator is not running")
        linkd.stdin.write(json.dumps(request) + "\n")
        linkd.stdin.flush()
        state = self._read_state()
        if not state.ok:
            raise LabError(f"link emulator refused {request}: {state.error}")
        return state

    def _read_state(self) -> LinkState:
        linkd = self._linkd
        assert linkd is not None and linkd.stdout is not None
        ready, _, _ = select.select([linkd.stdout], [], [], CONTROL_TIMEOUT_S)
        line = linkd.stdout.readline() if ready else ""
        if not line:
            raise LabError(f"the link emulator did not answer (exit code {linkd.poll()})")
        return LinkState.model_validate_json(line)


def check_lab_address(address: str) -> None:
    if ipaddress.ip_address(address) not in LAB_NET:
        raise LabError(f"{address} is outside the lab range {LAB_NET}")


def stop_process(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
