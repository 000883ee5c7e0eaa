"""The one way controllers, invokers and tools connect to Redis."""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, TimeoutError

CONNECTIONS = 1024
WAIT_S = 30.0  # for a free connection, when every request in flight holds one
RETRIES = 2  # a pooled connection Redis closed (it restarted) fails once, then reconnects


def connect(url: str) -> Redis:
    """A Redis client whose pool waits for a free connection rather than failing when every
    request in flight holds one, and which retries a command on a new connection when its
    pooled one was closed (after Redis restarted): without that, each of up to `CONNECTIONS`
    stale connections would fail a request once it is next used."""
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=CONNECTIONS,
        timeout=WAIT_S,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), RETRIES),
        retry_on_error=[ConnectionError, TimeoutError],
    )
    return Redis.from_pool(pool)  # closes the pool with the client
