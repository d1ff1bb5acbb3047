"""Great-circle distance between two points on Earth, for choosing the nearest region."""

from __future__ import annotations

import math
from typing import Final

from switchboard_api.geo import GeoLocation

EARTH_MEAN_RADIUS_KM: Final = 6371.0088
"""IUGG mean Earth radius; a sphere is accurate to about 0.5 %, plenty to rank regions."""


def great_circle_km(a: GeoLocation, b: GeoLocation) -> float:
    """Distance in kilometres along the surface of a spherical Earth (haversine)."""
    lat1, lat2 = math.radians(a.latitude), math.radians(b.latitude)
    dlat = lat2 - lat1
    dlon = math.radians(b.longitude - a.longitude)
    h = math.sin(dlat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlon / 2) ** 2
    # min() guards asin against rounding just above 1 for antipodal points.
    return 2 * EARTH_MEAN_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))
