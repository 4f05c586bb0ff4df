"""The event every benchmark sends: one name, 1,000 user ids and ten realistic properties.

Standard library only: the drivers import it inside each peer's virtualenv.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

EVENT = "Order Completed"
USER_IDS = [f"user-{i:05d}" for i in range(1000)]


def properties() -> dict[str, Any]:
    """Ten properties: strings, ints, floats, a bool, a nested dict with a list and a datetime."""
    return {
        "order_id": "ord_7f3a9c2e41",
        "currency": "EUR",
        "coupon": "SPRING-24",
        "quantity": 3,
        "loyalty_points": 1250,
        "total": 149.97,
        "discount": 0.15,
        "first_order": False,
        "cart": {
            "store": "web-eu",
            "items": [
                {"sku": "SKU-1001", "price": 49.99, "qty": 1},
                {"sku": "SKU-2002", "price": 49.99, "qty": 2},
            ],
        },
        "ordered_at": datetime(2024, 5, 17, 14, 3, 12, 250000, tzinfo=timezone.utc),
    }
