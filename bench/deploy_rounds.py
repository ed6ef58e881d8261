"""Deployed rounds on loopback: round latency, bytes per node, coordinator and node costs.

A real federation, set up the way a person would with fedgov's commands: `fedgov audit init`,
`fedgov certs ca` and `coordinator`, `fedgov server start`, and per node `fedgov node init`, its
site file (the approved `fedgov app hash`, the purpose, 40 rows of its own CSV), `fedgov node
register`, `fedgov consent grant` and `fedgov node join`; then `fedgov run --nodes N --rounds R`,
repeated. Usage:

    python bench/deploy_rounds.py [--nodes 3,20] [--rounds 3] [--repeats 2] [--idle 15]

What it measures, per federation size:

- round latency: each round's seconds as the ServerApp measured them (`rounds.json` of `fedgov
  run --out`: from the round's selection to its central evaluation), the time from one round's
  progress line to the next as `fedgov run` printed them, the whole `fedgov run` wall, and the
  time from launch to the first round (Flower starts the ServerApp process);
- bytes: the model update's parameter bytes; the bytes on the wire between each node and the
  coordinator's Fleet port, counted by a TCP relay in this script (each node joins through its
  own relay port, which forwards to the Fleet proxy unchanged: TLS records, TCP payload, no
  TCP/IP headers), per round from the progress lines; and Flower's own message byte counts
  for the run (the SuperLink's `run.bytes_sent` / `bytes_recv`);
- the coordinator's CPU seconds (user + system, from /proc, of the whole tree of `fedgov server
  start`: the Fleet proxy in that process, flower-superlink, flower-superexec and each
  flwr-serverapp; reaped children count through their parent's cutime) and the peak of the
  tree's summed RSS, sampled every 0.25 s; the same for all the nodes' trees (`fedgov node
  join`, its gatekeeper thread, flower-supernode and each task process) and for `fedgov run`;
- idle: the same costs over `--idle` seconds with every node joined and no run (polling).

Every process it starts carries its own mark (BENCH_MARK in the environment); it stops only
those, by pid. Prints Markdown tables; `--json FILE` keeps the raw figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import resource
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
BIN = Path(sys.executable).parent
FEDGOV = BIN / "fedgov"
PURPOSE = "triage model"
PASSPHRASE = os.environ.get("FEDGOV_PASSPHRASE", "bench-passphrase")
MARK_VARIABLE = "BENCH_MARK"
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
ROUND_DONE = re.compile(r"round (\d+)/(\d+): \d+/\d+ nodes aggregated")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------- /proc


@dataclass
class Proc:
    ppid: int
    own: float  # utime + stime, seconds
    reaped: float  # cutime + cstime: children it has waited for
    rss: int  # bytes
    start: int  # starttime in ticks: tells a reused pid apart
    cmd: str


def read_procs() -> dict[int, Proc]:
    procs = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                cmd = f.read(400).replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        procs[int(entry.name)] = Proc(int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK,
                                      (int(fields[13]) + int(fields[14])) / TICK, int(fields[21]) * PAGE,
                                      int(fields[19]), cmd)
    return procs


def subtree(procs: dict[int, Proc], roots: list[int]) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid, p in procs.items():
        children.setdefault(p.ppid, []).append(pid)
    found, stack = [], [r for r in roots if r in procs]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, []))
    return found


COORDINATOR_PARTS = (("flwr-serverapp", "ServerApp (flwr-serverapp)"), ("flower-superexec", "flower-superexec"),
                     ("flower-superlink", "flower-superlink"), ("", "fedgov server start + Fleet proxy"))
NODE_PARTS = (("deploy.gatekeeper", "task processes (ClientApp)"), ("flower-supernode", "flower-supernode"),
              ("", "fedgov node join + gatekeeper"))


def part_of(cmd: str, parts: tuple[tuple[str, str], ...]) -> str:
    return next(name for word, name in parts if word in cmd)


class Tree:
    """CPU and RSS of the process trees under some roots, from /proc."""

    def __init__(self, roots: list[int], parts: tuple[tuple[str, str], ...]) -> None:
        self.roots, self.parts = roots, parts
        self.peak_rss = 0
        self.peak_parts: dict[str, int] = {}
        self.own: dict[tuple[int, int], tuple[str, float]] = {}  # (pid, start) -> (part, own CPU last seen)

    def sample(self, procs: dict[int, Proc]) -> tuple[float, int]:
        pids = subtree(procs, self.roots)
        cpu = sum(procs[p].own + procs[p].reaped for p in pids)
        rss = sum(procs[p].rss for p in pids)
        self.peak_rss = max(self.peak_rss, rss)
        by_part: dict[str, int] = {}
        for p in pids:
            key = (p, procs[p].start)
            if procs[p].cmd:
                part = part_of(procs[p].cmd, self.parts)
            else:  # a zombie's cmdline is empty: it keeps the part it had while it ran
                part = self.own.get(key, (part_of("", self.parts), 0.0))[0]
            by_part[part] = by_part.get(part, 0) + procs[p].rss
            self.own[key] = (part, procs[p].own)
        for part, value in by_part.items():
            self.peak_parts[part] = max(self.peak_parts.get(part, 0), value)
        return cpu, rss

    def reset(self) -> None:
        self.peak_rss, self.peak_parts = 0, {}

    def cpu_by_part(self, before: dict[tuple[int, int], tuple[str, float]]) -> dict[str, float]:
        """Own CPU per part since `before` (a copy of `own`); a process seen only after it counts from zero.
        A process that lived less than one sampling interval is missed here (not in the totals)."""
        out: dict[str, float] = {}
        for key, (part, seconds) in self.own.items():
            out[part] = out.get(part, 0.0) + seconds - before.get(key, (part, 0.0))[1]
        return out


class Sampler(threading.Thread):
    """Samples the coordinator's and the nodes' trees every `interval` seconds."""

    def __init__(self, trees: dict[str, Tree], interval: float = 0.25) -> None:
        super().__init__(daemon=True, name="sampler")
        self.trees, self.interval = trees, interval
        self.lock = threading.Lock()
        self.halt = threading.Event()

    def snapshot(self) -> dict[str, float]:
        """Total CPU seconds of each tree now (live processes and the children they reaped)."""
        procs = read_procs()
        with self.lock:
            return {name: tree.sample(procs)[0] for name, tree in self.trees.items()}

    def run(self) -> None:
        while not self.halt.wait(self.interval):
            self.snapshot()


# ---------------------------------------------------------------------------------------------- wire


class Relay:
    """A TCP relay per node in front of the Fleet proxy, counting bytes each way."""

    def __init__(self, upstream_port: int, names: list[str]) -> None:
        self.upstream_port = upstream_port
        self.up = dict.fromkeys(names, 0)  # node -> coordinator
        self.down = dict.fromkeys(names, 0)  # coordinator -> node
        self.connections = dict.fromkeys(names, 0)
        self.ports: dict[str, int] = {}
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        threading.Thread(target=self._serve, args=(names, ready), daemon=True, name="relay").start()
        ready.wait(10)

    def _serve(self, names: list[str], ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)

        async def start() -> None:
            for name in names:
                server = await asyncio.start_server(lambda r, w, n=name: self._pipe(n, r, w), "127.0.0.1", 0)
                self.ports[name] = server.sockets[0].getsockname()[1]
            ready.set()

        self.loop.run_until_complete(start())
        self.loop.run_forever()

    async def _pipe(self, name: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections[name] += 1
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return

        async def copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter, counter: dict[str, int]) -> None:
            try:
                while data := await src.read(65536):
                    counter[name] += len(data)
                    dst.write(data)
                    await dst.drain()
            except OSError:
                pass
            finally:
                dst.close()

        await asyncio.gather(copy(reader, up_writer, self.up), copy(up_reader, writer, self.down))

    def totals(self) -> dict[str, tuple[int, int]]:
        return {name: (self.up[name], self.down[name]) for name in self.up}


# ---------------------------------------------------------------------------------------------- federation


def site_file(node: Path, app_hash: str, offset: int) -> None:
    """The node's site file: its policy (the approved bundle, the purpose) and 40 rows of its own CSV."""
    from client.site import site_file_text
    from fedgov.datasets import load_split
    from fedgov.local_data import schema_for, write_csv

    pool, _ = load_split("breast-cancer", 42)
    start = offset % (len(pool.x) - 40)
    schema = schema_for("breast-cancer")
    write_csv(node / "data.csv", type(pool)(pool.name, pool.x[start:start + 40], pool.y[start:start + 40], 2), schema)
    (node / "policy.toml").write_text(site_file_text([PURPOSE], [app_hash], schema, max_update_bytes=10_000_000))


@dataclass
class Federation:
    root: Path
    nodes: int
    mark: str = field(default_factory=lambda: f"deploybench-{uuid.uuid4().hex}")
    link: int = field(default_factory=free_port)
    fleet: int = field(default_factory=free_port)
    server: subprocess.Popen | None = None
    joins: dict[str, subprocess.Popen] = field(default_factory=dict)
    relay: Relay | None = None
    events: dict[str, list[tuple[float, str]]] = field(default_factory=dict)  # node -> (time, what), from its log
    app_hash: str = ""  # what the sites approved: the bundle is the repository, so an edit to it changes the hash

    @property
    def names(self) -> list[str]:
        return [f"site-{i:02d}" for i in range(1, self.nodes + 1)]

    def env(self, coordinator: bool) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FEDGOV_", "FLWR_"))}
        env.update(FLWR_TELEMETRY_ENABLED="0", FLWR_DISABLE_UPDATE_CHECK="1", FLWR_HOME=str(self.root / "flwr-home"),
                   FEDGOV_HOME=str(self.root / "ws"), **{MARK_VARIABLE: self.mark})
        if coordinator:  # only the coordinator's commands hold the ledger's passphrase
            env["FEDGOV_PASSPHRASE"] = PASSPHRASE
        return env

    def fedgov(self, *args: str, coordinator: bool = True, timeout: float = 120) -> str:
        result = subprocess.run([str(FEDGOV), *args], capture_output=True, text=True, cwd=self.root,
                                env=self.env(coordinator), timeout=timeout)
        if result.returncode != 0:
            raise SystemExit(f"fedgov {' '.join(args[:2])} failed ({result.returncode}): {result.stderr[-2000:]}")
        return result.stdout

    def background(self, args: list[str], out: Path, coordinator: bool) -> subprocess.Popen:
        with open(out, "w") as sink:
            return subprocess.Popen([str(FEDGOV), *args], stdout=sink, stderr=subprocess.STDOUT, cwd=self.root,
                                    env=self.env(coordinator))

    def join(self, name: str) -> subprocess.Popen:
        """`fedgov node join` through the node's relay port; its output (the SuperNode's log) is read here,
        each line written to NAME.out and the times it received an instruction and sent a reply noted."""
        process = subprocess.Popen(
            [str(FEDGOV), "node", "join", "--dir", name, "--superlink", f"127.0.0.1:{self.relay.ports[name]}",
             "--ca", "coord/ca.crt", "--runtime-port", str(free_port())], stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, cwd=self.root, env=self.env(coordinator=False))
        events = self.events.setdefault(name, [])

        def read() -> None:
            with open(self.root / f"{name}.out", "wb") as out:
                for line in process.stdout:
                    now = time.monotonic()
                    out.write(line)
                    out.flush()
                    if b"Receiving: train message" in line:
                        events.append((now, "received"))
                    elif b"Sending: train message" in line:
                        events.append((now, "sending"))

        threading.Thread(target=read, daemon=True, name=f"log-{name}").start()
        return process

    def up(self, say) -> None:
        began = time.monotonic()
        self.fedgov("audit", "init")
        self.fedgov("certs", "ca", "--out", "ca")
        self.fedgov("certs", "coordinator", "--ca", "ca", "--out", "coord")
        out = self.root / "server.out"
        self.server = self.background(["server", "start", "--certs", "coord", "--listen", f"127.0.0.1:{self.fleet}",
                                       "--link-port", str(self.link)], out, coordinator=True)
        wait_for(out, "coordinator up", self.server)
        app_hash = self.app_hash = self.fedgov("app", "hash").strip()
        with ThreadPoolExecutor(2) as pool:  # node init needs no ledger: two at a time, one per core
            list(pool.map(lambda name: self.fedgov("node", "init", name, "--out", name, coordinator=False),
                          self.names))
        for i, name in enumerate(self.names):
            site_file(self.root / name, app_hash, 20 * i)
            self.fedgov("node", "register", f"{name}/registration.json", "--team", name, "--superlink",
                        f"127.0.0.1:{self.link}", "--ca", "coord/ca.crt")
            self.fedgov("consent", "grant", "--node", name, "--team", name, "--purpose", PURPOSE, "--data-category",
                        "imaging", "--notice-version", "1", "--notice-hash", "a" * 64)
        say(f"  coordinator up, {self.nodes} nodes initialised, registered, consented "
            f"({time.monotonic() - began:.0f} s)")
        self.relay = Relay(self.fleet, self.names)
        for name in self.names:
            self.joins[name] = self.join(name)
        self.wait_online(time.monotonic() + 300)
        say(f"  {self.nodes} nodes online ({time.monotonic() - began:.0f} s since setup began)")

    def wait_online(self, deadline: float) -> None:
        from deploy.launch import online_nodes
        from deploy.registration import control_client

        with control_client(f"127.0.0.1:{self.link}", self.root / "coord" / "ca.crt") as client:
            while len(online_nodes(client)) < self.nodes:
                for name, join in self.joins.items():
                    if join.poll() is not None:
                        raise SystemExit(f"node {name} stopped: {(self.root / f'{name}.out').read_text()[-2000:]}")
                if time.monotonic() > deadline:
                    raise SystemExit(f"only {len(online_nodes(client))} of {self.nodes} nodes online")
                time.sleep(1)

    def down(self) -> list[str]:
        """SIGTERM the joins, then the coordinator; any marked process still alive after is named and ended."""
        started = [*self.joins.values(), *([self.server] if self.server else [])]
        for process in started:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        codes = []
        for process in started:
            try:
                codes.append(process.wait(60))
            except subprocess.TimeoutExpired:
                process.kill()
                codes.append(process.wait())
        time.sleep(0.5)
        left = marked(self.mark)
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return [f"exit codes {sorted(set(codes))}"] + [f"left running, killed: {pid} {cmd}" for pid, cmd in left.items()]


def wait_for(path: Path, text: str, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while text not in (path.read_text() if path.exists() else ""):
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{text!r} never came: {path.read_text()[-3000:]}")
        time.sleep(0.2)


def marked(mark: str) -> dict[int, str]:
    """Live processes whose environment carries this bench's mark."""
    found = {}
    needle = f"{MARK_VARIABLE}={mark}".encode()
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            environ = (proc / "environ").read_bytes().split(b"\0")
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if state != "Z" and needle in environ:
            found[int(proc.name)] = cmd[:120]
    return found


# ---------------------------------------------------------------------------------------------- one run


def flower_run_record(database: Path, run_id: int) -> dict[str, float]:
    """Flower's own accounting of a run, from the SuperLink's state database (run ids are stored signed)."""
    signed = run_id - 2**64 if run_id >= 2**63 else run_id
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10) as db:
        row = db.execute("SELECT bytes_sent, bytes_recv, clientapp_runtime FROM run WHERE run_id = ?",
                         (signed,)).fetchone()
    return dict(zip(("bytes_sent", "bytes_recv", "clientapp_runtime"), row)) if row else {}


def node_timeline(fed: Federation, start: float, end: float, first_round_at: float | None) -> dict[str, list[float]]:
    """From the SuperNodes' logs: per node and round, the instruction's wait (round 1: from the ServerApp's
    "training starts" line; later rounds: from the node's previous reply), and the node's work (instruction
    received to reply ready: the gatekeeper's task process, the ClientApp, the SuperNode's push)."""
    wait, work = [], []
    for events in fed.events.values():
        mine = [(t, what) for t, what in list(events) if start <= t <= end]
        received = [t for t, what in mine if what == "received"]
        sending = [t for t, what in mine if what == "sending"]
        for k, (r, s) in enumerate(zip(received, sending)):
            work.append((k + 1, s - r))
            if k == 0 and first_round_at is not None:
                wait.append((1, r - (start + first_round_at)))
            elif k > 0:
                wait.append((k + 1, r - sending[k - 1]))
    return {"wait": wait, "work": work}


def server_pickup(fed: Federation, start: float, round_ends: list[tuple[int, float]]) -> list[float]:
    """Per round: from the last node's reply (its SuperNode's "Sending") to the round's progress line from the
    ServerApp. It holds the ServerApp's wait for its next pull (Flower's 3 s), the upload, aggregation, central
    evaluation and the ledger, and the log's way to `fedgov run` (Flower uploads and streams it every 0.2-0.5 s):
    the most a faster poll on the ServerApp's side could take off a round."""
    sending = [[t for t, what in list(events) if what == "sending" and t >= start] for events in fed.events.values()]
    pickup = []
    for k, (_, end) in enumerate(round_ends):
        last = [times[k] for times in sending if len(times) > k and times[k] <= end]
        if len(last) == len(sending):
            pickup.append(end - max(last))
    return pickup


def one_run(fed: Federation, sampler: Sampler, rounds: int, index: int) -> dict:
    out_dir = fed.root / "runs" / f"run-{index}"
    for tree in sampler.trees.values():
        tree.reset()
    own_before = {name: dict(tree.own) for name, tree in sampler.trees.items()}
    cpu_before = sampler.snapshot()
    wire = [(0, time.monotonic(), fed.relay.totals())]
    began = time.monotonic()
    process = subprocess.Popen([str(FEDGOV), "run", "--purpose", PURPOSE, "--superlink", f"127.0.0.1:{fed.link}",
                                "--ca", "coord/ca.crt", "--nodes", str(fed.nodes), "--rounds", str(rounds),
                                "--out", str(out_dir), "--wait", "300"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=fed.root,
                               env=fed.env(coordinator=True))
    lines, run_id, first_round_at = [], None, None
    for line in process.stdout:
        now = time.monotonic()
        lines.append(line.rstrip())
        if run_id is None and (m := re.search(r"run (\d+) started \(app bundle ([0-9a-f]+)", line)):
            run_id = int(m.group(1))
            if not fed.app_hash.startswith(m.group(2)):
                process.kill()
                raise SystemExit(f"the app bundle changed since the sites approved {fed.app_hash[:16]}… (it is "
                                 "built from the repository: was a file edited during the bench?)")
        if first_round_at is None and "training starts" in line:
            first_round_at = now - began
            wire[0] = (0, now, fed.relay.totals())
        if m := ROUND_DONE.search(line):
            wire.append((int(m.group(1)), now, fed.relay.totals()))
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - began
    cpu_after = sampler.snapshot()
    if process.returncode != 0:
        raise SystemExit(f"fedgov run failed ({process.returncode}):\n" + "\n".join(lines[-40:]))
    report = json.loads((out_dir / "rounds.json").read_text())
    timeline = node_timeline(fed, began, began + wall, first_round_at)
    per_round_wire = []
    for (_, t0, before), (rnd, t1, after) in zip(wire, wire[1:]):
        per_round_wire.append({"round": rnd, "printed_seconds": t1 - t0,
                               "up": {n: after[n][0] - before[n][0] for n in after},
                               "down": {n: after[n][1] - before[n][1] for n in after}})
    trees = sampler.trees
    return {
        "run_id": run_id, "wall": wall, "to_first_round": first_round_at, "load": os.getloadavg()[0],
        "round_seconds": [r["seconds"] for r in report["rounds"]],
        "serverapp_wall": report["wall_seconds"],
        "replies": [len(r.get("replies", [])) for r in report["rounds"]],
        "rejected": [r.get("rejected", []) for r in report["rounds"]],
        "wire": per_round_wire,
        "timeline": timeline,
        "pickup": server_pickup(fed, began, [(rnd, t) for rnd, t, _ in wire[1:]]),
        "flower": flower_run_record(fed.root / "ws" / "coordinator" / "state.db", run_id),
        "cpu": {name: cpu_after[name] - cpu_before[name] for name in trees},
        "cpu_parts": {name: tree.cpu_by_part(own_before[name]) for name, tree in trees.items()},
        "peak_rss": {name: tree.peak_rss for name, tree in trees.items()},
        "peak_rss_parts": {name: dict(tree.peak_parts) for name, tree in trees.items()},
        "run_command": {"cpu": usage.ru_utime + usage.ru_stime, "max_rss": usage.ru_maxrss * 1024},
    }


def idle(fed: Federation, sampler: Sampler, seconds: float) -> dict:
    for tree in sampler.trees.values():
        tree.reset()
    time.sleep(3)  # let the last joins settle
    cpu_before, wire_before, t0 = sampler.snapshot(), fed.relay.totals(), time.monotonic()
    time.sleep(seconds)
    cpu_after, wire_after, span = sampler.snapshot(), fed.relay.totals(), time.monotonic() - t0
    return {"seconds": span, "cpu": {n: (cpu_after[n] - cpu_before[n]) / span for n in cpu_after},
            "peak_rss": {n: t.peak_rss for n, t in sampler.trees.items()},
            "wire_per_node_per_s": statistics.mean(
                (wire_after[n][0] + wire_after[n][1] - wire_before[n][0] - wire_before[n][1]) / span
                for n in wire_after)}


def bench_size(nodes: int, rounds: int, repeats: int, idle_seconds: float, workdir: Path, say) -> dict:
    fed = Federation(Path(tempfile.mkdtemp(prefix=f"deploy-{nodes}-", dir=workdir)), nodes)
    say(f"{nodes} nodes: setting up in {fed.root}")
    result: dict = {"nodes": nodes, "rounds": rounds, "runs": []}
    try:
        fed.up(say)
        sampler = Sampler({"coordinator": Tree([fed.server.pid], COORDINATOR_PARTS),
                           "nodes": Tree([p.pid for p in fed.joins.values()], NODE_PARTS)})
        sampler.start()
        result["idle"] = idle(fed, sampler, idle_seconds)
        say(f"  idle {idle_seconds:.0f} s: coordinator {100 * result['idle']['cpu']['coordinator']:.1f} % of a core")
        for i in range(repeats):
            run = one_run(fed, sampler, rounds, i)
            result["runs"].append(run)
            if any(n != nodes for n in run["replies"]):
                reasons = sorted({r["reason"][:160] for rejected in run["rejected"] for r in rejected})
                say(f"  WARNING: run {i + 1} aggregated {run['replies']} replies of {nodes} per round; rejected: "
                    + "; ".join(reasons))
            say(f"  run {i + 1}: wall {run['wall']:.1f} s, rounds " +
                ", ".join(f"{s:.1f}" for s in run["round_seconds"]) + " s, coordinator CPU "
                f"{run['cpu']['coordinator']:.1f} s, peak RSS {run['peak_rss']['coordinator'] / 2**20:.0f} MB, "
                f"load average {run['load']:.1f}")
        sampler.halt.set()
    finally:
        result["teardown"] = fed.down()
        say(f"  stopped: {'; '.join(result['teardown'])}")
    return result


# ---------------------------------------------------------------------------------------------- report


def machine() -> str:
    import flwr

    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "?")
    mem = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal"))) / 2**20
    load = os.getloadavg()
    return (f"{os.cpu_count()} cores ({model}), {mem:.0f} GiB, {platform.machine()}, Python "
            f"{platform.python_version()}, flwr {flwr.__version__}; load average at start {load[0]:.2f}")


def mb(n: float) -> str:
    return f"{n / 2**20:.0f}"


def report(results: list[dict]) -> None:
    from fedgov.models import build_model

    params = sum(v.numel() * v.element_size() for v in build_model("breast-cancer", 42).state_dict().values())
    print(f"\nModel: breast-cancer MLP, {params:,} bytes of float32 parameters per update.\n")
    print("Round latency (s). Rounds: the ServerApp's own clock, selection to central evaluation; first round "
          "vs the rest.\n")
    print("| nodes | run | `fedgov run` wall | launch to first round | round 1 | rounds 2.. (mean) | "
          "between progress lines, rounds 2.. | load average after |")
    print("|---|---|---|---|---|---|---|---|")
    for res in results:
        for i, run in enumerate(res["runs"], 1):
            rest = run["round_seconds"][1:]
            printed = [w["printed_seconds"] for w in run["wire"][1:]]
            print(f"| {res['nodes']} | {i} | {run['wall']:.1f} | {run['to_first_round'] or float('nan'):.1f} | "
                  f"{run['round_seconds'][0]:.2f} | {statistics.mean(rest) if rest else float('nan'):.2f} | "
                  f"{statistics.mean(printed) if printed else float('nan'):.2f} | {run['load']:.1f} |")
    print("\nWhere a round goes, seen from the nodes' SuperNode logs (s; mean, and min-max, over nodes, rounds "
          "and runs). Wait: round 1 from the ServerApp's \"training starts\" line to the node receiving the "
          "instruction; later rounds from the node's previous reply to its next instruction. Work: instruction "
          "received to reply ready.\n")
    print("| nodes | wait, round 1 | wait, rounds 2.. | work, round 1 | work, rounds 2.. | last reply to the "
          "ServerApp's round line |")
    print("|---|---|---|---|---|---|")

    def spread(values: list[float]) -> str:
        return f"{statistics.mean(values):.2f} ({min(values):.1f}-{max(values):.1f})" if values else "-"

    for res in results:
        cells = []
        for key in ("wait", "work"):
            for first in (True, False):
                cells.append(spread([v for run in res["runs"] for k, v in run["timeline"][key] if (k == 1) == first]))
        cells.append(spread([v for run in res["runs"] for v in run.get("pickup", [])]))
        print(f"| {res['nodes']} | " + " | ".join(cells) + " |")
    print("\nBytes per node on the wire (TLS, TCP payload, counted at the relay), mean over nodes and runs; "
          "Flower's own message bytes per node per round.\n")
    print("| nodes | round 1 up / down | rounds 2.. up / down (per round) | idle, both ways (B/s) | Flower "
          "run.bytes_sent + bytes_recv per node per round |")
    print("|---|---|---|---|---|")
    for res in results:
        n, runs = res["nodes"], res["runs"]

        def mean_of(rounds_wanted, key):
            values = [statistics.mean(w[key].values()) for run in runs for w in run["wire"] if w["round"] in
                      rounds_wanted]
            return statistics.mean(values) if values else float("nan")

        later = set(range(2, res["rounds"] + 1))
        flower = [(run["flower"].get("bytes_sent", 0) + run["flower"].get("bytes_recv", 0)) / n / res["rounds"]
                  for run in runs]
        print(f"| {n} | {mean_of({1}, 'up'):,.0f} / {mean_of({1}, 'down'):,.0f} | "
              f"{mean_of(later, 'up'):,.0f} / {mean_of(later, 'down'):,.0f} | "
              f"{res['idle']['wire_per_node_per_s']:,.0f} | {statistics.mean(flower):,.0f} |")
    print("\nCPU seconds (user + system) per run, and peak summed RSS (MB); idle: share of one core, no run. ", end="")
    print("Above idle: minus the idle rate times the run's wall (the polling the nodes do anyway).\n")
    print("| nodes | run | coordinator CPU (s) | above idle | coordinator peak RSS | nodes' CPU (s), all | nodes' peak "
          "RSS, all | `fedgov run` CPU (s) / max RSS | idle: coordinator / nodes (% of a core) | idle RSS: "
          "coordinator / nodes |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for res in results:
        idle_ = res["idle"]
        for i, run in enumerate(res["runs"], 1):
            above = run["cpu"]["coordinator"] - idle_["cpu"]["coordinator"] * run["wall"]
            print(f"| {res['nodes']} | {i} | {run['cpu']['coordinator']:.1f} | {above:.1f} | "
                  f"{mb(run['peak_rss']['coordinator'])}"
                  f" | {run['cpu']['nodes']:.1f} | {mb(run['peak_rss']['nodes'])} | "
                  f"{run['run_command']['cpu']:.1f} / {mb(run['run_command']['max_rss'])} | "
                  f"{100 * idle_['cpu']['coordinator']:.1f} / {100 * idle_['cpu']['nodes']:.1f} | "
                  f"{mb(idle_['peak_rss']['coordinator'])} / {mb(idle_['peak_rss']['nodes'])} |")
    print("\nWhere the coordinator's CPU and memory go, last run of each size (own CPU s; peak RSS MB):\n")
    for side, table, head in (("coordinator", COORDINATOR_PARTS, "| nodes | "),
                              ("nodes", NODE_PARTS, "\n| nodes, all of them | ")):
        parts = [name for _, name in table]
        print(head + " | ".join(parts) + " |")
        print("|---|" + "---|" * len(parts))
        for res in results:
            run = res["runs"][-1]
            print(f"| {res['nodes']} | " + " | ".join(
                f"{run['cpu_parts'][side].get(p, 0):.1f}; {mb(run['peak_rss_parts'][side].get(p, 0))}"
                for p in parts) + " |")
    print("\nFlower's ClientApp runtime (SuperLink's run.clientapp_runtime), per node per round (s): " + ", ".join(
        f"{res['nodes']} nodes " + "/".join(f"{run['flower'].get('clientapp_runtime', 0) / res['nodes'] / res['rounds']:.2f}"
                                           for run in res["runs"]) for res in results))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", default="3,20", help="federation sizes, comma-separated")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2, help="`fedgov run`s on each federation")
    parser.add_argument("--idle", type=float, default=15.0, help="seconds of idle measurement before the runs")
    parser.add_argument("--workdir", type=Path, default=None, help="where the federations' directories go "
                        "(default: a new temporary directory, removed unless --keep)")
    parser.add_argument("--keep", action="store_true", help="keep the federations' directories")
    parser.add_argument("--json", type=Path, default=None, help="write the raw figures here")
    args = parser.parse_args()
    say = lambda text: print(text, flush=True)  # noqa: E731
    say(f"machine: {machine()}")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="deploybench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    results = [bench_size(int(n), args.rounds, args.repeats, args.idle, workdir, say) for n in args.nodes.split(",")]
    say(f"bench wall {time.monotonic() - began:.0f} s; load average at end {os.getloadavg()[0]:.2f}; "
        f"this process {resource.getrusage(resource.RUSAGE_SELF).ru_utime:.0f} s user CPU (relay, sampler)")
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    if not args.keep and args.workdir is None:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
