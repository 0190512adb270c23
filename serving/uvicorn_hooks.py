"""What the drain needs from uvicorn that it offers no public way to get: the one module that reaches
into uvicorn's internals for it (the transport's protocol subclass is serving/transport.py).
`tests/test_private_hooks.py` fails when an upgrade changes either.
"""

from __future__ import annotations

import asyncio
import functools
import signal
from collections.abc import Callable

import uvicorn


def server_behind_sigterm() -> uvicorn.Server | None:
    """uvicorn installs its Server's bound method as the SIGTERM handler: that Server, or None."""
    server = getattr(signal.getsignal(signal.SIGTERM), "__self__", None)
    return server if isinstance(server, uvicorn.Server) else None


def http_protocol_factory(server: uvicorn.Server) -> Callable[[], asyncio.Protocol]:
    """A new connection's protocol, built as uvicorn's own accept path builds it."""
    # uvicorn's Config types the class as a bare asyncio.Protocol; its HTTP protocols take these.
    protocol_class: Callable[..., asyncio.Protocol] = server.config.http_protocol_class
    return functools.partial(
        protocol_class, config=server.config, server_state=server.server_state, app_state=server.lifespan.state
    )
