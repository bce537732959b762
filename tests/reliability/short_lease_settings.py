"""The project's settings with short broadcast leases, for a worker that a test
kills: a stalled chunk is picked up in seconds, not in half a minute. Small chunks
too: three chunks need 50 contacts, not 2,050."""

from config.settings import *  # noqa: F403

BROADCAST_CHUNK_LEASE_SECONDS = 2
BROADCAST_SWEEP_SECONDS = 1
BROADCAST_CHUNK_SIZE = 20
