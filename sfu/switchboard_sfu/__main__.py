"""`switchboard-sfu`: run one SFU pod's process (config from the environment the operator
sets; see switchboard_api.contract.SfuEnv)."""

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys

from aiohttp import web

from switchboard_api.contract import SFU_ENV_MEANING, SfuEnv
from switchboard_sfu.app import build_app, build_metrics_app
from switchboard_sfu.config import ConfigError, SfuConfig
from switchboard_sfu.looplag import LoopLagMonitor
from switchboard_sfu.peers import PeerChecker, peer_app
from switchboard_sfu.reporter import CapacityReporter
from switchboard_sfu.service import SfuService
from switchboard_tls import ReloadingCertificate, TlsConfigError

log = logging.getLogger("switchboard_sfu")

LOG_FORMAT = "%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"
SHUTDOWN_TIMEOUT_SECONDS = 5.0


def configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, stream=sys.stderr)
    # aiortc and aioice log every packet-level event at INFO/DEBUG.
    for noisy in ("aiortc", "aioice"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


async def serve(config: SfuConfig) -> None:
    """Run until a drain (SIGTERM/SIGINT or the control plane's command) has finished."""
    tls = None if config.tls is None else ReloadingCertificate(config.tls, name="sfu")
    service = SfuService(config)
    runner = web.AppRunner(build_app(service), handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(
        runner,
        config.listen_host,
        config.signalling_port,
        shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS,
        ssl_context=None if tls is None else tls.context,
    )
    await site.start()
    runners = [runner]
    peer = None
    if config.report_url and config.pod_ip and not config.previous_contract:
        # Peers reach this pod at its pod IP; the port serves lease checks and nothing else.
        peer_runner = web.AppRunner(
            peer_app(service.peer_key, service.lease_status), handle_signals=False, access_log=None
        )
        await peer_runner.setup()
        await web.TCPSite(peer_runner, config.listen_host, config.peer_port).start()
        runners.append(peer_runner)
        peer = service.peer_key.endpoint(config.pod_ip, config.peer_port)
    if config.metrics_port is not None:
        metrics_runner = web.AppRunner(
            build_metrics_app(service.metrics.registry), handle_signals=False, access_log=None
        )
        await metrics_runner.setup()
        await web.TCPSite(metrics_runner, config.listen_host, config.metrics_port).start()
        runners.append(metrics_runner)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, service.start_drain, signal.Signals(signum).name)
    tasks = [
        asyncio.ensure_future(LoopLagMonitor(service.metrics.registry).run()),
        asyncio.ensure_future(service.run_drain()),
    ]
    if tls is not None:
        tasks.append(asyncio.ensure_future(tls.watch()))
    if config.report_url:
        reporter = CapacityReporter(
            url=config.report_url,
            interval_seconds=config.report_interval_seconds,
            token_file=config.report_token_file,
            ca_file=config.report_ca_file,
            lease=service.lease,
            build_report=service.build_report,
            handle_response=service.apply_response,
            on_fenced=service.fence,
            is_fenced=lambda: service.lifecycle.fenced,
            registry=service.metrics.registry,
            peer=peer,
            peer_checker=PeerChecker(config.pod_name),
            source_address=config.pod_ip,
            previous_contract=config.previous_contract,
        )
        tasks.append(asyncio.ensure_future(reporter.run()))
    log.info(
        "sfu serving pod=%s uid=%s region=%s listen=%s:%d tls=%s metrics=%s announce=%s "
        "reports=%s peer=%s",
        config.pod_name,
        config.pod_uid,
        config.region,
        config.listen_host,
        config.signalling_port,
        "off" if tls is None else "on",
        config.metrics_port or "off",
        config.announce_address,
        "on" if config.report_url else "off",
        peer.url if peer else "off",
    )
    try:
        await service.stopped.wait()
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await service.close_all()
        for each in reversed(runners):
            await each.cleanup()
        log.info("sfu stopped")


def parse_args(argv: list[str]) -> None:
    """`--help` (no other arguments: the operator configures the SFU through its env)."""
    parser = argparse.ArgumentParser(
        prog="switchboard-sfu",
        description=__doc__,
        epilog="Environment: "
        + " ".join(f"{name.value}: {SFU_ENV_MEANING[name]}" for name in SfuEnv),
    )
    parser.parse_args(argv)


def main() -> None:
    parse_args(sys.argv[1:])
    configure_logging()
    try:
        config = SfuConfig.from_env(os.environ)
        asyncio.run(serve(config))
    except (ConfigError, TlsConfigError) as error:
        log.error("invalid configuration: %s", error)
        sys.exit(2)


if __name__ == "__main__":
    main()
