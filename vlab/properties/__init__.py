"""A stateful property test of the bridge: the kernel and :class:`BridgeModel`, step by step.

:class:`ForwardingMachine` sends generated frames from generated endpoints into a real Linux bridge
and, after every send, checks that exactly the endpoints the reference model names received the
frame, each exactly once, and every other endpoint nothing. Between sends it reconfigures ports and
the bridge, edits the fdb and pulls cables, applying each change to both sides and comparing the
forwarding databases. ``TestBridge = ForwardingMachine.TestCase`` turns it into a test.

Speed is the design constraint (hundreds of steps per second), which decides most of the shape:

- one lab per test run, built by the first example and reset between examples (fdb flush, static
  entries deleted, changed ports and bridge options put back, queues drained), never rebuilt;
- a step is one frame write, one :meth:`Lab.settle` and a byte comparison of what the endpoints'
  queues hold, with no scapy parsing and no netlink beyond the settle; the fdb is dumped only
  after a reconfiguration or when the model says a send changed it;
- frames are generated as bytes around symbolic addresses (``vm1.mac``, ``h1.port_mac``), so the
  same draw means the same thing in every lab and in the saved reproducer.

Endpoint and bridge MACs are pinned (``vm1`` is 52:54:00:00:00:01...), which makes a failure
replayable on a fresh lab. On a failure, the final (shrunk) example is turned into a pytest test
and a scenario file; both state what the *model* expects, so against the kernel they fail at the
step where the machine failed. Not exercised: ageing (see :meth:`ForwardingMachine.fdb_flush`).
"""

from vlab.properties.livelab import LiveLab
from vlab.properties.machine import FDB_CHECK_EVERY, ForwardingMachine
from vlab.properties.ops import (
    BridgeChange,
    Carrier,
    FdbAdd,
    FdbDel,
    FdbFlush,
    FrameDraw,
    Op,
    PortChange,
    Sent,
)
from vlab.properties.reproducer import Failure, reproduce
from vlab.properties.runner import run_machine
from vlab.properties.steps import (
    BRIDGE_CHANGES,
    BROADCAST,
    MTU_PAYLOAD,
    MULTICAST_MACS,
    OTHER_MACS,
    STEP_KINDS,
    UNKNOWN_MAC,
    Action,
    StepDecoder,
)
from vlab.properties.topology import (
    BRIDGE,
    BRIDGE_DEFAULTS,
    BRIDGE_MAC,
    DEFAULT_PORT,
    MachineTopology,
    Options,
)

__all__ = [
    "BRIDGE",
    "BRIDGE_CHANGES",
    "BRIDGE_DEFAULTS",
    "BRIDGE_MAC",
    "BROADCAST",
    "DEFAULT_PORT",
    "FDB_CHECK_EVERY",
    "MTU_PAYLOAD",
    "MULTICAST_MACS",
    "OTHER_MACS",
    "STEP_KINDS",
    "UNKNOWN_MAC",
    "Action",
    "BridgeChange",
    "Carrier",
    "Failure",
    "FdbAdd",
    "FdbDel",
    "FdbFlush",
    "ForwardingMachine",
    "FrameDraw",
    "LiveLab",
    "MachineTopology",
    "Op",
    "Options",
    "PortChange",
    "Sent",
    "StepDecoder",
    "reproduce",
    "run_machine",
]
