"""dump_scenario writes files that load back to the same Scenario (and refuses when it cannot)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vlab.scenario import load_scenario, loads_scenario
from vlab.scenario.spec import (
    Arp,
    BridgeSpec,
    Carrier,
    Eapol,
    EndpointSpec,
    Expect,
    ExpectNone,
    Fdb,
    FdbAdd,
    FdbCheckEntry,
    FdbDel,
    FdbEntrySpec,
    FdbFlush,
    FrameSpec,
    HexPayload,
    Igmp,
    IgmpRecord,
    Ipv4,
    Ipv6Ns,
    KernelRange,
    Lldp,
    NdOption,
    Neigh,
    Scenario,
    Send,
    SetBridge,
    SetPort,
    SizePayload,
    Step,
    Stp,
    TextPayload,
    Udp,
    Vlan,
    Wait,
)
from vlab.scenario.writer import dump_scenario

LIBRARY = Path(__file__).parents[2] / "scenarios"

BR0 = BridgeSpec(
    name="br0",
    options=(
        ("ageing_time", 2),
        ("group_fwd_mask", 0x4008),
        ("group_address", "01:80:c2:00:00:05"),
    ),
    vms=(
        EndpointSpec("vm1"),
        EndpointSpec("vm2", mac="52:54:00:00:00:02", port=(("hairpin", True),)),
    ),
    hosts=(EndpointSpec("h1"),),
    uplink=EndpointSpec("up", port=(("state", "learning"), ("cost", 5))),
    fdb=(FdbEntrySpec("02:00:00:00:00:42", "vm2", sticky=True), FdbEntrySpec("vm1.mac", "vm1")),
)

EVERY_FRAME = (
    FrameSpec(src="vm1.mac", dst="vm2.mac", payload=TextPayload("probe")),
    FrameSpec(
        src="vm1.mac",
        dst="br0.mac",
        ethertype=0x0800,
        vlan=Vlan(10, 3),
        payload=HexPayload(b"\x00\xff"),
    ),
    FrameSpec(
        src="02:00:00:00:00:01", dst="vm2.port_mac", vlan=Vlan(4095), payload=SizePayload(1500)
    ),
    FrameSpec(raw=bytes(range(64))),
    FrameSpec(src="vm1.mac", helper=Arp("request", "10.0.0.1", "10.0.0.2")),
    FrameSpec(src="vm1.mac", helper=Arp("reply", "10.0.0.1", "10.0.0.2", "vm1.mac", "vm2.mac")),
    FrameSpec(
        src="vm1.mac",
        dst="vm2.mac",
        helper=Ipv4("10.0.0.1", "10.0.0.2", 3, Udp(1, 2), TextPayload("x")),
    ),
    FrameSpec(src="vm1.mac", helper=Ipv4("10.0.0.1", "239.0.0.1")),
    FrameSpec(src="vm1.mac", helper=Igmp(report="239.1.1.1")),
    FrameSpec(src="vm1.mac", helper=Igmp(leave="239.1.1.1", source_ip="10.0.0.1")),
    FrameSpec(src="vm1.mac", helper=Igmp(query="0.0.0.0")),
    FrameSpec(src="vm1.mac", helper=Igmp(version=3, query="239.1.1.1")),
    FrameSpec(
        src="vm1.mac",
        helper=Igmp(
            version=3,
            records=(
                IgmpRecord("to_in", "239.1.1.1"),
                IgmpRecord("allow", "239.1.1.2", ("10.0.0.1",)),
            ),
        ),
    ),
    FrameSpec(src="vm1.mac", helper=Lldp()),
    FrameSpec(src="vm1.mac", dst="01:80:c2:00:00:0e", helper=Lldp("chassis", "eth0", 10)),
    FrameSpec(src="vm1.mac", helper=Eapol("logoff")),
    FrameSpec(src="vm1.mac", helper=Stp()),
    FrameSpec(src="vm1.mac", helper=Stp("config", 4096, "vm2.mac", 4, 0x8002)),
    FrameSpec(src="vm1.mac", helper=Stp("tcn")),
    FrameSpec(
        src="vm1.mac",
        helper=Ipv6Ns(
            "fe80::1",
            "2001:db8::2",
            options=(NdOption(1, 0), NdOption(1, 1, b"\x52\x54\x00\x00\x00\x01")),
        ),
    ),
    FrameSpec(src="vm1.mac", helper=Ipv6Ns("fe80::1", "2001:db8::2", dst="2001:db8::2")),
)

EVERY_STEP: tuple[Step, ...] = (
    *(Send("vm1", f) for f in EVERY_FRAME),
    Send("h1", "probe", note="named frame"),
    Expect(("vm2",)),
    Expect(("vm2", "up"), frame="probe", only=True, ignore=("IP.ttl",), note="why"),
    ExpectNone(),
    ExpectNone(("vm1",), frame=EVERY_FRAME[0]),
    Fdb(
        "br0",
        contains=(FdbCheckEntry("vm1.mac"), FdbCheckEntry("vm2.mac", "vm2", "learnt")),
        lacks=(FdbCheckEntry("br0.mac", "br0", "local"),),
    ),
    FdbAdd(FdbEntrySpec("02:00:00:00:00:43", "up", static=False)),
    FdbDel("02:00:00:00:00:43", "up"),
    FdbFlush("br0"),
    SetBridge("br0", (("stp", True), ("forward_delay", 2.5))),
    SetBridge("br0", (("group_fwd_mask", 1),), rejected=True),
    SetPort("vm1", (("learning", False), ("locked", True))),
    Carrier("vm2", False),
    Carrier("vm2", True),
    Wait(0.25),
    Wait(3),
    Neigh("br0", "10.0.0.2", "vm2.mac"),
    Neigh("br0", "2001:db8::2", "vm2.mac"),
)

EVERYTHING = Scenario(
    name="everything",
    description="Every construct of the format.\nSecond line: with 'quotes' and: colons.",
    references=("https://lore.kernel.org/netdev/", "850837965af1"),
    xfail=(KernelRange(">=5.18,<6.20", "known bug"), KernelRange("<4.0", "ancient")),
    skip=(KernelRange(">=4.15,<5.8", "hangs"),),
    requires=("stp",),
    bridges=(BR0, BridgeSpec("br1", vms=(EndpointSpec("vm3"),))),
    frames=(("probe", EVERY_FRAME[0]),),
    steps=EVERY_STEP,
)


def test_every_construct_round_trips() -> None:
    text = dump_scenario(EVERYTHING)
    assert loads_scenario(text) == EVERYTHING


def test_dump_reads_like_a_hand_written_file() -> None:
    text = dump_scenario(EVERYTHING)
    assert "- send: {from: h1, frame: probe}" in text
    assert "group_fwd_mask: 0x4008" in text
    assert "vms: [vm3]" in text


def test_dump_refuses_what_a_file_cannot_hold() -> None:
    bad = Scenario(name="x", bridges=(BridgeSpec("bridge name with spaces"),), steps=(Wait(1),))
    with pytest.raises(ValueError, match="not a valid name"):
        dump_scenario(bad)


@pytest.mark.parametrize("path", sorted(LIBRARY.rglob("*.yaml")), ids=lambda p: p.stem)
def test_library_file_round_trips(path: Path) -> None:
    scenario = load_scenario(path)
    assert loads_scenario(dump_scenario(scenario)) == scenario


MACS = st.lists(st.integers(0, 255), min_size=6, max_size=6).map(
    lambda bs: ":".join(f"{(b & 0xFE) if i == 0 else b:02x}" for i, b in enumerate(bs))
)
TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=0, max_size=40)


@settings(max_examples=200, deadline=None)
@given(
    src=MACS,
    dst=MACS,
    text=TEXT,
    note=st.one_of(st.none(), TEXT.filter(bool)),
    name=TEXT.filter(lambda t: t.strip() != "" and t == t.strip()),
    # a duration is 0 or at least the kernel's 0.01 s tick (anything between is refused)
    seconds=st.one_of(st.integers(0, 120), st.just(0.0), st.floats(0.01, 120, allow_nan=False)),
    ethertype=st.integers(0, 0xFFFF),
)
def test_generated_values_survive_quoting(
    src: str, dst: str, text: str, note: str | None, name: str, seconds: float, ethertype: int
) -> None:
    scenario = Scenario(
        name=name,
        description=text,
        bridges=(
            BridgeSpec(
                "br0", options=(("ageing_time", seconds),), vms=(EndpointSpec("vm1", mac=src),)
            ),
        ),
        steps=(
            Send(
                "vm1",
                FrameSpec(src=src, dst=dst, ethertype=ethertype, payload=TextPayload(text)),
                note,
            ),
            Wait(seconds),
        ),
    )
    assert loads_scenario(dump_scenario(scenario)) == scenario


def test_format_example_loads_and_round_trips() -> None:
    doc = (Path(__file__).parents[2] / "vlab" / "scenario" / "FORMAT.md").read_text()
    example = doc.split("```yaml\n", 1)[1].split("```", 1)[0]
    scenario = loads_scenario(example, "FORMAT.md")
    assert scenario.xfail and scenario.steps[-1].note
    assert loads_scenario(dump_scenario(scenario)) == scenario


def test_format_lists_every_option_and_step() -> None:
    from vlab.scenario.read_steps import STEP_KINDS
    from vlab.scenario.vocabulary import BRIDGE_OPTIONS, PORT_OPTIONS

    doc = (Path(__file__).parents[2] / "vlab" / "scenario" / "FORMAT.md").read_text()
    undocumented = [
        name
        for name in (*BRIDGE_OPTIONS, *PORT_OPTIONS, *STEP_KINDS)
        if f"`{name}`" not in doc and f"`{name}:" not in doc
    ]
    assert undocumented == []
