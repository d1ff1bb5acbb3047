"""Benchmark: SFU CPU per forwarded packet, RTP forwarding core vs aiortc MediaRelay.

For each mode and subscriber count, an SFU process and a load generator process
(bench/forwarding_load.py: a publisher replaying a pre-encoded 640x360 VP8 clip at ~2.3 Mbit/s
plus N subscribers counting packets without decoding) run side by side; after a warm-up the
SFU's CPU (all threads, from /proc) and the packets delivered are measured over a window.
Modes: `forward` (this project's forwarding core, native fast path when built),
`forward-python` (the same core on its pure-Python path), `relay` (aiortc MediaRelay: decode
once, encode per subscriber), `janus` (Janus Gateway's VideoRoom, if the `janus` package is
installed), and the simulcast rows `simulcast` and `janus-simulcast`: the publisher sends three
layers of the clip (full, half and quarter size, with RID header extensions) and each
subscriber gets the full-size one, so three layers come in and one goes out per subscriber.

Run as root: it isolates itself in a private network namespace with a veth pair (Janus ignores
loopback interfaces), SFUs on 10.77.0.1 and the load generator on 10.77.0.2:
    python bench/sfu_forwarding.py [--subscribers 1 4 16 64] [--modes forward relay janus]
        [--window 10] [--profile 16]
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import janus_gateway

HERE = Path(__file__).resolve().parent
SFU_ADDRESS = "10.77.0.1"
LOAD_ADDRESS = "10.77.0.2"
# Both veth ends live in one namespace. Janus binds its sockets to the device, so its packets
# really cross the pair, where Linux would drop them for carrying a source address of its own.
NETNS_SETUP = " && ".join(
    [
        "ip link set lo up",
        "ip link add veth0 type veth peer name veth1",
        f"ip addr add {SFU_ADDRESS}/24 dev veth0",
        f"ip addr add {LOAD_ADDRESS}/24 dev veth1",
        "ip link set veth0 up",
        "ip link set veth1 up",
        *(
            f"sysctl -qw net.ipv4.conf.{i}.accept_local=1 net.ipv4.conf.{i}.rp_filter=0"
            for i in ("all", "default", "veth0", "veth1")
        ),
    ]
)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
NETNS_MARK = "SWITCHBOARD_BENCH_NETNS"


SIMULCAST_MODES = {"simulcast": "forward", "janus-simulcast": "janus"}
"""Simulcast rows: the SFU mode they run, with a publisher sending three layers."""
COMPARISONS = [
    ("forward", "relay", "forwarding", "MediaRelay"),
    ("forward", "janus", "forwarding", "Janus"),
    ("forward-python", "janus", "forwarding (Python path)", "Janus"),
    ("simulcast", "janus-simulcast", "simulcast forwarding", "Janus (simulcast)"),
]
"""(our mode, baseline mode, names) of each ratio printed under the table."""


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process, all threads included (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


@dataclass
class Result:
    mode: str
    subscribers: int
    window_s: float
    sfu_cpu_s: float
    load_cpu_s: float
    published: int
    sent_by_sfu: int
    delivered: int

    @property
    def us_per_packet(self) -> float:
        return 1e6 * self.sfu_cpu_s / max(self.sent_by_sfu, 1)

    @property
    def packets_per_core_second(self) -> float:
        return self.sent_by_sfu / max(self.sfu_cpu_s, 1e-9)

    @property
    def loss(self) -> float:
        return 1 - self.delivered / max(self.sent_by_sfu, 1)


class Run:
    def __init__(self, mode: str, subscribers: int, port: int, profile: Path | None) -> None:
        env = {**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        self.mode = mode
        self.subscribers = subscribers
        self.load: subprocess.Popen[str] | None = None
        self.janus_folder: Path | None = None
        try:
            self._start(env, port, profile)
        except BaseException:
            self.stop()
            raise

    def _start(self, env: dict[str, str], port: int, profile: Path | None) -> None:
        mode, subscribers = self.mode, self.subscribers
        load_args = ["--subscribers", str(subscribers), "--address", LOAD_ADDRESS]
        if mode in SIMULCAST_MODES:
            load_args.append("--simulcast")
            mode = SIMULCAST_MODES[mode]
        if mode == "janus":
            self.sfu, self.janus_folder = janus_gateway.start(SFU_ADDRESS, port)
            self.url = f"http://{SFU_ADDRESS}:{port}/janus"
            self._wait_for_http(f"{self.url}/info")
            load_args.append("--janus")
        else:
            command = [sys.executable, str(HERE / "forwarding_sfu.py"), "--mode", mode]
            command += ["--address", SFU_ADDRESS, "--port", str(port)]
            if profile is not None:
                command += ["--profile", str(profile)]
            self.sfu = subprocess.Popen(command, env=env)
            self.url = f"http://{SFU_ADDRESS}:{port}"
            self._wait_for_http(f"{self.url}/stats")
        self.load = subprocess.Popen(
            [sys.executable, str(HERE / "forwarding_load.py"), "--sfu", self.url, *load_args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        self._expect("ready", deadline_s=120)

    def _wait_for_http(self, url: str) -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url, timeout=1).read()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def _expect(self, event: str, deadline_s: float = 30) -> dict:
        assert self.load.stdout is not None
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            line = self.load.stdout.readline()
            if not line:
                raise RuntimeError("load generator exited")
            message = json.loads(line)
            if message.get("event") == event:
                return message
        raise TimeoutError(event)

    def load_report(self) -> dict:
        assert self.load.stdin is not None
        self.load.stdin.write(json.dumps({"cmd": "report"}) + "\n")
        self.load.stdin.flush()
        return self._expect("report")

    def sfu_stats(self) -> dict:
        with urllib.request.urlopen(f"{self.url}/stats", timeout=10) as response:
            return json.loads(response.read())

    def sfu_sent(self) -> int:
        return int(self.sfu_stats()["packets_sent"])

    def snapshot(self) -> tuple[float, float, float, dict, int]:
        report = self.load_report()
        # Janus has no counter we can read cheaply: count what it was offered to forward (of
        # a simulcast publisher, the layer its subscribers get).
        janus = self.mode.startswith("janus")
        sent = report["forwardable"] * self.subscribers if janus else self.sfu_sent()
        return (
            time.monotonic(),
            cpu_seconds(self.sfu.pid),
            cpu_seconds(self.load.pid),
            report,
            sent,
        )

    def stop(self) -> None:
        if self.load is not None and self.load.poll() is None:
            assert self.load.stdin is not None
            self.load.stdin.write(json.dumps({"cmd": "exit"}) + "\n")
            self.load.stdin.flush()
            try:
                self.load.wait(10)
            except subprocess.TimeoutExpired:
                self.load.kill()
        self.sfu.send_signal(signal.SIGINT)
        try:
            self.sfu.wait(20)
        except subprocess.TimeoutExpired:
            self.sfu.kill()
        if self.janus_folder is not None:
            shutil.rmtree(self.janus_folder, ignore_errors=True)


def measure(
    mode: str, subscribers: int, *, window: float, warmup: float, port: int, profile: Path | None
) -> Result:
    run = Run(mode, subscribers, port, profile)
    try:
        deadline = time.monotonic() + 60
        while min(run.load_report()["received"]) == 0:
            if time.monotonic() > deadline:
                raise TimeoutError("subscribers receive nothing")
            time.sleep(0.2)
        time.sleep(warmup)
        t0, sfu0, load0, report0, sent0 = run.snapshot()
        time.sleep(window)
        t1, sfu1, load1, report1, sent1 = run.snapshot()
        if mode == "simulcast":
            layers = run.sfu_stats()["layers"]
            print(f"simulcast x{subscribers}: subscribers per layer {layers}", file=sys.stderr)
    finally:
        run.stop()
    return Result(
        mode=mode,
        subscribers=subscribers,
        window_s=t1 - t0,
        sfu_cpu_s=sfu1 - sfu0,
        load_cpu_s=load1 - load0,
        published=report1["published"] - report0["published"],
        sent_by_sfu=sent1 - sent0,
        delivered=sum(report1["received"]) - sum(report0["received"]),
    )


def print_table(results: list[Result]) -> None:
    header = (
        f"{'mode':15} {'subs':>4} {'pub pkt/s':>9} {'fwd pkt/s':>9} {'SFU cores':>9} "
        f"{'µs/pkt':>8} {'pkt/s/core':>10} {'loss':>6} {'loadgen cores':>13}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r.mode:15} {r.subscribers:>4} {r.published / r.window_s:>9.0f} "
            f"{r.sent_by_sfu / r.window_s:>9.0f} {r.sfu_cpu_s / r.window_s:>9.3f} "
            f"{r.us_per_packet:>8.1f} {r.packets_per_core_second:>10.0f} {r.loss:>6.1%} "
            f"{r.load_cpu_s / r.window_s:>13.3f}"
        )
    by_key = {(r.mode, r.subscribers): r for r in results}
    ratios = []
    for ours, theirs, our_name, their_name in COMPARISONS:
        for subscribers in sorted({r.subscribers for r in results}):
            forward, other = by_key.get((ours, subscribers)), by_key.get((theirs, subscribers))
            if forward is None or other is None:
                continue
            cores = (other.sfu_cpu_s / other.window_s) / (forward.sfu_cpu_s / forward.window_s)
            ratios.append(
                f"{subscribers:>4} subscribers: {our_name} / {their_name} = "
                f"{forward.us_per_packet / other.us_per_packet:.2f} CPU per packet "
                f"({their_name} uses {cores:.1f}x the cores)"
            )
    if ratios:
        print("\n" + "\n".join(ratios))
    most = max(r.subscribers for r in results)
    per_core = [
        f"{r.mode} {r.packets_per_core_second / 1000:.1f}k"
        for r in results
        if r.subscribers == most
    ]
    print(f"\nforwarded packets per core-second at {most} subscribers: " + ", ".join(per_core))


def print_profile(path: Path) -> None:
    print(f"\nprofile of the forwarding SFU ({path}), top functions by own time:")
    stats = pstats.Stats(str(path))
    stats.sort_stats("tottime").print_stats(18)


def isolate() -> None:
    """Re-run inside a private network namespace (nothing leaves the machine)."""
    if os.environ.get(NETNS_MARK):
        return
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        sys.exit("run as root with unshare(1) available: the benchmark isolates its network")
    script = f"{NETNS_SETUP} && exec " + " ".join(map(repr, [sys.executable, *sys.argv]))
    os.environ[NETNS_MARK] = "1"
    os.execvp("unshare", ["unshare", "-n", "sh", "-c", script])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, nargs="+", default=[1, 4, 16])
    janus = ["janus", "janus-simulcast"] if shutil.which("janus") else []
    default_modes = ["forward", "relay", "simulcast", *janus]
    parser.add_argument("--modes", nargs="+", default=default_modes)
    parser.add_argument(
        "--relay-max",
        type=int,
        default=16,
        help="skip MediaRelay above this many subscribers (one encoder each saturates 2 cores)",
    )
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--profile", type=int, help="profile the forwarding SFU at this count")
    args = parser.parse_args()
    isolate()
    results = []
    port = 18080
    for subscribers in args.subscribers:
        for mode in args.modes:
            if mode == "relay" and subscribers > args.relay_max:
                continue
            profile = None
            if mode.startswith("forward") and subscribers == args.profile:
                profile = Path(f"/tmp/switchboard-forwarding-{subscribers}.pstats")
            port += 1
            try:
                result = measure(
                    mode,
                    subscribers,
                    window=args.window,
                    warmup=args.warmup,
                    port=port,
                    profile=profile,
                )
            except (TimeoutError, RuntimeError) as exc:
                # One run that never got going (a busy machine) must not lose the others.
                print(f"measured {mode} x{subscribers}: failed ({exc})", file=sys.stderr)
                continue
            results.append(result)
            print(
                f"measured {mode} x{subscribers}: {result.us_per_packet:.1f} µs/packet",
                file=sys.stderr,
            )
    print()
    print_table(results)
    if args.profile:
        print_profile(Path(f"/tmp/switchboard-forwarding-{args.profile}.pstats"))


if __name__ == "__main__":
    main()
