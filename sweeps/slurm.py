"""A sweep as a Slurm batch job: `noisesweep slurm [slurm flags] [runner flags]`.

The submit side checks the grid and flags as the runner does (nothing is written for a
bad one), writes an sbatch script into the experiment folder (`slurm/job.sbatch`) and
submits it with `sbatch` (`--print`: only writes it). The job:

- starts Ray across its allocation: one node runs the runner with its embedded Ray; more
  start a Ray head on the first node and a worker on each other one (`srun ray start
  --block`, Ray's documented recipe), with ports and a short temp dir of the job's own, so
  that two jobs sharing a node do not collide, and the runner joins it (`--address`);
- runs the runner on the first node, `--resume` once the experiment exists (a requeued
  job continues where it stopped);
- asks Slurm for USR1 `--signal-before` seconds before its time limit. On USR1, or a
  SIGTERM from preemption, the runner stops its trials and saves Tune's state, as on
  Ctrl-C; the job then requeues itself (`scontrol requeue`) and, run again, resumes.

The runner records each job it runs in (id, restart count, nodes, script) in
noisesweep.json; `noisesweep status` prints them.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import suppress

from sweeps.slurm_job import SLURM_DIR

SCRIPT = "job.sbatch"
TIME = re.compile(r"^(\d+-)?\d+(:\d+){0,2}$|^\d+-\d+$")  # sbatch --time forms: M, M:S, H:M:S, D-H[:M[:S]]


class SlurmError(ValueError):
    """A flag the job could not run with, or sbatch refusing it: one line."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("Slurm", "the job's allocation; the rest are the runner's flags")
    g.add_argument("--nodes", type=int, default=1, help="nodes of the allocation (default 1)")
    g.add_argument("--cpus-per-node", type=int, default=None,
                   help="CPUs asked for on each node (default: the partition's default)")
    g.add_argument("--gpus-per-node", type=int, default=0, help="GPUs asked for on each node (default 0)")
    g.add_argument("--time", default=None, help="the job's time limit, as sbatch takes it (e.g. 2:00:00); "
                   "the job requeues itself when it is reached")
    g.add_argument("--partition", default=None, help="Slurm partition")
    g.add_argument("--account", default=None, help="Slurm account")
    g.add_argument("--sbatch", action="append", default=[], metavar="OPTION",
                   help="another #SBATCH line, e.g. --sbatch=--mem=32G (repeatable)")
    g.add_argument("--signal-before", type=int, default=180, metavar="SECONDS",
                   help="how long before its time limit the job is told to stop and requeue (default 180)")
    g.add_argument("--print", action="store_true", help="write the job script and print its path; submit nothing")


def check(opts: argparse.Namespace) -> None:
    if opts.nodes < 1:
        raise SlurmError(f"--nodes {opts.nodes}: must be at least 1")
    if opts.cpus_per_node is not None and opts.cpus_per_node < 1:
        raise SlurmError(f"--cpus-per-node {opts.cpus_per_node}: must be at least 1")
    if opts.gpus_per_node < 0:
        raise SlurmError(f"--gpus-per-node {opts.gpus_per_node}: must be 0 or more")
    if opts.time is not None and not TIME.match(opts.time):
        raise SlurmError(f"--time {opts.time!r}: not a Slurm time (MM, HH:MM:SS, D-HH:MM...)")
    if opts.signal_before < 10:
        raise SlurmError(f"--signal-before {opts.signal_before}: at least 10 s (Slurm signals within a minute "
                         "of the time asked)")
    for line in opts.sbatch:
        if not line.startswith("-"):
            raise SlurmError(f"--sbatch {line!r}: an sbatch option, starting with - (e.g. --mem=32G)")
    # Each goes into an #SBATCH line of the script: a line break would add a shell line to it.
    for flag, value in [("--partition", opts.partition), ("--account", opts.account),
                        *(("--sbatch", line) for line in opts.sbatch)]:
        if value is not None and (not value.strip() or any(c.isspace() or ord(c) < 32 for c in value.strip())):
            raise SlurmError(f"{flag} {value!r}: one word, without spaces or line breaks")


def one_line(flag: str, value: str) -> None:
    """Refuse a value that would break the job script's lines (a path with a line break)."""
    if any(ord(c) < 32 or c == "\x7f" for c in value):
        raise SlurmError(f"{flag} {value!r}: a control character (a line break?) has no place in a job script")


def script(exp_path: str, runner_argv: list[str], opts: argparse.Namespace, name: str,
           workdir: str | None = None, python: str | None = None) -> str:
    """The sbatch script that runs `runner_argv` (the runner's flags, --name and
    --storage-path included) for experiment `exp_path`."""
    workdir = workdir or os.getcwd()
    python = python or sys.executable
    out = os.path.join(exp_path, SLURM_DIR, "slurm-%j.out")
    lines = ["#!/bin/bash",
             f"#SBATCH --job-name={shlex.quote('noisesweep-' + name)}",
             f"#SBATCH --nodes={opts.nodes}",
             "#SBATCH --ntasks-per-node=1"]
    if opts.cpus_per_node:
        lines.append(f"#SBATCH --cpus-per-task={opts.cpus_per_node}")
    if opts.gpus_per_node:
        lines.append(f"#SBATCH --gpus-per-node={opts.gpus_per_node}")
    if opts.time:
        lines.append(f"#SBATCH --time={opts.time}")
    for key in ("partition", "account"):
        if getattr(opts, key):
            lines.append(f"#SBATCH --{key}={getattr(opts, key)}")
    lines += [f"#SBATCH --output={out}",
              "#SBATCH --open-mode=append",  # a requeued job's lines follow the first run's
              "#SBATCH --requeue",
              f"#SBATCH --signal=B:USR1@{opts.signal_before}",
              f"#SBATCH --chdir={workdir}",
              *(f"#SBATCH {line}" for line in opts.sbatch)]
    runner = " ".join(shlex.quote(a) for a in runner_argv)
    return "\n".join(lines) + "\n" + BODY.format(
        python=shlex.quote(python), exp=shlex.quote(exp_path), runner=runner, nodes=opts.nodes,
        gpus=opts.gpus_per_node, script=shlex.quote(os.path.join(exp_path, SLURM_DIR, SCRIPT)))


# The job's body. Bash traps run between commands: the runner is started in the background
# and waited for, so that a signal is acted on at once, and waited for again until it ends.
BODY = r"""
set -u
PYTHON={python}
EXP={exp}
export NOISESWEEP_SLURM_SCRIPT={script}
# A requeued job runs this script again: it continues the experiment its first run began.
resume=()
if [ -f "$EXP/noisesweep.json" ]; then resume=(--resume); fi
echo "noisesweep: Slurm job $SLURM_JOB_ID (restart ${{SLURM_RESTART_COUNT:-0}}) on $SLURM_JOB_NODELIST"

cluster=()
ray_nodes=""
if [ {nodes} -gt 1 ]; then
    # Ray's head on this (the first) node, a Ray worker on each other one: one srun step
    # each, `ray start --block` with the job's own ports and temp dir (python -m sweeps.slurm node).
    # Ray's token, the job's own, in the environment of every step: the head's own pick
    # (~/.ray/auth_token) need not reach the other nodes before they dial it.
    export RAY_AUTH_MODE=token RAY_AUTH_TOKEN="${{RAY_AUTH_TOKEN:-$("$PYTHON" -c 'import secrets; print(secrets.token_hex(32))')}}"
    head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
    address=$("$PYTHON" -m sweeps.slurm address)  # this shell runs on the head node
    srun --nodes=1 --ntasks=1 -w "$head" "$PYTHON" -m sweeps.slurm node --head --address "$address" --gpus {gpus} &
    ray_nodes="$ray_nodes $!"
    "$PYTHON" -m sweeps.slurm wait "$address" || exit 1
    srun --nodes=$(({nodes} - 1)) --ntasks=$(({nodes} - 1)) --exclude="$head" \
        "$PYTHON" -m sweeps.slurm node --address "$address" --gpus {gpus} &
    ray_nodes="$ray_nodes $!"
    "$PYTHON" -m sweeps.slurm wait "$address" {nodes} || exit 1  # until every node has joined
    cluster=(--address "$address")
else
    # The runner's own Ray, on the CPUs of the allocation (Ray would take the node's), with
    # a short temp dir of the job's own (a long path overflows a socket's name).
    RAY_TMPDIR=$(mktemp -d "/tmp/ns-$SLURM_JOB_ID.XXXXXX") || exit 1  # new, and this job's alone
    export RAY_TMPDIR
    cluster=(--num-cpus "$SLURM_CPUS_ON_NODE")
fi

stopping=""
# USR1: the time limit is near (only this shell is told): the runner is stopped as by a
# preemption (TERM: it saves and exits 130, and ignores the TERMs Slurm may send after), then
# the job requeues itself. TERM: scancel, `scontrol requeue` or preemption, which Slurm sends
# to the runner too; Slurm requeues a preempted job.
trap 'stopping=USR1; echo "noisesweep: time limit near: stopping to requeue"; kill -TERM "$runner" 2>/dev/null' USR1
trap 'stopping=TERM; echo "noisesweep: stopped by Slurm (TERM)"' TERM
"$PYTHON" -m sweeps.run {runner} "${{cluster[@]}}" "${{resume[@]}}" &
runner=$!
wait "$runner"; rc=$?
while kill -0 "$runner" 2>/dev/null; do wait "$runner"; rc=$?; done

for step in $ray_nodes; do kill "$step" 2>/dev/null; done
wait 2>/dev/null
if [ -n "${{RAY_TMPDIR:-}}" ]; then rm -rf "$RAY_TMPDIR"; fi
if [ "$stopping" = USR1 ] && [ "$rc" -eq 130 ]; then
    echo "noisesweep: requeueing job $SLURM_JOB_ID; it resumes the experiment"
    scontrol requeue "$SLURM_JOB_ID"
fi
exit "$rc"
"""

# Ports: a block of 2,000 for each job (by its id) and 200 of it for each of its nodes (by
# its rank), so that two jobs sharing a host, or two of a job's nodes on one host, do not
# collide. In a node's block: +0 Ray's GCS (the head), +1..+8 the node's servers, +20.. workers.
PORTS = {"port": 0, "node-manager-port": 1, "object-manager-port": 2, "ray-client-server-port": 3,
         "dashboard-port": 4, "dashboard-agent-listen-port": 5, "dashboard-agent-grpc-port": 6,
         "metrics-export-port": 7, "runtime-env-agent-port": 8, "min-worker-port": 20, "max-worker-port": 199}


def ports(job_id: int, node: int) -> dict:
    """Ray's ports for node `node` of Slurm job `job_id`."""
    base = 20000 + (job_id % 20) * 2000 + (node % 10) * 200
    return {flag: base + offset for flag, offset in PORTS.items()}


def ray_node_command(head: bool, address: str | None, gpus: int, env: dict) -> tuple[list[str], str]:
    """`ray start --block` for this node of the job (from its SLURM_* variables), and the
    node's temp dir."""
    # The workers' step leaves the head out: its SLURM_NODEID counts from 0 without it.
    job, node = int(env["SLURM_JOB_ID"]), 0 if head else 1 + int(env.get("SLURM_NODEID") or 0)
    temp = f"/tmp/ns-{job}-{node}-{os.getpid()}"  # a Slurm's job ids start again at 1 when it is reinstalled
    cmd = [sys.executable, "-m", "ray.scripts.scripts", "start", "--block", f"--temp-dir={temp}",
           f"--num-gpus={gpus}"]
    cpus = env.get("SLURM_CPUS_ON_NODE")
    if cpus:  # the allocation's CPUs, not the node's: Ray would take them all
        cmd.append(f"--num-cpus={cpus}")
    given = ports(job, node)
    if head:
        cmd += ["--head", "--include-dashboard=false", f"--node-ip-address={address.rsplit(':', 1)[0]}"]
    else:
        cmd.append(f"--address={address}")
        for flag in ("port", "ray-client-server-port", "dashboard-port"):  # the head's alone
            given.pop(flag)
    return cmd + [f"--{flag}={port}" for flag, port in given.items()], temp


def _node_main(argv: list[str]) -> int:
    """`python -m sweeps.slurm {address | wait ADDRESS [NODES] | node (--head | --address A) --gpus N}`:
    the job script's steps that need Python."""
    if argv[0] == "address":  # the head's GCS address (run on the head), as the others dial it
        from ray.util import get_node_ip_address  # the address Ray itself takes for this node

        print(f"{get_node_ip_address()}:{ports(int(os.environ['SLURM_JOB_ID']), 0)['port']}")
        return 0
    if argv[0] == "wait":  # until the head answers, or (given a count) that many nodes joined it
        host, port = argv[1].rsplit(":", 1)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                socket.create_connection((host, int(port)), timeout=2).close()
                break
            except OSError:
                time.sleep(1)
        else:
            print(f"noisesweep: Ray's head at {argv[1]} did not start in 120 s", file=sys.stderr)
            return 1
        if len(argv) > 2:
            import ray

            ray.init(address=argv[1], logging_level="ERROR")
            while len([n for n in ray.nodes() if n["Alive"]]) < int(argv[2]):
                if time.monotonic() > deadline:
                    print(f"noisesweep: {argv[2]} Ray nodes did not join in 120 s", file=sys.stderr)
                    return 1
                time.sleep(1)
            ray.shutdown()
        return 0
    p = argparse.ArgumentParser(prog="python -m sweeps.slurm node")
    p.add_argument("--head", action="store_true")
    p.add_argument("--address")
    p.add_argument("--gpus", type=int, default=0)
    a = p.parse_args(argv[1:])
    cmd, temp = ray_node_command(a.head, a.address, a.gpus, dict(os.environ))
    try:
        os.mkdir(temp, 0o700)  # new: a folder someone else made first is not taken over
    except FileExistsError:
        print(f"noisesweep: {temp} exists already; not this node's to use", file=sys.stderr)
        return 1
    node = subprocess.Popen(cmd)
    # srun passes the job's end on as TERM: `ray start --block` then stops the node's Ray.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda s, _: node.send_signal(s))
    rc = node.wait()
    shutil.rmtree(temp, ignore_errors=True)
    return rc


def submit(path: str) -> str:
    """`sbatch` the script at `path`; its job id."""
    if not shutil.which("sbatch"):
        raise SlurmError("sbatch: not found on PATH (is this a Slurm login node?); --print writes the script only")
    done = subprocess.run(["sbatch", "--parsable", path], capture_output=True, text=True)
    if done.returncode != 0:
        first = (done.stderr.strip() or done.stdout.strip() or f"exit {done.returncode}").splitlines()[0]
        raise SlurmError(f"sbatch {path}: {first}")
    return done.stdout.strip().split(";")[0]


def main(argv: list[str], prog: str = "noisesweep slurm") -> int:
    """Check, write and submit. Exit 0 submitted (or written, --print), 2 bad input."""
    from sweeps import options
    from sweeps.planning import plan_experiment
    from sweeps.storage import Storage, is_uri

    p = argparse.ArgumentParser(prog=prog, description="Run a grid as a Slurm batch job that starts Ray across "
                                "its allocation, and requeues itself at its time limit or when preempted, "
                                "resuming where it stopped. Every flag the runner takes is passed on.",
                                epilog="The script is written into the experiment folder (slurm/job.sbatch); "
                                "the job's output is slurm/slurm-JOBID.out beside it.")
    add_arguments(p)
    opts, rest = p.parse_known_args(argv)
    try:
        check(opts)
        args = options.parse(rest)
        if args.address or args.dry_run or args.list:
            bad = "--address" if args.address else "--dry-run" if args.dry_run else "--list"
            raise SlurmError(f"{bad}: not for a Slurm job (the job starts its own Ray; run the runner itself)")
        args = options.checked(args)
        one_line("--storage-path", args.storage_path)
        one_line("the working folder", os.getcwd())
        if is_uri(args.storage_path):
            raise SlurmError(f"--storage-path {args.storage_path}: a Slurm job writes its script and output into the "
                             "experiment folder; give a folder every node of the allocation shares (an NFS mount)")
        # Packs are planned by the job, for its allocation's slots (--pack auto times them there).
        plan = plan_experiment(args.replace(pack_size=args.pack_size or 1))  # checked as the runner does
    except (SlurmError, options.UsageError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # GridError and the rest the runner reports as bad input
        if type(e).__name__ not in ("GridError", "ArchError", "DataError", "LockError"):
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    storage = Storage(args.storage_path).path  # ~ expanded, made absolute: the job runs elsewhere
    argv_run = [*_without(rest, ("--name", "--storage-path", "--resume")), "--name", plan.name,
                "--storage-path", storage]
    exp = os.path.join(storage, plan.name)
    folder = os.path.join(exp, SLURM_DIR)
    path = os.path.join(folder, SCRIPT)
    made = [p for p in (exp, folder) if not os.path.exists(p)]  # what this command creates
    had = Storage(folder).read_bytes(SCRIPT)
    Storage(folder).write_bytes(script(exp, argv_run, opts, plan.name).encode(), SCRIPT)
    if opts.print:
        print(path)
        return 0
    try:
        job = submit(path)
    except SlurmError as e:
        # Nothing half-done: an experiment folder holding only a script nobody ran would
        # stop the same command, retried, with "already exists". Only what this command
        # made goes, and a folder only while empty: a runner may have started in it since.
        if had is None:
            os.unlink(path)
        else:
            Storage(folder).write_bytes(had, SCRIPT)
        for made_folder in reversed(made):
            with suppress(OSError):
                os.rmdir(made_folder)
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"submitted Slurm job {job}: {plan.name} ({path})")
    print(f"  output: {os.path.join(folder, f'slurm-{job}.out')}")
    print(f"  where it stands: noisesweep status {exp}")
    return 0


def _without(argv: list[str], flags: tuple) -> list[str]:
    """argv less `flags` (and the value of those that take one)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        name = a.split("=", 1)[0]
        if name in flags:
            skip = "=" not in a and name != "--resume"
            continue
        out.append(a)
    return out


if __name__ == "__main__":
    sys.exit(_node_main(sys.argv[1:]))
