"""A drop-in for Mixpanel's ``mixpanel`` package: change one import, keep your code.

    from segment_clone.mixpanel import Mixpanel, AsyncBufferedConsumer   # was: from mixpanel ...
    mp = Mixpanel(TOKEN, consumer=AsyncBufferedConsumer())
    mp.track("user-1", "Signed Up", {"plan": "pro"})

``Mixpanel``, ``Consumer``, ``BufferedConsumer``, ``DatetimeSerializer``/``json_dumps`` and
``ServiceAccountCredentials`` behave as upstream's (with its known bugs fixed), and so do the
feature flags (``LocalFlagsConfig``, ``RemoteFlagsConfig``; the ``flags`` extra);
``AsyncBufferedConsumer`` delivers on background threads with the SDK's retry policy.
"""

from __future__ import annotations

import logging

from .async_consumer import AsyncBufferedConsumer
from .buffered import BufferedConsumer
from .client import Mixpanel
from .consumer import Consumer
from .credentials import ServiceAccountCredentials
from .errors import MixpanelAPIError, MixpanelException
from .flags.types import LocalFlagsConfig, RemoteFlagsConfig
from .serialization import DatetimeSerializer, json_dumps
from .version import VERSION

__version__ = VERSION
logger = logging.getLogger("mixpanel")

__all__ = [
    "AsyncBufferedConsumer",
    "BufferedConsumer",
    "Consumer",
    "DatetimeSerializer",
    "LocalFlagsConfig",
    "Mixpanel",
    "MixpanelAPIError",
    "MixpanelException",
    "RemoteFlagsConfig",
    "ServiceAccountCredentials",
    "__version__",
    "json_dumps",
    "logger",
]
