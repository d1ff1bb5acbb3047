"""The README works as written: every shell block is tagged, `make up` prints what a new
user needs, the `run` blocks run verbatim against it, and Ctrl-C stops it cleanly.

Runs after test_page.py (file order): the last test here stops the shared `make up`.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import urllib.request

import pytest

from fixtures.make_up import ENV_FILE, README, user_environment
from fixtures.readme import BACKGROUND, RUN, SKIP, shell_blocks
from switchboard_dev.demo.apikey import DEMO_NAMESPACE
from switchboard_dev.paths import REPO_ROOT


def needs_make_up(test):
    """The real stack: a control plane, pods, the operator (the slow tier)."""
    return pytest.mark.cluster(pytest.mark.nodeagent(pytest.mark.slow(test)))


RUN_TIMEOUT_SECONDS = 300.0


def test_every_readme_shell_block_is_tagged():
    blocks = shell_blocks(README.read_text())

    untagged = [f"{b.where(README)}: ```{b.info}" for b in blocks if b.tag is None]
    assert untagged == [], f"tag these blocks run, {BACKGROUND} or 'skip: <reason>': {untagged}"
    assert {b.tag for b in blocks} == {RUN, BACKGROUND, SKIP}


def test_untagged_blocks_and_skips_without_a_reason_are_caught():
    markdown = "```sh\nls\n```\n```sh skip:\nls\n```\n```text\nnot shell\n```\n```sh run\nls\n```\n"

    assert [b.tag for b in shell_blocks(markdown)] == [None, None, RUN]


def test_readme_shell_blocks_have_no_placeholders():
    for block in shell_blocks(README.read_text()):
        assert not re.search(r"XXXX|<[a-z-]+>", block.text), block.where(README)


def printed_curl(output: str) -> str:
    """The join command `make up` prints, as a user would copy it."""
    lines = output.splitlines()
    start = lines.index("Join a room from the command line:") + 1
    command = []
    for line in lines[start:]:
        if not line.strip():
            break
        command.append(line)
    return "\n".join(command)


def printed(output: str, label: str) -> str:
    match = re.search(rf"^{re.escape(label)}:\s+(\S+)", output, re.MULTILINE)
    assert match, f"no {label!r} line in:\n{output}"
    return match.group(1)


@needs_make_up
def test_make_up_prints_the_cluster_the_addresses_a_key_and_a_join_command(make_up):
    out = make_up.output
    regions = [line for line in out.splitlines() if line.startswith("region.switchboard.dev/")]
    rooms = [line for line in out.splitlines() if "room.switchboard.dev/" in line]
    assert regions and all(" True " in line for line in regions), out
    assert rooms and all(" Scheduled " in line for line in rooms), out
    assert "-sfu-" in out and "Running" in out
    # What it printed is what it wrote to the env file.
    env = make_up.env
    assert printed(out, "Demo page") == env["SWITCHBOARD_DEMO_PAGE_URL"]
    assert printed(out, "Join API") == env["SWITCHBOARD_JOIN_API_URL"]
    assert printed(out, "Demo API key") == env["SWITCHBOARD_DEMO_API_KEY"]
    prometheus = printed(out, "Prometheus")
    assert prometheus == env["SWITCHBOARD_PROMETHEUS_URL"]
    with urllib.request.urlopen(f"{prometheus}/-/ready", timeout=10) as ready:
        assert ready.status == 200
    assert env["KUBECONFIG"].startswith(str(ENV_FILE.parent))
    assert f". {ENV_FILE}" in out

    joined = subprocess.run(
        ["bash", "-c", printed_curl(out)],
        check=True,
        capture_output=True,
        text=True,
        env=user_environment(),
        timeout=60,
    )
    answer = json.loads(joined.stdout)
    assert answer["room"] == f"{DEMO_NAMESPACE}/hello", answer
    assert answer["token"] and answer["url"].startswith("http")


@needs_make_up
def test_readme_run_blocks_run_verbatim(make_up):
    """In one shell, in order, as someone following the README in a second terminal does."""
    blocks = [b for b in shell_blocks(README.read_text()) if b.tag == RUN]
    script = "".join(f"echo '>>> {b.where(README)}'\n{b.text}" for b in blocks)

    result = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script],
        cwd=REPO_ROOT,
        check=False,
        capture_output=True,
        text=True,
        env=user_environment(),
        timeout=RUN_TIMEOUT_SECONDS,
    )

    assert result.returncode == 0, (
        f"the README block after the last '>>>' failed:\n{result.stdout}\n{result.stderr}"
    )


@needs_make_up
def test_ctrl_c_stops_make_up_cleanly(make_up):
    exit_code = make_up.stop()

    out = make_up.output
    # make passes Ctrl-C on by dying of SIGINT itself once its recipe has finished, saying
    # "make: *** [Makefile:..: up] Interrupt" as it does for every interrupted recipe.
    assert exit_code in (0, -signal.SIGINT), out
    ours = [line for line in out.splitlines() if line and not line.startswith("make")]
    assert ours[-1] == "Stopped.", out
    assert "Traceback" not in out
    assert not ENV_FILE.exists(), "the env file outlived make up"
    leftovers = subprocess.run(
        ["pgrep", "-f", str(ENV_FILE.parent)], check=False, capture_output=True, text=True
    ).stdout.split()
    assert leftovers == []
