#!/usr/bin/env python3
"""Where the cores go during the `ingest` scenario on MariaDB (bench/README.md, "What bounds").

Runs `target/release/examples/bench ingest` against mysql://root@127.0.0.1:3306/allim_bench
(recreate it first; bench/run.sh builds the binaries) and reads, every 50 ms from /proc, the CPU
of mariadbd, of the allim server process, of the bench process (the load generator, and the raw
INSERTs' client) and the machine's idle time. Samples where allim is busy are its rounds; samples
where allim is idle and mariadbd busy are the raw INSERTs'. Prints cores used per phase, then the
scenario's own lines. Set ALLIM_BENCH_BIN to the musl build to measure the image's binary.
"""
import os
import subprocess
import time

HZ = os.sysconf("SC_CLK_TCK")


def pids(pattern):
    out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def cpu_seconds(pid):
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / HZ
    except (OSError, IndexError):
        return None


def idle_and_total():
    values = list(map(int, open("/proc/stat").readline().split()[1:]))
    return (values[3] + values[4]) / HZ, sum(values) / HZ


def main():
    env = dict(os.environ, DATABASE_URL="mysql://root@127.0.0.1:3306/allim_bench")
    log = open("/tmp/ingest_cpu-bench.log", "w")
    bench = subprocess.Popen(["target/release/examples/bench", "ingest"], env=env, stdout=log, stderr=subprocess.STDOUT)
    mariadbd = pids("mariadbd")[0]
    previous, deltas = None, []
    while bench.poll() is None:
        allim = pids("allim serve")
        busy = sum(filter(None, (cpu_seconds(p) for p in allim))) if allim else 0.0
        sample = (time.time(), cpu_seconds(mariadbd), busy, cpu_seconds(bench.pid) or 0.0, *idle_and_total())
        if previous and allim:
            deltas.append([a - b for a, b in zip(sample, previous)])
        previous = sample if allim else None
        time.sleep(0.05)
    phases = {"allim's rounds": [0.0] * 6, "raw INSERTs": [0.0] * 6}
    for d in deltas:
        dt, db, server, client = d[:4]
        name = "allim's rounds" if server / dt > 0.1 else "raw INSERTs" if db / dt > 0.3 else None
        if name:
            phases[name] = [a + b for a, b in zip(phases[name], d)]
    for name, (dt, db, server, client, idle, total) in phases.items():
        if dt:
            print(
                f"{name}: {dt:.1f} s; cores used: mariadbd {db / dt:.2f}, allim {server / dt:.2f}, "
                f"bench {client / dt:.2f}; idle {os.cpu_count() * idle / total:.2f} of {os.cpu_count()}"
            )
    log.close()
    print(open("/tmp/ingest_cpu-bench.log").read())


if __name__ == "__main__":
    main()
