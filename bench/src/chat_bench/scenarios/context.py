"""What every scenario gets: where the stack is, one HTTP client per service (shared by every
step), the CPU meter, progress output and this run's randomness."""

import random
from dataclasses import dataclass, field

from chat_bench.cpu import CpuMeter
from chat_bench.progress import Progress
from chat_bench.rest import Http
from chat_bench.stack import Endpoints

# REST requests in flight at most: past that the stack is saturated anyway.
MESSAGING_CONNECTIONS = 128


@dataclass
class Context:
    endpoints: Endpoints
    progress: Progress
    rng: random.Random
    # Unique per scenario run; carried in message content so a frame is matched to its send.
    run_tag: str
    # Every online user heartbeats this often (the spec's app: 30 s); 0 turns it off.
    heartbeat_interval: float = 30.0
    # How long to wait for presence to absorb the connection storm before measuring.
    settle_timeout: float = 120.0
    # How many of the last users to connect must show up in presence.
    settle_sample: int = 3
    # Where the stack's database is: only the growth scenario's seeding writes to it.
    mongo_url: str = "mongodb://127.0.0.1:27017/"
    cpu: CpuMeter = field(default_factory=CpuMeter)
    messaging: Http = field(init=False)
    presence: Http = field(init=False)
    edge: Http = field(init=False)

    def __post_init__(self) -> None:
        self.messaging = Http(self.endpoints.messaging, connections=MESSAGING_CONNECTIONS)
        self.presence = Http(self.endpoints.presence, connections=8)
        self.edge = Http(self.endpoints.edge, connections=4)

    async def close(self) -> None:
        for http in (self.messaging, self.presence, self.edge):
            await http.close()
