"""Scale-out: cluster.yaml against Ray's schema, and sweeps on real multi-node Ray clusters
(`ray.cluster_utils.Cluster`, and the real autoscaler through `AutoscalingCluster`)."""

import json
import os
import re
import subprocess
import shutil
import sys
import tempfile

import pytest
import yaml

from analysis.load import load_experiment
from tests.synthetic import write_mnist_cache
from tests.sweeps_running import ROOT, Runner, rows_by_trial, run, runner_cmd, wait_until

# One multi-node Ray at a time (two test processes: one runs these, in order).
pytestmark = pytest.mark.xdist_group("ray-cluster")

CLUSTER_YAML = os.path.join(ROOT, "cluster.yaml")
WORLD = {"0.0.0.0/0", "::/0"}


def load_cluster_yaml():
    with open(CLUSTER_YAML) as f:
        return yaml.safe_load(f)


def test_cluster_yaml_validates_against_rays_schema():
    import jsonschema
    import ray

    with open(os.path.join(os.path.dirname(ray.__file__), "autoscaler", "ray-schema.json")) as f:
        schema = json.load(f)
    config = load_cluster_yaml()
    jsonschema.validate(config, schema)
    broken = {**config, "max_workers": "eight"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def test_cluster_yaml_has_a_cpu_head_and_autoscaling_gpu_workers():
    config = load_cluster_yaml()
    head = config["available_node_types"][config["head_node_type"]]
    assert head["resources"] == {"CPU": 0}
    workers = [t for name, t in config["available_node_types"].items() if name != config["head_node_type"]]
    assert len(workers) == 1 and workers[0]["min_workers"] == 0 and workers[0]["max_workers"] >= 1
    assert workers[0]["node_config"]["InstanceType"].startswith(("g", "p"))  # a GPU instance family
    assert config["idle_timeout_minutes"] > 0
    setup = " ".join(config["setup_commands"])
    assert "pip install" in setup and "sweeps.data fetch mnist" in setup
    assert config["file_mounts"] == {"~/noisesweep": "."}


def test_cluster_yaml_opens_no_port_to_the_world_but_ssh():
    config = load_cluster_yaml()
    rules = config["provider"].get("security_group", {}).get("IpPermissions", [])
    for rule in rules:
        ranges = {r.get("CidrIp") for r in rule.get("IpRanges", [])} | {r.get("CidrIpv6") for r in rule.get("Ipv6Ranges", [])}
        if ranges & WORLD:
            assert (rule.get("FromPort"), rule.get("ToPort")) == (22, 22), rule
    head_start = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head_start and "0.0.0.0" not in head_start
    assert "ray-client-server-port" not in head_start


@pytest.fixture
def cluster(monkeypatch):
    """A head and two worker nodes, 1 CPU each, all real raylets on this machine, whose
    processes start with oneDNN on (a runner's setting must reach them to change it)."""
    import ray
    from ray.cluster_utils import Cluster

    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "1")
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    workers = [c.add_node(num_cpus=1) for _ in range(2)]
    c.wait_for_nodes()
    ray.init(address=c.address)
    yield c, workers
    ray.shutdown()
    c.shutdown()


def test_sweep_spreads_over_nodes_and_a_removed_nodes_trials_restart_elsewhere(tmp_path, cluster):
    """Three trials on three 1-CPU nodes, logs on one storage; the node of a trial midway is
    removed, and that trial goes on elsewhere from its checkpoint."""
    import ray

    c, workers = cluster
    write_mnist_cache(tmp_path / "cache", n_train=20000, n_test=1000)
    epochs = 6
    cmd, env = runner_cmd(tmp_path, f"{{arch: mlp500_300, epochs: {epochs}, seed: [0, 1, 2]}}\n", "lose",
                          "--address", c.address, "--max-failures", "3", num_cpus=None)
    env["TF_ENABLE_ONEDNN_OPTS"] = "0"  # the user's setting, which the runner passes to the cluster's workers
    exp = tmp_path / "runs" / "lose"
    sweep = Runner(cmd, env, tmp_path / "run.log")
    doomed = workers[0]

    def trial_midway_on_doomed_node():
        for name, rows in rows_by_trial(exp).items():
            if 2 <= len(rows) < epochs and rows[-1]["node_id"] == doomed.node_id:
                return name, rows[-1]["epoch"]
        return None

    victim, at_epoch = wait_until(trial_midway_on_doomed_node, timeout=300, what="a trial midway on the worker")
    c.remove_node(doomed)  # the node's raylet and its workers die
    assert sweep.wait(timeout=400) == 0, sweep.output()[-4000:]
    out = sweep.output()
    # The loss and the retry's end, a line each; no traceback, no raylet notice.
    assert re.search(rf"^  {re.escape(victim)}: node lost; retry 1 of 3 from epoch \d+$", out, re.M), out
    assert re.search(rf"^  {re.escape(victim)}: finished, epochs {epochs}/{epochs}, .*after 1 retry$", out, re.M), out
    assert not any(s in out for s in ("Trial task failed", "ActorDiedError", "A worker died")), out
    trials = rows_by_trial(exp)
    assert len(trials) == 3
    for name, rows in trials.items():
        assert [r["epoch"] for r in rows] == list(range(1, epochs + 1)), name  # complete, no epoch twice
    moved = [r for r in trials[victim] if r["epoch"] > at_epoch]
    assert moved and all(r["node_id"] != doomed.node_id for r in moved)
    first_nodes = {rows[0]["node_id"] for rows in trials.values()}  # full ids: fake nodes share a prefix
    assert len(first_nodes) >= 2, first_nodes
    assert ray.cluster_resources().get("CPU") == 2  # the runner left the cluster (less the removed node) up
    assert not any(r["onednn"] for rows in trials.values() for r in rows)


def test_local_storage_is_refused_when_a_node_is_on_another_host(tmp_path):
    """A worker in its own UTS namespace reports another hostname, as a second machine would."""
    import ray
    from ray.cluster_utils import Cluster

    if subprocess.run(["unshare", "--uts", "true"], capture_output=True).returncode != 0:
        pytest.skip("unshare --uts is not permitted here (needs root)")
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    ray_cli = os.path.join(os.path.dirname(sys.executable), "ray")
    far = subprocess.Popen(["unshare", "--uts", "sh", "-c",
                            f"hostname farhost && exec {ray_cli} start --address={c.address} --num-cpus=1 --block"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        ray.init(address=c.address)
        wait_until(lambda: len([n for n in ray.nodes() if n["Alive"]]) == 2, timeout=60, what="the far node")
        write_mnist_cache(tmp_path / "cache", n_train=500, n_test=100)
        cmd, env = runner_cmd(tmp_path, "{arch: mlp64, epochs: 1, seed: 0}\n", "far",
                              "--address", c.address, num_cpus=None)
        proc = run(cmd, env)
        assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1  # beside Ray's own connection lines
        assert "a local folder of" in errors[0] and "farhost" in errors[0] and "s3://" in errors[0]
        assert not (tmp_path / "runs" / "far").exists()  # refused before any trial: nothing left
    finally:
        far.terminate()
        far.wait()
        ray.shutdown()
        c.shutdown()


class _AutoscalingCluster:
    """Ray's AutoscalingCluster with the base config its 2.60 wheel lacks
    (autoscaler/_private/fake_multi_node/example.yaml)."""

    def __new__(cls, head_resources, worker_node_types):
        from ray.cluster_utils import AutoscalingCluster

        class Supplied(AutoscalingCluster):
            def _generate_config(self, head_resources, worker_node_types, autoscaler_v2=False, **kw):
                return {
                    "cluster_name": "fake_multinode",
                    "max_workers": sum(t["max_workers"] for t in worker_node_types.values()),
                    "idle_timeout_minutes": 1,
                    "upscaling_speed": 1.0,
                    "provider": {"type": "fake_multinode", "use_node_id_as_ip": True,
                                 "disable_node_updaters": True, "disable_launch_config_check": True},
                    "auth": {"ssh_user": "ubuntu"},
                    "head_node_type": "ray.head.default",
                    "available_node_types": {**worker_node_types, "ray.head.default": {
                        "resources": head_resources, "node_config": {}, "max_workers": 0}},
                    "file_mounts": {}, "cluster_synced_files": [], "file_mounts_sync_continuously": False,
                    "rsync_exclude": [], "rsync_filter": [], "initialization_commands": [],
                    "setup_commands": [], "head_setup_commands": [], "worker_setup_commands": [],
                    "head_start_ray_commands": [], "worker_start_ray_commands": [],
                }

            def start(self, *args, **kwargs):
                # Its start() begins with `ray stop --force`, which stops every Ray on the
                # machine (a sweep run beside the tests included): skip that one command.
                real = subprocess.check_call

                def without_global_stop(cmd, *a, **kw):
                    return 0 if list(cmd[:2]) == ["ray", "stop"] else real(cmd, *a, **kw)

                subprocess.check_call = without_global_stop
                try:
                    super().start(*args, **kwargs)
                finally:
                    subprocess.check_call = real

        return Supplied(head_resources, worker_node_types)


def stop_processes_under(folder, timeout=20):
    """Stop the processes whose command line names `folder`: one Ray started with RAY_TMPDIR
    there, and no other (`ray stop --force`, AutoscalingCluster's shutdown, stops every Ray
    on the machine, a sweep run beside the tests included)."""
    import psutil

    mine = []
    for p in psutil.process_iter(["cmdline"]):
        if any(folder in arg for arg in (p.info["cmdline"] or [])) and p.pid != os.getpid():
            mine.append(p)
    for p in mine:
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(mine, timeout=timeout)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    return len(mine)


def test_gpu_trials_make_the_real_autoscaler_start_gpu_workers(tmp_path, monkeypatch):
    """Head without GPUs, a worker type declaring GPU: 1 with 0 minimum: trials asking for half
    a GPU wait, the runner says so, the autoscaler starts workers, and the sweep completes."""
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    # This Ray's own temp folder (short: Ray's socket paths must fit 107 bytes), so that it
    # alone is stopped at the end, not with AutoscalingCluster's `ray stop --force`.
    ray_tmp = tempfile.mkdtemp(prefix="nsr-", dir="/tmp")
    monkeypatch.setenv("RAY_TMPDIR", ray_tmp)
    import ray

    cluster = _AutoscalingCluster(
        head_resources={"CPU": 1},
        worker_node_types={"gpu_worker": {"resources": {"CPU": 1, "GPU": 1}, "node_config": {},
                                          "min_workers": 0, "max_workers": 2}})
    cluster.start()
    try:
        write_mnist_cache(tmp_path / "cache", n_train=2000, n_test=300)
        cmd, env = runner_cmd(tmp_path, "{arch: mlp64, epochs: 2, seed: [0, 1, 2, 3]}\n", "gpu",
                              "--address", "auto", "--gpus-per-trial", "0.5", "--cpus-per-trial", "0.5",
                              num_cpus=None)
        proc = run(cmd, env, timeout=400)
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-3000:]
        assert "they wait until a GPU node joins" in proc.stdout  # said at once, not silent
        df = load_experiment(str(tmp_path / "runs" / "gpu"))
        trials = df.drop_duplicates("trial")
        assert len(trials) == 4 and (trials["status"] == "finished").all()
        ray.init(address="auto")
        gpu_nodes = {n["NodeID"] for n in ray.nodes() if n["Resources"].get("GPU")}
        assert gpu_nodes and set(trials["node_id"]) <= gpu_nodes  # they ran on autoscaled workers
        assert set(trials["gpus"]) <= {"0", "1"} and all(trials["gpus"])  # told their GPU
    finally:
        ray.shutdown()
        stop_processes_under(ray_tmp)
        ray._private.services.find_gcs_addresses.cache_clear()
        shutil.rmtree(ray_tmp, ignore_errors=True)
