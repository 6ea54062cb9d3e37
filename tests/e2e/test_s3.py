"""A study stored on S3, for real: an S3-compatible server on localhost (moto's server mode), the
storage a multi-node study needs. The study runs, its driver is killed and it resumes; analyze,
generate and trial --from read it; its files are where the README says."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.test_study import cli, write_study

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def s3(tmp_path):
    """A moto S3 server of this test's own on a free port, a bucket in it, and the environment that
    points the AWS SDKs (pyarrow's, boto3's) at it; the server is stopped by its pid at the end."""
    pytest.importorskip("moto")
    boto3 = pytest.importorskip("boto3")
    port = _free_port()
    log = open(tmp_path / "moto.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=log, stderr=subprocess.STDOUT)
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "test",
           "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",
           "AWS_EC2_METADATA_DISABLED": "true", "CGAN_STUDY_LOCAL_STATE": str(tmp_path / "state")}
    try:
        deadline = time.time() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert server.poll() is None and time.time() < deadline, (tmp_path / "moto.log").read_text()
                time.sleep(0.2)
        client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                              aws_access_key_id="test", aws_secret_access_key="test")
        client.create_bucket(Bucket="studies")
        yield env, client
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _keys(client, prefix):
    keys, token = [], None
    while True:
        page = client.list_objects_v2(Bucket="studies", Prefix=prefix, **({"ContinuationToken": token} if token else {}))
        keys += [item["Key"] for item in page.get("Contents", [])]
        if not page.get("IsTruncated"):
            return keys
        token = page["NextContinuationToken"]


def test_a_study_on_s3_runs_is_killed_resumes_and_is_read_back(tmp_path, tiny_data, s3):
    env, client = s3
    storage = "s3://studies/runs"
    config = write_study(tmp_path, samples=4, iterations=120, grace=100000)
    log = open(tmp_path / "driver.log", "w")
    driver = subprocess.Popen([sys.executable, "-m", "study", "study", "run", "--config", str(config), "--name", "cloud",
                               "--storage", storage, "--data", str(tiny_data[0]), "--judge-steps", "60"],
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                              env={**os.environ, **env})
    try:
        deadline = time.time() + 300
        while not any(key.endswith("/result.json") for key in _keys(client, "runs/cloud/trial_")):
            assert driver.poll() is None and time.time() < deadline, (tmp_path / "driver.log").read_text()[-3000:]
            time.sleep(1)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and its Ray, as a crash would
        driver.wait()
    resumed = cli("study", "resume", "cloud", "--storage", storage, env=env)
    assert resumed.returncode == 0, (tmp_path / "driver.log").read_text()[-2000:] + resumed.stderr[-3000:]
    assert "study cloud: 4 trials" in resumed.stdout, resumed.stdout

    # The study's own files on the driver, its trials in the bucket (README, "Results").
    local = Path(env["CGAN_STUDY_LOCAL_STATE"]) / "cloud"
    for name in ("study.json", "started_as.jsonl", "optuna.log"):  # stop_reasons.jsonl: only if one stopped early
        assert (local / name).is_file(), name
    keys = _keys(client, "runs/cloud/")
    trials = sorted({key.split("/")[2] for key in keys if key.split("/")[2].startswith("trial_")})
    # Trials the killed driver started after its last save were run again by the resumed one; their
    # folders are set aside (orphaned/), as in a local study.
    assert len(trials) == 4, keys
    for trial in trials:
        for name in ("params.json", "result.json", "progress.csv", "stop_reason.json"):
            assert f"runs/cloud/{trial}/{name}" in keys, (trial, name)
        assert any(key.startswith(f"runs/cloud/{trial}/checkpoint_") for key in keys)
        assert any(key.startswith(f"runs/cloud/{trial}/grids/iteration_") for key in keys)
        rows = [json.loads(line)["iteration"] for line in client.get_object(
            Bucket="studies", Key=f"runs/cloud/{trial}/result.json")["Body"].read().decode().splitlines()]
        assert rows == sorted(set(rows)), (trial, rows)  # every report once, the resumed ones too

    analyzed = cli("analyze", "cloud", "--storage", storage, "--out", tmp_path / "dash.html", env=env)
    assert analyzed.returncode == 0, analyzed.stderr[-3000:]
    ranking = [line for line in analyzed.stdout.splitlines() if " trial_" in line]
    assert len(ranking) == 4 and sum("(paper V" in line for line in ranking) == 3, analyzed.stdout
    assert (tmp_path / "dash.html").stat().st_size > 1_000_000  # plotly and the fetched grids inside
    generated = cli("generate", "cloud", "--storage", storage, "--per-class", "3", "--out", tmp_path / "g.npz", env=env)
    assert generated.returncode == 0 and (tmp_path / "g.npz").is_file(), generated.stderr[-3000:]
    again = cli("trial", "--from", "cloud", "--storage", storage, "--set", "iterations=20", "--out", tmp_path / "again",
                env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((tmp_path / "again" / "params.json").read_text())["from"]["study"] == "cloud"
