"""Typed keys under which the aiohttp application holds the SFU's long-lived objects."""

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from switchboard_sfu.service import SfuService

SERVICE: web.AppKey["SfuService"] = web.AppKey("sfu_service")
