"""The project's settings with short broadcast leases, for a ``db_worker`` that a
test kills: a stalled chunk is picked up in seconds, not in half a minute."""

from config.settings import *  # noqa: F403

BROADCAST_CHUNK_LEASE_SECONDS = 2
BROADCAST_SWEEP_SECONDS = 1
