"""A real, throw-away, single-machine Slurm for tests.

    from tests.slurm_local import local_slurm, why_unavailable

    reason = why_unavailable()          # None, or "slurmd not installed ..."
    if reason: pytest.skip(reason)
    with local_slurm(tmp_path / "slurm", cpus=2) as slurm:
        subprocess.run(["sbatch", "job.sh"], env=slurm.env, check=True)

`local_slurm` writes a slurm.conf into its folder, starts `slurmctld` and one
`slurmd` per node (and a private `munged` when the Slurm build needs munge),
waits until every node is idle, yields a `LocalSlurm` (environment for
subprocesses plus paths) and, on exit -- also when the body raised -- cancels
all jobs, stops the daemons and kills whatever they left behind.

Everything (state, spool, logs, pid files, sockets, keys) lives in the folder;
the only things shared with the machine are two free TCP ports and the
binaries. Written for and tested with Debian 12's Slurm 22.05.8 run as root
without systemd (`apt-get install -y slurmctld slurmd slurm-client munge`).

Timing facts worth knowing when writing tests (Slurm 22.05, compiled in, not
configurable): slurmctld checks time limits and `--signal=...@N` warnings
only every 30 s (PERIODIC_TIMEOUT). A `--signal=B:USR1@N` arrives at the
first check at which `now >= end - N - 30`, i.e. between N and N+30 s before
the end; the time limit kills at the first check after the end (so up to
30 s late), then SIGKILL follows KillWait seconds after SIGTERM. `--time`
has a 1-minute granularity (seconds are rounded up). For a prompt signal in
a test, send it yourself: `scancel --batch --signal=USR1 JOBID`.
A requeued job waits `cred_expire` + 1 s before it may start again (default
121 s); we set `AuthInfo=cred_expire=5`, the smallest value allowed, and
`SchedulerParameters=sched_interval=1` so that it then starts within ~1 s
(instead of at the next 60 s scheduling pass).
"""

from __future__ import annotations

import contextlib
import getpass
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

# Where Debian/Ubuntu put the daemons; often not on a non-root user's PATH.
_SBIN = ["/usr/sbin", "/usr/local/sbin", "/sbin"]
DAEMONS = ["slurmctld", "slurmd"]
CLIENTS = ["sbatch", "squeue", "sinfo", "scontrol", "scancel"]


def _which(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path=os.pathsep.join(_SBIN))


def missing() -> list[str]:
    """Names of the Slurm programs this module needs that are not installed
    (munged is only needed, and so only reported, for a Slurm without
    auth/none, i.e. 23.11 and newer)."""
    gone = [name for name in DAEMONS + CLIENTS if _which(name) is None]
    if not gone and default_auth() == "auth/munge" and _which("munged") is None:
        gone.append("munged")
    return gone


def available() -> bool:
    """Whether a local Slurm can be started here (binaries installed, and on
    Linux, where the /proc clean-up works)."""
    return why_unavailable() is None


def why_unavailable() -> str | None:
    """None when `local_slurm` can run here, else a reason for pytest.skip."""
    if not Path("/proc/self/environ").exists():
        return "local Slurm needs Linux (/proc)"
    gone = missing()
    if gone:
        return (f"Slurm not installed: {', '.join(gone)} not found "
                "(Debian/Ubuntu: apt-get install -y slurmctld slurmd slurm-client munge)")
    return None


def slurm_version() -> tuple[int, int]:
    """(major, minor) of the installed Slurm, from `slurmd -V` ("slurm-wlm 22.05.8");
    (client commands such as `sinfo -V` fail without a slurm.conf)."""
    out = subprocess.run([_which("slurmd") or "slurmd", "-V"], capture_output=True,
                         text=True, check=True).stdout
    m = re.search(r"(\d+)\.(\d+)", out)
    if not m:
        raise RuntimeError(f"cannot read the Slurm version from {out!r}")
    return int(m.group(1)), int(m.group(2))


def default_auth() -> str:
    """"auth/none" where the installed Slurm still has it (and cred/none):
    up to 23.02, removed in 23.11; then no munged is needed. Else "auth/munge"."""
    try:
        return "auth/none" if slurm_version() < (23, 11) else "auth/munge"
    except (OSError, subprocess.CalledProcessError, RuntimeError):
        return "auth/munge"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LocalSlurm:
    """What `local_slurm` yields."""
    folder: Path
    conf: Path                   # slurm.conf
    env: dict[str, str]          # os.environ plus `extra_env`: pass as env= to subprocess
    extra_env: dict[str, str]    # only what this Slurm needs (SLURM_CONF, PATH)
    nodes: list[str]             # node names, e.g. ["node1"]
    partition: str               # "debug", the default partition
    log_dir: Path                # slurmctld.log, slurmd.<node>.log, jobcomp.log, munged.log
    startup_s: float = 0.0       # how long starting took
    daemons: dict[str, subprocess.Popen] = field(default_factory=dict)

    def run(self, *args: str, check: bool = True, timeout: float = 60) -> str:
        """Run a Slurm command (e.g. "squeue", "-h") against this Slurm; its stdout."""
        done = subprocess.run(list(args), env=self.env, capture_output=True, text=True,
                              timeout=timeout)
        if check and done.returncode:
            raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}): "
                               f"{done.stderr.strip() or done.stdout.strip()}")
        return done.stdout

    def sbatch(self, *args: str) -> str:
        """`sbatch --parsable ARGS`; the job id."""
        return self.run("sbatch", "--parsable", *args).strip().split(";")[0]

    def job(self, job_id: str) -> dict[str, str]:
        """`scontrol show job` as a dict (JobState, Restarts, ExitCode, NodeList,
        StartTime, ...); {} once the job has been forgotten (MinJobAge = 300 s
        after it ended; log_dir/jobcomp.log keeps a line per ended job)."""
        out = self.run("scontrol", "-o", "show", "job", job_id, check=False)
        return dict(re.findall(r"(\w+)=(\S*)", out))

    def wait_job(self, job_id: str, states=("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"),
                 timeout: float = 180, poll: float = 0.5) -> dict[str, str]:
        """Wait until the job's JobState is one of `states`; its `job()` dict."""
        deadline = time.monotonic() + timeout
        while True:
            info = self.job(job_id)
            if info.get("JobState") in states:
                return info
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} not in {states} after {timeout} s: {info}")
            time.sleep(poll)

    def log(self, name: str = "slurmctld.log", lines: int = 40) -> str:
        """The last lines of a log in log_dir, for failure messages."""
        path = self.log_dir / name
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _write_conf(folder: Path, *, nodes: list[str], cpus: int, memory_mb: int, auth: str,
                ctld_port: int, node_ports: list[int], munge_socket: Path | None,
                user: str, extra: str) -> Path:
    host = socket.gethostname().split(".")[0]
    # One line per slurmd, all on this host, each with its own port; the node
    # names are ours (slurmd -N says which one a slurmd is).
    node_lines = "\n".join(
        f"NodeName={n} NodeHostname={host} NodeAddr=127.0.0.1 Port={p} CPUs={cpus} "
        f"RealMemory={memory_mb} State=UNKNOWN" for n, p in zip(nodes, node_ports))
    auth_info = "cred_expire=5"     # requeued jobs may restart after 6 s, not 121 s
    if munge_socket is not None:
        auth_info += f",socket={munge_socket}"   # read by daemons *and* client commands
    text = f"""\
# Written by tests/slurm_local.py: a throw-away single-machine Slurm.
ClusterName=localtest
# SlurmctldHost must be this machine's short name (slurmctld refuses to run
# otherwise); the address in brackets avoids relying on name resolution.
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmUser={user}
SlurmdUser={user}

AuthType={auth}
CredType={"cred/none" if auth == "auth/none" else "cred/munge"}
AuthInfo={auth_info}

# No cgroups, no affinity: works in containers and without systemd (and
# needs no cgroup.conf).
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
# No slurmdbd, so no sacct: one line per finished (or requeued) job instead.
JobCompType=jobcomp/filetxt
JobCompLoc={folder}/log/jobcomp.log
MpiDefault=none
SwitchType=switch/none

# Jobs share nodes CPU by CPU (two 1-CPU jobs run together on a 2-CPU node).
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
# FIFO, started as soon as submitted (no 30 s backfill cycle). sched_interval:
# the full scheduling pass (default every 60 s) is what starts a job whose
# begin time has passed, e.g. a requeued one; every 1 s instead.
SchedulerType=sched/builtin
SchedulerParameters=sched_interval=1

# Requeue and restart: `scontrol requeue`, `sbatch --requeue`.
JobRequeue=1
ReturnToService=2
# Trust the numbers below rather than the hardware (e.g. cpus=4 on 2 cores).
SlurmdParameters=config_overrides

# Timers. Time limits and --signal warnings are checked every 30 s anyway
# (compiled in); these make the rest prompt.
KillWait=5
OverTimeLimit=0
MinJobAge=300
MessageTimeout=10
SlurmdTimeout=60
SlurmctldTimeout=60
InactiveLimit=0
Waittime=0

# Everything inside the folder.
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool/%n
SlurmctldPidFile={folder}/run/slurmctld.pid
SlurmdPidFile={folder}/run/slurmd.%n.pid
SlurmctldLogFile={folder}/log/slurmctld.log
SlurmdLogFile={folder}/log/slurmd.%n.log
SlurmctldDebug=info
SlurmdDebug=info

{node_lines}
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
{extra}
"""
    conf = folder / "slurm.conf"
    conf.write_text(text)
    return conf


def _start_munged(folder: Path, env: dict[str, str]) -> tuple[subprocess.Popen, Path]:
    """A private munged with its own key and socket in folder/munge (0700),
    for a Slurm without auth/none. munged insists on a key readable only by
    its user and on private directories."""
    mdir = folder / "munge"
    mdir.mkdir(mode=0o700)
    key = mdir / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    sock = mdir / "munge.socket"
    proc = subprocess.Popen(
        [_which("munged") or "munged", "--foreground", "--force",
         f"--socket={sock}", f"--key-file={key}", f"--pid-file={mdir / 'munged.pid'}",
         f"--seed-file={mdir / 'munged.seed'}", f"--log-file={folder / 'log' / 'munged.log'}",
         "--num-threads=2"],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        start_new_session=True)
    _wait(lambda: sock.exists() or proc.poll() is not None, 20, "munged socket")
    if proc.poll() is not None:
        raise RuntimeError(f"munged exited ({proc.returncode}): "
                           f"{(folder / 'log' / 'munged.log').read_text(errors='replace')[-2000:]}")
    return proc, sock


def _wait(ready, timeout: float, what: str, poll: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise TimeoutError(f"local Slurm: {what} not ready after {timeout} s")
        time.sleep(poll)


def _ours(conf: Path) -> list[int]:
    """Pids of processes that carry SLURM_CONF=<our conf> in their environment
    -- the daemons (we start them so), every slurmstepd (slurmd's children keep
    its environment), the jobs' processes (sbatch exports the submitter's
    environment, `LocalSlurm.env`) -- and all their descendants (jobs
    submitted with --export=NONE)."""
    marker = f"SLURM_CONF={conf}".encode()
    marked, parent = set(), {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        pid = int(entry.name)
        try:
            # /proc/PID/stat: "pid (comm) state ppid ..."; comm may hold spaces.
            parent[pid] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                marked.add(pid)
        except (OSError, ValueError, IndexError):      # gone, or not ours to read
            pass
    ours, grew = set(marked), True
    while grew:
        more = {pid for pid, ppid in parent.items() if ppid in ours and pid not in ours}
        ours |= more
        grew = bool(more)
    return sorted(ours)


def _stop(proc: subprocess.Popen, timeout: float = 15) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@contextlib.contextmanager
def local_slurm(folder: Path, cpus: int = 2, nodes: int = 1, memory_mb: int = 2048,
                auth: str | None = None, startup_timeout: float = 60, extra_conf: str = ""):
    """Start a private Slurm whose files all live in `folder` (created; best
    under a temporary directory, and short: unix socket paths must stay under
    108 bytes), yield a `LocalSlurm`, stop it all on exit.

    cpus, memory_mb: per node (not checked against the hardware).
    nodes > 1: one slurmd per node ("node1", "node2", ...), all on this host,
      each on its own port (`slurmd -N nodeN`); works with Debian 12's 22.05.8.
    auth: "auth/none" or "auth/munge" (a private munged in folder/munge);
      default: `default_auth()`.
    extra_conf: lines appended to slurm.conf; a repeated key overrides ours.
    """
    started = time.monotonic()
    folder = Path(folder).absolute()
    if len(str(folder)) > 70:   # slurmd's step sockets: <folder>/spool/node1/node1_<job>.<step>
        raise ValueError(f"local Slurm folder path too long for unix sockets (108 bytes): {folder}")
    for sub in ("state", "spool", "run", "log"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    names = [f"node{i + 1}" for i in range(nodes)]
    for name in names:
        (folder / "spool" / name).mkdir(exist_ok=True)
    auth = auth or default_auth()
    if auth not in ("auth/none", "auth/munge"):
        raise ValueError(f"auth must be auth/none or auth/munge, not {auth!r}")
    sbin_path = os.pathsep.join(
        dict.fromkeys(str(Path(p).parent) for p in map(_which, DAEMONS + CLIENTS) if p))
    path = os.pathsep.join(filter(None, [sbin_path, os.environ.get("PATH", "")]))
    conf = folder / "slurm.conf"
    extra_env = {"SLURM_CONF": str(conf), "PATH": path}
    # Drop what a surrounding Slurm job (or user settings) would leak into ours.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLURM_", "SBATCH_", "SALLOC_", "SRUN_", "SQUEUE_"))}
    env.update(extra_env)

    daemons: dict[str, subprocess.Popen] = {}
    slurm = None
    try:
        munge_socket = None
        if auth == "auth/munge":
            # (without SLURM_CONF, so that the clean-up below leaves it to the end)
            daemons["munged"], munge_socket = _start_munged(
                folder, {k: v for k, v in env.items() if k != "SLURM_CONF"})
        _write_conf(folder, nodes=names, cpus=cpus, memory_mb=memory_mb, auth=auth,
                    ctld_port=_free_port(), node_ports=[_free_port() for _ in names],
                    munge_socket=munge_socket, user=getpass.getuser(), extra=extra_conf)
        # -D: stay in the foreground so we own the pid; -c: ignore any saved state.
        commands = {"slurmctld": [_which("slurmctld"), "-D", "-c", "-f", str(conf)]}
        for name in names:   # -N: which NodeName this slurmd is (need not be the host's)
            commands[f"slurmd.{name}"] = [_which("slurmd"), "-D", "-N", name, "-f", str(conf)]
        for name, command in commands.items():
            with open(folder / "log" / f"{name}.out", "wb") as out:
                daemons[name] = subprocess.Popen(
                    command, env=env, stdin=subprocess.DEVNULL, stdout=out,
                    stderr=subprocess.STDOUT, start_new_session=True)
        slurm = LocalSlurm(folder=folder, conf=conf, env=env, extra_env=extra_env,
                           nodes=names, partition="debug", log_dir=folder / "log",
                           daemons=daemons)

        def idle() -> bool:
            for name, proc in daemons.items():
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"local Slurm: {name} exited ({proc.returncode}):\n"
                        + (folder / "log" / f"{name}.out").read_text(errors="replace")[-2000:]
                        + slurm.log(f"{name}.log"))
            done = subprocess.run(["sinfo", "-h", "-N", "-o", "%N %t"], env=env,
                                  capture_output=True, text=True)
            states = dict(line.split() for line in done.stdout.splitlines() if line.strip())
            return done.returncode == 0 and all(states.get(n) == "idle" for n in names)

        try:
            _wait(idle, startup_timeout, "nodes idle in sinfo", poll=0.5)
        except TimeoutError as e:
            raise TimeoutError(f"{e}\n--- slurmctld.log ---\n{slurm.log()}") from None
        slurm.startup_s = time.monotonic() - started
        yield slurm
    finally:
        # 1. Cancel every job, so slurmstepd and job processes end cleanly
        #    (slurmstepd outlives slurmd by design).
        if "slurmctld" in daemons and daemons["slurmctld"].poll() is None:
            with contextlib.suppress(Exception):
                subprocess.run(["scancel", "--user", getpass.getuser()], env=env,
                               capture_output=True, timeout=15)
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline and subprocess.run(
                        ["squeue", "-h", "-t", "RUNNING,COMPLETING,CONFIGURING"], env=env,
                        capture_output=True, text=True, timeout=15).stdout.strip():
                    time.sleep(0.5)
        # 2. Stop the daemons: slurmd first, then slurmctld.
        for name in [n for n in daemons if n.startswith("slurmd")] + ["slurmctld"]:
            if name in daemons:
                with contextlib.suppress(Exception):
                    _stop(daemons[name])
        # 3. Kill whatever is left that belongs to this Slurm.
        for _ in range(3):
            pids = _ours(conf)
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.3)
        # 4. munged last: the others need it to the end.
        if "munged" in daemons:
            with contextlib.suppress(Exception):
                _stop(daemons["munged"])
