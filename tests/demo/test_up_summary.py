"""What `make up` hands its user: printed and written to the env file from one list, the env
file private to its owner, and one `make up` per work directory."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from fixtures.make_up import read_env_file
from switchboard_dev.stack import STATE_DIRS, WorkdirInUse, claim_workdir
from switchboard_dev.summary import UpSummary


def summary(workdir: Path) -> UpSummary:
    return UpSummary(
        workdir=workdir,
        kubeconfig=workdir / "cluster" / "admin kubeconfig",  # a space, to test quoting
        kubectl=Path("/opt/kube/v1/kubectl"),
        join_api_url="http://127.0.0.1:4000",
        demo_api_key="k3y'with\"quotes",
        demo_page_url="http://127.0.0.1:5000/",
    )


def test_the_env_file_sets_what_is_printed(tmp_path):
    up = summary(tmp_path)

    env = read_env_file(up.write_env())

    text = up.text()
    for setting in up.settings():
        assert env[setting.variable] == setting.value
        assert f"{setting.label}:" in text and setting.value in text
    assert env["KUBECONFIG"] == str(tmp_path / "cluster" / "admin kubeconfig")
    assert env["PATH"].startswith("/opt/kube/v1:")
    assert str(up.env_path) in text


def test_the_env_file_is_readable_by_its_owner_only(tmp_path):
    path = summary(tmp_path).write_env()

    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_printed_join_command_sends_json_with_the_demo_key(tmp_path):
    command = summary(tmp_path).curl_join()

    assert "-H 'Content-Type: application/json'" in command
    assert "http://127.0.0.1:4000/v1/namespaces/demo/rooms/hello/join" in command
    assert "Authorization: Bearer k3y" in command


def test_a_work_directory_takes_one_stack_and_a_new_one_starts_clean(tmp_path):
    for name in STATE_DIRS:
        (tmp_path / name).mkdir()
        (tmp_path / name / "stale").write_text("from the last run")
    (tmp_path / "notes.txt").write_text("not ours")

    lock = claim_workdir(tmp_path)
    try:
        assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
        with pytest.raises(WorkdirInUse, match="another `switchboard-dev up`"):
            claim_workdir(tmp_path)
    finally:
        os.close(lock)
    os.close(claim_workdir(tmp_path))
