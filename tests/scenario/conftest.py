"""A stand-in lab that behaves like a hub, for testing the runner without a kernel.

Every frame sent reaches every other endpoint, nothing is learnt and options are recorded. That is
enough to check how the runner maps steps onto the API and how it reports failures; the real
bridge behaviour is checked by running the scenario library under ``--vlab``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from vlab.bridge import FdbEntry
from vlab.errors import LabError


@dataclass
class HubEndpoint:
    hub: HubLab
    name: str
    mac: str
    port: str
    tap_mac: str
    inbox: list[bytes] = field(default_factory=list)
    up: bool = True

    def send(self, frame: Any) -> None:
        for other in self.hub.endpoints:
            if other is not self:
                other.inbox.append(bytes(frame))

    def expect(self, frame: Any, timeout: float = 1.0, mask: Any = None) -> Any:
        data = bytes(frame)
        if data in self.inbox:
            self.inbox.remove(data)
            return data
        raise AssertionError(f"{self.name} did not receive {data.hex()}")

    def expect_none(self, frame: Any = None) -> None:
        hits = self.inbox if frame is None else [f for f in self.inbox if f == bytes(frame)]
        if hits:
            raise AssertionError(f"{self.name} received {len(hits)} unexpected frame(s)")

    def set_carrier(self, up: bool) -> None:
        self.hub.log.append(f"carrier {self.name} {up}")
        self.up = up


@dataclass
class HubPort:
    hub: HubLab
    name: str

    def set(self, **options: Any) -> None:
        if options.get("priority") == 63:
            raise LabError("the hub refuses priority 63")
        self.hub.log.append(f"port {self.name} {options}")

    def options(self) -> dict[str, Any]:
        down = any(e.port == self.name and not e.up for e in self.hub.endpoints)
        return {"state": "disabled" if down else "forwarding"}


@dataclass
class HubBridge:
    hub: HubLab
    name: str
    mac: str = "02:00:00:00:0b:00"
    rows: list[FdbEntry] = field(default_factory=list)

    def fdb_entries(self) -> list[FdbEntry]:
        ports = [
            FdbEntry(f"fe:00:00:00:00:{n:02x}", f"p{n}", False, False, local=True, locked=False)
            for n in range(1, 4)
        ]
        return self.rows + ports

    def set(self, **options: Any) -> None:
        self.hub.log.append(f"bridge {options}")

    def port(self, endpoint: Any) -> HubPort:
        return HubPort(self.hub, endpoint.port)

    def fdb_add(self, mac: str, endpoint: Any, static: bool = True, sticky: bool = False) -> None:
        self.rows.append(FdbEntry(mac, endpoint.port, static, sticky, local=False, locked=False))

    def fdb_del(self, mac: str, endpoint: Any) -> None:
        self.rows = [r for r in self.rows if (r.mac, r.port) != (mac, endpoint.port)]

    def fdb_flush(self) -> None:
        self.rows = [r for r in self.rows if r.static]

    def neigh_add(self, ip: str, mac: str) -> None:
        self.hub.log.append(f"neigh {ip} {mac}")


@dataclass
class HubLab:
    endpoints: list[HubEndpoint] = field(default_factory=list)
    log: list[str] = field(default_factory=list)

    def bridge(self, name: str, **options: Any) -> HubBridge:
        self.log.append(f"bridge {name} {options}")
        return HubBridge(self, name)

    def _add(self, name: str, mac: str | None) -> HubEndpoint:
        n = len(self.endpoints) + 1
        ep = HubEndpoint(
            self, name, mac or f"52:54:00:00:00:{n:02x}", f"p{n}", f"fe:00:00:00:00:{n:02x}"
        )
        self.endpoints.append(ep)
        return ep

    def vm(
        self, name: str, bridge: Any, mac: str | None = None, mtu: int | None = None
    ) -> HubEndpoint:
        return self._add(name, mac)

    def host(
        self, name: str, bridge: Any, mac: str | None = None, mtu: int | None = None
    ) -> HubEndpoint:
        return self._add(name, mac)

    def uplink(
        self,
        bridge: Any,
        mac: str | None = None,
        mtu: int | None = None,
        name: str | None = None,
    ) -> HubEndpoint:
        return self._add(name or "uplink", mac)

    def settle(self) -> None:
        pass


@pytest.fixture
def hub() -> HubLab:
    """A fresh stand-in lab."""
    return HubLab()
