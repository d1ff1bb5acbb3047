"""Does a busy leader keep its Lease on a loaded machine? A leader places `--rooms` Rooms
over and over (its status write for each, followed back through the operator's informer,
each spec parsed as the operator parses it) while `--hogs` CPU-bound processes load the
machine, for `--seconds`; every time it loses its Lease it takes it again in a new term, as
a restarted replica would. Two such leaders run side by side in the same run, on one
local control plane, each in its own namespace with its own Lease: one with a base
checkout's leader election (`--base`, e.g. a worktree of main), one with this checkout's.

With `--flow-schema` both leaders run this checkout, each as the chart's operator
ServiceAccount in its namespace (the admin user is in system:masters, which API Priority and
Fairness exempts: it never queues), placements and Lease calls alike, as the operator's do.
One side's namespace has the chart's leader-election FlowSchema (rendered from the chart for
it), the other's has not: the same busy API server, with and without it.

Prints per side: leases lost, terms taken, placement rounds done, the event loop's lag
(how late a 100 ms timer fired: max and p99), and the load averages. No thresholds.

    git worktree add --detach ../base main
    PATH=$PWD/.venv/bin:$PATH tools/in-netns.sh nice -n 5 .venv/bin/python \
        bench/lease_under_load.py --base ../base [--rooms 500] [--hogs 5] [--seconds 120]
    PATH=$PWD/.venv/bin:$PATH tools/in-netns.sh nice -n 5 .venv/bin/python \
        bench/lease_under_load.py --flow-schema [--concurrency 32] ...
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import logging
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from api_ceiling import placed_status

from switchboard_api.resources import GROUP, ROOM, VERSION
from switchboard_dev.flow_schema import operator_flow_schema
from switchboard_dev.stack import install_crds
from switchboard_localcluster.controlplane import ControlPlane, write_token_kubeconfig
from switchboard_operator.reconcilers.rooms import ROOM_WORKERS

ROOM_SPEC = {"maxParticipants": 2, "emptyTimeoutSeconds": 3600}
CONCURRENCY = ROOM_WORKERS  # as many writes in flight as the operator's Room reconciler
CONCURRENCY_ENV = "LEASE_BENCH_CONCURRENCY"
SOURCES = ("operator", "api")  # the source folders of a checkout the leader imports


async def lead_under_load(kubeconfig: str, namespace: str, rooms: int, seconds: float) -> dict:
    """The child: lead (again and again) while placing `rooms` Rooms over and over."""
    from kubernetes_asyncio import client, config  # noqa: PLC0415 - child process only

    import switchboard_operator  # noqa: PLC0415
    from switchboard_operator.kit.leadership import (  # noqa: PLC0415
        LeaderElector,
        LeadershipLost,
    )

    await config.load_kube_config(config_file=kubeconfig)
    async with client.ApiClient() as api, client.ApiClient() as leases:
        api.rest_client.pool_manager._trust_env = False
        lags: list[float] = []
        placing = asyncio.create_task(place_over_and_over(api, namespace, rooms, lags))
        probing = asyncio.create_task(probe_lag(lags))
        started = time.monotonic()
        terms: list[int | None] = []
        losses = 0
        while (left := seconds - (time.monotonic() - started)) > 0:
            elector = LeaderElector(leases, namespace, "bench-leader", name="bench")
            try:
                await asyncio.wait_for(elector.acquire(), left)
                terms.append(elector.term)
                await asyncio.wait_for(elector.hold(), seconds - (time.monotonic() - started))
            except LeadershipLost:
                losses += 1
            except TimeoutError:
                break
        placing.cancel()
        probing.cancel()
        rounds: int | None = None
        with contextlib.suppress(asyncio.CancelledError):
            rounds = await placing
    return {
        "code": str(Path(switchboard_operator.__file__).parents[2]),
        "losses": losses,
        "terms": terms,
        "rounds": rounds,
        "lag_max": max(lags, default=0.0),
        "lag_p99": statistics.quantiles(lags, n=100, method="inclusive")[98]
        if len(lags) > 1
        else 0.0,
    }


async def place_over_and_over(api: Any, namespace: str, rooms: int, lags: list[float]) -> int:
    """Write every Room's placement status, round after round, following the writes back
    through the operator's informer and parsing each Room's spec as the operator does."""
    from kubernetes_asyncio import client  # noqa: PLC0415

    from switchboard_api.room import RoomSpec  # noqa: PLC0415
    from switchboard_operator.kit.informer import Informer, Resource  # noqa: PLC0415

    objects = client.CustomObjectsApi(api)
    resource = Resource(f"{GROUP}/{VERSION}", ROOM.kind, ROOM.plural, namespace=namespace)
    informer = Informer(api, resource)
    informer.subscribe(
        on_change=lambda key: RoomSpec.model_validate((informer.get(key) or {}).get("spec", {}))
    )
    following = asyncio.create_task(informer.run())
    slots = asyncio.Semaphore(int(os.environ.get(CONCURRENCY_ENV, CONCURRENCY)))
    done = 0

    async def place(name: str, status: dict[str, Any]) -> None:
        async with slots:
            with contextlib.suppress(client.ApiException, TimeoutError, OSError):
                await objects.patch_namespaced_custom_object_status(
                    GROUP,
                    VERSION,
                    namespace,
                    ROOM.plural,
                    name,
                    {"status": status},
                    _content_type="application/merge-patch+json",
                    _request_timeout=10,
                )

    try:
        while True:
            status = placed_status(f"sfu-{done % 7}")
            await asyncio.gather(*(place(f"room-{i:04}", status) for i in range(rooms)))
            done += 1
    except asyncio.CancelledError:
        following.cancel()
        return done


async def probe_lag(lags: list[float], period: float = 0.1) -> None:
    while True:
        before = time.monotonic()
        await asyncio.sleep(period)
        lags.append(time.monotonic() - before - period)


async def watch_renewals(kubeconfig: str, namespaces: list[str], seconds: float) -> dict:
    """Every renewal each leader made, as the API server committed it (a watch on each
    Lease: its renewTime, when the renewal started on the leader's clock, and its term);
    and the API server's own latency for a Lease read, from a process that does nothing
    else (how much of a renewal's time is the API server's, not the leader's)."""
    from kubernetes_asyncio import client, config, watch  # noqa: PLC0415

    await config.load_kube_config(config_file=kubeconfig)
    renewals: dict[str, list[tuple[float, int]]] = {n: [] for n in namespaces}
    latencies: list[float] = []
    async with client.ApiClient() as api:
        leases = client.CoordinationV1Api(api)

        async def follow(namespace: str) -> None:
            while True:
                with contextlib.suppress(client.ApiException, TimeoutError, OSError):
                    async with watch.Watch() as stream:
                        async for event in stream.stream(
                            leases.list_namespaced_lease, namespace, timeout_seconds=60
                        ):
                            spec = event["object"].spec
                            if spec.renew_time is not None and spec.holder_identity:
                                at = spec.renew_time.timestamp()
                                seen = renewals[namespace]
                                if not seen or seen[-1][0] != at:
                                    seen.append((at, spec.lease_transitions or 0))

        async def read() -> None:
            while True:
                before = time.monotonic()
                with contextlib.suppress(client.ApiException, TimeoutError, OSError):
                    await leases.list_namespaced_lease(namespaces[0], _request_timeout=30)
                    latencies.append(time.monotonic() - before)
                await asyncio.sleep(0.5)

        tasks = [asyncio.create_task(follow(n)) for n in namespaces]
        tasks.append(asyncio.create_task(read()))
        await asyncio.sleep(seconds)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "renewals": renewals,
        "reads": len(latencies),
        "read_max": max(latencies, default=0.0),
        "read_median": statistics.median(latencies) if latencies else 0.0,
        "reads_over_1s": sum(1 for x in latencies if x > 1.0),
    }


def renewal_gaps(renewals: list[tuple[float, int]]) -> list[float]:
    """Seconds between the starts of successive renewals in one term (a takeover starts
    counting again)."""
    return [b - a for (a, ta), (b, tb) in itertools.pairwise(renewals) if ta == tb]


async def create_rooms(kubeconfig: str, namespace: str, rooms: int) -> None:
    from kubernetes_asyncio import client, config  # noqa: PLC0415

    await config.load_kube_config(config_file=kubeconfig)
    async with client.ApiClient() as api:
        objects = client.CustomObjectsApi(api)
        slots = asyncio.Semaphore(CONCURRENCY)

        async def one(i: int) -> None:
            body = {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": ROOM.kind,
                "metadata": {"name": f"room-{i:04}", "namespace": namespace},
                "spec": ROOM_SPEC,
            }
            async with slots:
                await objects.create_namespaced_custom_object(
                    GROUP, VERSION, namespace, ROOM.plural, body
                )

        await asyncio.gather(*(one(i) for i in range(rooms)))


def leader_process(
    checkout: Path | None, args: argparse.Namespace, namespace: str, kubeconfig: Path
) -> subprocess.Popen[str]:
    env = dict(os.environ, **{CONCURRENCY_ENV: str(args.concurrency)})
    if checkout is not None:  # its sources first: before this checkout's editable install
        paths = [str(checkout.resolve() / source) for source in SOURCES]
        env["PYTHONPATH"] = os.pathsep.join([*paths, env.get("PYTHONPATH", "")])
    argv = [str(kubeconfig), namespace, str(args.rooms), str(args.seconds)]
    return subprocess.Popen(
        [sys.executable, __file__, "--child", *argv], stdout=subprocess.PIPE, text=True, env=env
    )


def probe_process(
    args: argparse.Namespace, namespace: str, kubeconfig: Path
) -> subprocess.Popen[str]:
    argv = [str(kubeconfig), namespace, "probe", str(args.seconds + 5)]
    return subprocess.Popen(
        [sys.executable, __file__, "--child", *argv], stdout=subprocess.PIPE, text=True
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, required=False, help="base checkout (e.g. main)")
    parser.add_argument("--rooms", type=int, default=500)
    parser.add_argument("--hogs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY, help="placements")
    parser.add_argument(
        "--flow-schema", action="store_true", help="this checkout, without / with the FlowSchema"
    )
    parser.add_argument("--child", nargs=4, metavar=("KUBECONFIG", "NAMESPACE", "ROOMS", "S"))
    args = parser.parse_args()
    if args.child:
        kubeconfig, namespace, rooms, seconds = args.child
        logging.basicConfig(level=logging.WARNING, format=f"%(asctime)s {namespace} %(message)s")
        if rooms == "probe":
            namespaces = namespace.split(",")
            result = asyncio.run(watch_renewals(kubeconfig, namespaces, float(seconds)))
        else:
            result = asyncio.run(lead_under_load(kubeconfig, namespace, int(rooms), float(seconds)))
        print(json.dumps(result), flush=True)
        return
    if args.base is None and not args.flow_schema:
        parser.error("--base or --flow-schema is required")
    sides = (
        {"without": None, "with": None} if args.flow_schema else {"base": args.base, "branch": None}
    )
    with tempfile.TemporaryDirectory() as workdir:
        plane = ControlPlane(workdir=Path(workdir))
        plane.start()
        hogs: list[subprocess.Popen[bytes]] = []
        try:
            install_crds(plane)
            kubeconfigs = {side: plane.kubeconfig for side in sides}
            for side in sides:
                plane.kubectl("create", "namespace", f"lease-bench-{side}")
                asyncio.run(create_rooms(str(plane.kubeconfig), f"lease-bench-{side}", args.rooms))
                if args.flow_schema:
                    kubeconfigs[side] = as_service_account(
                        plane, f"lease-bench-{side}", side == "with"
                    )
            hogs = [
                subprocess.Popen([sys.executable, "-c", "while True: pass"])
                for _ in range(args.hogs)
            ]
            load_before = os.getloadavg()
            leaders = {
                side: leader_process(checkout, args, f"lease-bench-{side}", kubeconfigs[side])
                for side, checkout in sides.items()
            }
            probe = probe_process(
                args, ",".join(f"lease-bench-{side}" for side in sides), plane.kubeconfig
            )
            results = {}
            for side, process in leaders.items():
                out, _ = process.communicate(timeout=args.seconds + 120)
                results[side] = json.loads(out.strip().splitlines()[-1])
            out, _ = probe.communicate(timeout=args.seconds + 120)
            probed = json.loads(out.strip().splitlines()[-1])
            load_after = os.getloadavg()
            waits = queue_waits(plane)
        finally:
            for hog in hogs:
                hog.kill()
                hog.wait()
            plane.stop()
    print(
        f"\n{args.rooms} rooms placed over and over by each leader ({args.concurrency} at a "
        f"time{', as non-exempt users' if args.flow_schema else ''}), {args.hogs} CPU hogs, "
        f"{args.seconds:.0f} s; load average before {load_before[0]:.1f}, "
        f"after {' / '.join(f'{x:.1f}' for x in load_after)} (1/5/15 min)\n"
    )
    print(
        "| side | code | leases lost | terms | renewals | gap between renewal starts "
        "p50 / p99 / max (s) | gaps over the renew deadline (3 s) | placement rounds "
        "| loop lag max / p99 (s) |"
    )
    print("|---" * 9 + "|")
    for side, r in results.items():
        terms = r["terms"] or [None]
        renewed = probed["renewals"][f"lease-bench-{side}"]
        gaps = renewal_gaps([(at, term) for at, term in renewed]) or [0.0]
        p99 = (
            statistics.quantiles(gaps, n=100, method="inclusive")[98] if len(gaps) > 1 else gaps[0]
        )
        print(
            f"| {side} | {r['code']} | {r['losses']} | {len(r['terms'])} "
            f"({terms[0]}..{terms[-1]}) | {len(renewed)} | {statistics.median(gaps):.2f} / "
            f"{p99:.2f} / {max(gaps):.2f} | {sum(1 for g in gaps if g > 3.0)} "
            f"| {r['rounds']} | {r['lag_max']:.2f} / {r['lag_p99']:.2f} |"
        )
    print(
        f"\nthe API server's Lease list from an idle process: median "
        f"{probed['read_median']:.2f} s, max {probed['read_max']:.2f} s, "
        f"{probed['reads_over_1s']} of {probed['reads']} over 1 s (the Lease call timeout)"
    )
    print(
        "\nAPI Priority and Fairness, by FlowSchema and priority level (the API server's metrics):"
    )
    print("| FlowSchema | priority level | requests | mean wait in queue (s) |")
    print("|---|---|---|---|")
    for (schema, level), (n, mean) in sorted(waits.items(), key=lambda kv: -kv[1][0]):
        if n >= 10:
            print(f"| {schema} | {level} | {n:.0f} | {mean:.3f} |")
    first, second = sides
    print(
        f"leases lost, {first} / {second}: {results[first]['losses']} / {results[second]['losses']}"
    )


def as_service_account(plane: ControlPlane, namespace: str, flow_schema: bool) -> Path:
    """A kubeconfig for the chart's operator ServiceAccount in `namespace` (API Priority
    and Fairness puts ServiceAccounts in `workload-low`), allowed everything; with
    `flow_schema`, the chart's FlowSchema, rendered for `namespace`, as `helm install`
    there would install it."""
    schema = operator_flow_schema(namespace)
    account = schema["spec"]["rules"][0]["subjects"][0]["serviceAccount"]["name"]
    plane.kubectl("create", "serviceaccount", account, "-n", namespace)
    plane.kubectl(
        "create",
        "clusterrolebinding",
        namespace,
        "--clusterrole=cluster-admin",
        f"--serviceaccount={namespace}:{account}",
    )
    if flow_schema:
        plane.kubectl("apply", "-f", "-", input=json.dumps(schema))
    token = plane.kubectl("create", "token", account, "-n", namespace, "--duration=2h")
    return write_token_kubeconfig(
        plane.workdir / f"{namespace}.kubeconfig",
        plane.url,
        plane.ca_file,
        account,
        token.stdout.strip(),
    )


def queue_waits(plane: ControlPlane) -> dict[tuple[str, str], tuple[float, float]]:
    """(FlowSchema, priority level): requests and their mean wait in APF's queues (s),
    from the API server's own metrics."""
    totals: dict[tuple[str, str], list[float]] = {}
    pattern = re.compile(
        r"^apiserver_flowcontrol_request_wait_duration_seconds_(sum|count)\{([^}]*)\} (\S+)$",
        re.MULTILINE,
    )
    for kind, labels, value in pattern.findall(plane.get("/metrics").decode()):
        fields = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        key = (fields.get("flow_schema", ""), fields.get("priority_level", ""))
        entry = totals.setdefault(key, [0.0, 0.0])
        entry[0 if kind == "count" else 1] += float(value)
    return {key: (n, total / n if n else 0.0) for key, (n, total) in totals.items()}


if __name__ == "__main__":
    main()
