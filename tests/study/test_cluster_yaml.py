"""cluster.yaml is a real Ray cluster-launcher config: Ray's own schema and checks accept it."""

from pathlib import Path

import pytest
import yaml

CLUSTER = Path(__file__).resolve().parents[2] / "cluster.yaml"


def load():
    return yaml.safe_load(CLUSTER.read_text())


def test_cluster_yaml_passes_rays_schema_and_validation():
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(load())  # fills Ray's defaults for the provider, as `ray up` does
    validate_config(prepared)
    assert prepared["head_node_type"] == "head"
    workers = prepared["available_node_types"]["gpu_worker"]
    assert workers["max_workers"] >= 1 and workers["min_workers"] == 0  # autoscaling GPU pool


def test_cluster_yaml_installs_this_project_and_the_pinned_torch():
    config = load()
    setup = "\n".join(config["setup_commands"])
    assert "torch==2.13.0" in setup
    assert "pip install" in setup and "cgan-study" in setup
    assert any(target.endswith("cgan-study") for target in config["file_mounts"])


def test_the_example_stores_results_where_every_node_can_write():
    # A path only the head sees (or one nothing mounts) cannot hold the workers' checkpoints.
    commands = [line for line in CLUSTER.read_text().splitlines() if "cgan-study study run" in line]
    storages = [line.split("--storage ")[1].split()[0].strip("'") for line in commands]
    assert storages and all(storage.startswith("s3://") for storage in storages)
    assert all("--wait-for-gpus" in line for line in commands)  # the head has no CPU for trials: workers come
    workers = load()["available_node_types"]["gpu_worker"]["node_config"]
    assert workers["IamInstanceProfile"] == {"Name": "ray-autoscaler-v1"}  # the S3 access the head gets


def test_a_broken_config_is_refused_by_the_same_validation():
    import jsonschema
    from ray.autoscaler._private.util import prepare_config, validate_config

    broken = load()
    broken["available_node_types"]["gpu_worker"]["max_wrokers"] = 2
    with pytest.raises(jsonschema.ValidationError):
        validate_config(prepare_config(broken))
