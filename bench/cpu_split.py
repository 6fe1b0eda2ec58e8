#!/usr/bin/env python3
"""Where the two cores go during the `ingest` or `sns` scenario (bench/README.md, "What bounds
the targets that do not hold").

Usage: bench/cpu_split.py [ingest|sns] [mariadb|sqlite]   (after bench/run.sh has built the
binaries; for `sns`, ALLIM_BENCH_PYTHON_SNS as bench/run.sh sets it, e.g.
target/bench-peers/python-sns/bin/python)

Runs `target/release/examples/bench <scenario>` against mysql://root@127.0.0.1:3306/allim_bench
(recreate it first), or with `sqlite` on the benchmark's own SQLite file, and reads, every 50 ms from /proc, the CPU of mariadbd, of the allim server
process, of the Python peer (sns), of the bench process (the load generator; in `ingest` also the
raw INSERTs' client) and the machine's idle time. Samples where allim is busy are its part; the
others are the baseline's (the raw INSERTs, or the Python peer). Prints cores used per part,
allim's threads one by one during its part (is one of them, SQLite's writer say, the one busy?),
then the scenario's own lines. Set ALLIM_BENCH_BIN to the musl build to measure the image's
binary.
"""
import collections
import os
import subprocess
import sys
import time

HZ = os.sysconf("SC_CLK_TCK")


def pids(pattern):
    out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout
    return [int(p) for p in out.split() if int(p) != os.getpid()]


def stat_cpu(path):
    """The name and CPU seconds (user + system) in a /proc stat file; None once it is gone."""
    try:
        stat = open(path).read()
        fields = stat.rsplit(")", 1)[1].split()
        return stat[stat.index("(") + 1 : stat.rindex(")")], (int(fields[11]) + int(fields[12])) / HZ
    except (OSError, IndexError, ValueError):
        return None


def cpu_seconds(pid_list):
    return sum(cpu for _, cpu in filter(None, (stat_cpu(f"/proc/{pid}/stat") for pid in pid_list)))


def thread_seconds(pid_list):
    """CPU seconds of each thread of these processes, keyed by (pid, tid, name)."""
    out = {}
    for pid in pid_list:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            found = stat_cpu(f"/proc/{pid}/task/{tid}/stat")
            if found:
                name, cpu = found
                out[(pid, tid, name)] = cpu
    return out


def idle_and_total():
    values = list(map(int, open("/proc/stat").readline().split()[1:]))
    return (values[3] + values[4]) / HZ, sum(values) / HZ


def main():
    scenario = sys.argv[1] if len(sys.argv) > 1 else "ingest"
    backend = sys.argv[2] if len(sys.argv) > 2 else "mariadb"
    if backend not in ("mariadb", "sqlite"):
        sys.exit(f"cpu_split.py: unknown backend {backend!r}: mariadb or sqlite")
    env = dict(os.environ, DATABASE_URL="mysql://root@127.0.0.1:3306/allim_bench")
    if backend == "sqlite":
        # Without DATABASE_URL the benchmark uses an SQLite file of its own.
        del env["DATABASE_URL"]
    log_path = f"/tmp/cpu_split-{scenario}-{backend}.log"
    log = open(log_path, "w")
    bench = subprocess.Popen(
        ["target/release/examples/bench", scenario], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    mariadbd = pids("mariadbd")
    # Each delta: the sample's columns, and allim's threads' CPU by (pid, tid, name).
    previous, previous_threads, deltas = None, {}, []
    while bench.poll() is None:
        # Each process is looked up again: the scenario starts and stops them.
        server_pids = pids("allim serve")
        threads = thread_seconds(server_pids)
        sample = (
            time.time(),
            cpu_seconds(mariadbd),
            cpu_seconds(server_pids),
            cpu_seconds(pids("uvicorn app:app")),
            cpu_seconds([bench.pid]),
            *idle_and_total(),
        )
        if previous:
            by_thread = {key: cpu - previous_threads[key] for key, cpu in threads.items() if key in previous_threads}
            deltas.append(([a - b for a, b in zip(sample, previous)], by_thread))
        previous, previous_threads = sample, threads
        time.sleep(0.05)
    baseline = "raw INSERTs" if scenario == "ingest" else "Python peer"
    # The column of the baseline's busy process: MariaDB under the raw INSERTs (on SQLite they
    # run in the bench process itself), or the Python peer.
    busy = (1 if backend == "mariadb" else 4) if scenario == "ingest" else 3
    parts = {"allim": [0.0] * 7, baseline: [0.0] * 7}
    # allim's part thread by thread: whether one thread (SQLite's writer, say) is the one busy.
    allim_threads = collections.Counter()
    for d, by_thread in deltas:
        dt, db, server, peer, client = d[:5]
        # A process that started or stopped within a sample shows as a negative or huge delta.
        if min(db, server, peer, client) < 0:
            continue
        if server / dt > 0.1:
            name = "allim"
            allim_threads.update(by_thread)
        elif d[busy] / dt > 0.3:
            name = baseline
        else:
            continue
        parts[name] = [a + b for a, b in zip(parts[name], d)]
    cores = os.cpu_count()
    for name, (dt, db, server, peer, client, idle, total) in parts.items():
        if dt:
            print(
                f"{name}: {dt:.1f} s; cores used: mariadbd {db / dt:.2f}, allim {server / dt:.2f}, "
                f"python peer {peer / dt:.2f}, bench {client / dt:.2f}; idle {cores * idle / total:.2f} of {cores}"
            )
    dt = parts["allim"][0]
    if dt:
        busiest = allim_threads.most_common()
        shown = ", ".join(f"{name} {cpu / dt:.2f}" for (_, _, name), cpu in busiest if cpu / dt >= 0.01)
        print(f"allim's threads during its part (cores, busiest first): {shown}")
    log.close()
    print(open(log_path).read())


if __name__ == "__main__":
    main()
