#!/usr/bin/env python3
"""The headline figures of a bench/cluster.sh run, one row per configuration (a Markdown table).

    python3 bench/cluster_table.py <out dir> <scenario> <label>...

Reads <out dir>/cluster-<scenario>-<label>.json (the load generator's result line: its worker
processes' reports are already merged into it) and .nodes.json (each node's RSS and CPU before
and after the run, from /proc). Labels are <CLUSTER>-<nodes>, e.g. off-1 rabbitmq-3.
"""

import json
import sys


def last_json_line(path):
    """The last line of `path` that parses as a JSON object, or None."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def get(obj, *keys):
    """obj[k1][k2]... or None when any step is missing."""
    for k in keys:
        if not isinstance(obj, dict) or k not in obj:
            return None
        obj = obj[k]
    return obj


def fmt(x):
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:,.2f}".rstrip("0").rstrip(".")
    if isinstance(x, int):
        return f"{x:,}"
    return str(x)


def pair(a, b):
    return f"{fmt(a)} / {fmt(b)}"


def node_totals(nodes):
    """Sum of RSS after (MiB), sum of RSS growth (MiB), CPU seconds during the run; Nones
    without figures."""
    before, after = nodes.get("before") or [], nodes.get("after") or []
    if not after:
        return None, None, None
    rss = sum(n.get("rss_kib") or 0 for n in after)
    grown = rss - sum(n.get("rss_kib") or 0 for n in before)
    cpu = sum(n.get("cpu_secs") or 0 for n in after) - sum(n.get("cpu_secs") or 0 for n in before)
    return round(rss / 1024, 1), round(grown / 1024, 1), round(cpu, 2)


def row(label, result, nodes):
    r = (result or {}).get("results") or {}
    connected = get(r, "connect", "connected")
    rss_mib, grown_mib, cpu = node_totals(nodes or {})
    per_conn = r.get("rss_per_conn_kib")
    if per_conn is None and connected and grown_mib is not None:
        per_conn = round(grown_mib * 1024 / connected, 2)
    if result is None:
        ok = "no result"
    elif result.get("ok"):
        ok = "yes"
    else:
        ok = f"no ({result['error']})" if "error" in result else "no"
    return [
        label,
        ok,
        fmt(connected),
        fmt(r.get("deliveries")),
        pair(r.get("lost"), r.get("duplicates")),
        pair(get(r, "latency", "p50_ms"), get(r, "latency", "p99_ms")),
        pair(get(r, "pushes", "accept_latency", "p50_ms"), get(r, "pushes", "accept_latency", "p99_ms")),
        fmt(per_conn),
        fmt(rss_mib),
        fmt(cpu),
    ]


HEADER = [
    "config", "ok", "connected", "deliveries", "lost / dup", "delivery p50 / p99 ms",
    "push→2xx p50 / p99 ms", "RSS KiB/conn", "nodes' RSS MiB", "nodes' CPU s",
]


def table(out, scenario, labels):
    rows = [HEADER, ["---"] * len(HEADER)]
    for label in labels:
        base = f"{out}/cluster-{scenario}-{label}"
        rows.append(row(label, last_json_line(base + ".json"), last_json_line(base + ".nodes.json")))
    return "\n".join("| " + " | ".join(r) + " |" for r in rows)


def main(argv):
    if len(argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    print(f"{argv[2]}:")
    print(table(argv[1], argv[2], argv[3:]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
