"""Geographic coordinates, used for a Region's location and a Room's participants."""

from pydantic import Field

from switchboard_api._camel import CamelModel


class GeoLocation(CamelModel):
    """A point on Earth in WGS 84 decimal degrees."""

    latitude: float = Field(
        ge=-90, le=90, description="Latitude in decimal degrees, -90 (south) to 90 (north)."
    )
    longitude: float = Field(
        ge=-180, le=180, description="Longitude in decimal degrees, -180 (west) to 180 (east)."
    )
