"""Five lines to send events: set the write key (and host), track, flush.

Run against the local collector: ``segment-clone collector --port 8787`` in one terminal, then
``SEGMENT_HOST=http://127.0.0.1:8787 python examples/quickstart.py``.
"""

import os

from demo_report import report

import segment_clone as analytics

analytics.write_key = os.environ.get("SEGMENT_WRITE_KEY", "demo-write-key")
analytics.host = os.environ.get("SEGMENT_HOST", "http://127.0.0.1:8787")

results = [
    analytics.identify("user-42", {"email": "ada@example.com", "plan": "pro"}),
    analytics.track("user-42", "Signed Up", {"plan": "pro", "trial_days": 14}),
    analytics.page("user-42", "Docs", "Quickstart", {"path": "/docs/quickstart"}),
    analytics.screen("user-42", "Onboarding", "Welcome"),
    analytics.group("user-42", "acme-inc", {"name": "Acme Inc.", "employees": 120}),
    analytics.alias("anonymous-7", "user-42"),
]

pending = analytics.shutdown(timeout=10)
stats = analytics.stats()
print(f"quickstart: delivered {stats['delivered']}, dropped {stats['dropped']}, pending {pending}")
report(results, stats)
