"""A study on a real two-node Ray cluster that the test starts on this machine, whose worker node
is killed mid-study: trials run on both nodes, and the study still ends with every trial once.

Each node is a ``ray start --block`` with its own CPU, temporary folder and ports (Ray 2.60 runs
several nodes on one host; the driver joins the head node's raylet). The test stops what it
started by pid, never with ``ray stop``, which would end every Ray on the machine.
"""

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from analysis import get_nodes_info, read_experiment
from analysis.dashboard import build_dashboard
from tests.e2e.test_study import check_optuna_agrees
from trainable.experiment import NODE_ID, RESULT_FILE, TRIAL_PREFIX

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds Ray's processes in /proc")]

ROOT = Path(__file__).resolve().parents[2]
MARK = "CGAN_STUDY_TEST_RAY_NODE"  # in the environment of every process a test node starts

# Four trials of tiny CGANs (the paper's three baselines and one searched point), all run to their
# end (no ASHA), 12 reports of 25 iterations each: the one the worker node runs is still running
# when that node is killed.
TWO_NODE_STUDY = """
[study]
samples = 4
seed = 5
early_stopping = false
[fixed]
g_filters = "8,8,4"
d_filters = "4,8,8"
iterations = 300
eval_every = 25
eval_samples_per_class = 10
batch_size = 16
collapse_grace = 100000
[search]
latent_size = [8, 80, 100]
d_dropout = {low = 0.0, high = 0.5}
freeze_accuracy = ["off", 0.95]
freeze_after = ["off", 50000]
"""


def _processes() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, start time in clock ticks) of every live process, from /proc (a killed
    one waiting to be reaped, a zombie, is not live)."""
    table = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if fields[0] != "Z":
                table[int(stat.parent.name)] = (int(fields[1]), int(fields[19]))
    return table


def _free_port() -> int:
    """A port nothing listens on now: Ray's fixed defaults (6379, 52365) may be taken by another Ray."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RayNode:
    """One node of the test's cluster: ``ray start ... --block`` in a temporary folder of its own.

    Every process it starts is remembered (pid and start time) as it is seen: those of the node's
    process tree, and any that carry the node's mark in their environment (which every process
    Ray starts inherits), such as a worker whose raylet was killed. ``stop`` kills exactly those
    that still run."""

    def __init__(self, temp_dir: Path, *args: str, env: dict[str, str]) -> None:
        self.temp_dir = temp_dir
        self.log = temp_dir.with_suffix(".log")
        self.mark = f"{MARK}={temp_dir}\0".encode()
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "ray.scripts.scripts", "start", "--block", "--temp-dir", str(temp_dir),
                 "--num-gpus", "0", "--object-store-memory", str(100 * 2**20),
                 "--dashboard-agent-listen-port", str(_free_port()), *args],
                stdout=log, stderr=subprocess.STDOUT, env={**env, MARK: str(temp_dir)}, start_new_session=True)
        self.seen: dict[int, int] = {self.process.pid: _processes()[self.process.pid][1]}
        self.node_id = self.raylet = None

    def wait_started(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while "Ray runtime started" not in self.log.read_text():
            assert self.process.poll() is None, f"ray start ended:\n{self.log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"ray start not up in {timeout} s:\n{self.log.read_text()[-3000:]}"
            time.sleep(0.2)
        self.track()
        raylets = [pid for pid in self.seen if _cmdline(pid)[0].endswith("/raylet/raylet")]
        assert len(raylets) == 1, raylets
        self.raylet = raylets[0]
        self.node_id = next(arg.split("=", 1)[1] for arg in _cmdline(self.raylet) if arg.startswith("--node_id="))

    def track(self) -> None:
        """Remember the processes this node has started so far."""
        table = _processes()
        tree = {pid for pid, started in self.seen.items() if table.get(pid, (None, None))[1] == started}
        for _ in range(10):  # descendants: ray start > raylet > agents and workers
            tree |= {pid for pid, (parent, _) in table.items() if parent in tree}
        for pid in table.keys() - tree:
            with contextlib.suppress(OSError):
                if self.mark in Path(f"/proc/{pid}/environ").read_bytes():
                    tree.add(pid)
        for pid in tree & table.keys():
            self.seen.setdefault(pid, table[pid][1])

    def kill_raylet(self) -> None:
        """The node dies as a machine would: its raylet is killed (ray start then ends the rest)."""
        self.track()
        os.kill(self.raylet, signal.SIGKILL)

    def stop(self) -> None:
        """Kill every process of the node still running; wait (up to 30 s) until they have ended."""
        self.track()
        for pid in self.running():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        deadline = time.monotonic() + 30
        while self.running() and time.monotonic() < deadline:
            time.sleep(0.2)

    def running(self) -> list[int]:
        table = _processes()
        return [pid for pid, started in self.seen.items() if table.get(pid, (None, None))[1] == started]


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return [""]


def _rows(experiment_dir: Path) -> dict[str, list[dict]]:
    """Each trial's complete report lines so far (a line being written is left for the next look)."""
    rows = {}
    for result in experiment_dir.glob(f"{TRIAL_PREFIX}*/{RESULT_FILE}"):
        lines = result.read_text().split("\n")[:-1]
        rows[result.parent.name] = [json.loads(line) for line in lines if line.strip()]
    return rows


@pytest.fixture
def two_nodes():
    """A head node and a worker node, one CPU each, on this machine; everything they started is
    killed at the end, pass or fail. The temporary folders are short: Ray's socket paths must fit
    in 107 bytes."""
    root = Path(tempfile.mkdtemp(prefix="cgan-ray-"))
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    port = _free_port()
    nodes = []
    try:
        # A node whose raylet stops answering is declared dead after 3 missed 1-s health checks (Ray's
        # default waits 5 x 3 s): the study's retry of the killed node's trial starts sooner.
        head = RayNode(root / "head", "--head", "--port", str(port), "--num-cpus", "1", "--include-dashboard",
                       "false", "--system-config",
                       json.dumps({"health_check_period_ms": 1000, "health_check_failure_threshold": 3}), env=env)
        nodes.append(head)
        head.wait_started()
        worker = RayNode(root / "worker", "--address", f"127.0.0.1:{port}", "--num-cpus", "1", env=env)
        nodes.append(worker)
        worker.wait_started()
        assert head.node_id != worker.node_id
        yield f"127.0.0.1:{port}", head, worker, env
    finally:
        for node in reversed(nodes):
            node.stop()
        left = [pid for node in nodes for pid in node.running()]
        shutil.rmtree(root, ignore_errors=True)
        assert not left, f"processes of the test's Ray nodes still running: {left}"


def test_study_on_two_nodes_survives_the_worker_node_dying(tmp_path, tiny_data, two_nodes):
    address, head, worker, env = two_nodes
    config = tmp_path / "study.toml"
    config.write_text(TWO_NODE_STUDY)
    storage = tmp_path / "studies"
    experiment_dir = storage / "two"
    with open(tmp_path / "driver.log", "w") as log:
        driver = subprocess.Popen([sys.executable, "-m", "study", "study", "run", "--config", str(config),
                                   "--name", "two", "--storage", str(storage), "--address", address,
                                   "--data", str(tiny_data[0]), "--judge-steps", "60"],
                                  stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True)
    try:
        # Kill the worker node once a trial there has reported, with at least 4 reports still to come.
        deadline = time.monotonic() + 240
        while True:
            assert driver.poll() is None, f"the study ended before the worker node ran a trial:\n" \
                                          f"{(tmp_path / 'driver.log').read_text()[-3000:]}"
            assert time.monotonic() < deadline, "no trial reported from the worker node in 240 s"
            head.track()
            worker.track()
            on_worker = {name: rows for name, rows in _rows(experiment_dir).items()
                         if rows and rows[-1][NODE_ID] == worker.node_id and rows[-1]["iteration"] <= 200}
            if on_worker:
                break
            time.sleep(0.2)
        killed = next(iter(on_worker))
        worker.kill_raylet()
        driver.wait(timeout=300)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
    output = (tmp_path / "driver.log").read_text()
    assert driver.returncode == 0, output[-3000:]
    assert "is a local path on a cluster of 2 node(s)" in output  # the warning meant for real clusters

    experiment = read_experiment(experiment_dir)
    assert len(experiment.trials) == 4, [t.name for t in experiment.trials]
    nodes_used = {row[NODE_ID] for trial in experiment.trials for row in trial.rows}
    assert nodes_used == {head.node_id, worker.node_id}
    for trial in experiment.trials:
        assert trial.stop_reason == "completed", (trial.name, trial.stop_reason)
        assert [row["iteration"] for row in trial.rows] == list(range(25, 301, 25)), trial.name  # each once, none lost
        # A report the dead node made after its last checkpoint Tune had taken is trained again on
        # the head (result.json is append-only; the reader counts it once); exact resume makes the
        # second equal the first.
        first = {}
        for row in map(json.loads, (trial.path / RESULT_FILE).read_text().splitlines()):
            assert first.setdefault(row["iteration"], row)["d_loss"] == row["d_loss"], (trial.name, row["iteration"])
    # The trial the worker node was running went on from its checkpoint on the head node.
    where = [row[NODE_ID] for row in next(t for t in experiment.trials if t.name == killed).rows]
    assert where[0] == worker.node_id and where[-1] == head.node_id, where
    assert where == sorted(where, key=lambda node: node == head.node_id)  # moved once, never back
    trials = check_optuna_agrees(experiment)
    assert len(trials) == 4
    assert "study two: 4 trials" in output
    # The dashboard says where the trials ran: both nodes (one host), and the trial that moved.
    nodes = get_nodes_info(experiment)
    assert {node.node_id for node in nodes.nodes} == {head.node_id, worker.node_id} and nodes.moved == [killed]
    assert len({node.hostname for node in nodes.nodes}) == 1  # what the node id is for
    page = build_dashboard(experiment).path.read_text()
    assert '<th data-key="node"' in page and '<section id="nodes">' in page
