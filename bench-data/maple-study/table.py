#!/usr/bin/env python3
"""Print the README tables from results.json (no number is typed by hand)."""
import json
import sys
from pathlib import Path

d = json.loads((Path(__file__).parent / "results.json").read_text())
K = ("patched", "maple")
m = d["meta"]
print(f"accel: {sorted({r['accel'] for r in d['rounds']})}, vcpus {m['vcpus']}, "
      f"possible_cpus {m['possible_cpus']}, scale {m['scale']}, rounds {m['rounds']}, "
      f"insn_rounds {m['insn_rounds']}, date {m['date']}")
print()


def med(case, k, key="kernels"):
    v = d["summary"].get(case, {}).get(key, {}).get(k)
    return v["median"] if v else None


def fmt(x, digits=0):
    if x is None:
        return "-"
    return f"{x:,.{digits}f}"


print("| case | metric | patched | maple | maple/patched | insns/op patched | insns/op maple | insns maple/patched |")
print("|---|---|---|---|---|---|---|---|")
for case, s in d["summary"].items():
    if "metric" not in s:
        continue
    p, q = med(case, "patched"), med(case, "maple")
    ip, iq = med(case, "patched", "insns"), med(case, "maple", "insns")
    r = f"{q / p:.2f}x" if p and q else "-"
    ir = f"{iq / ip:.2f}x" if ip and iq else "-"
    dig = 1 if "bytes" in s["metric"] else 0
    print(f"| {case} | {s['metric']} | {fmt(p, dig)} | {fmt(q, dig)} | {r} | {fmt(ip)} | {fmt(iq)} | {ir} |")

print()
print("Memory cases, bytes per live timer from the time round's slab deltas "
      "(median of the case's reps). `named` is the harness metric "
      "timer_caches_bytes_per_timer = posix_timers_cache + radix_tree_node + sigqueue; "
      "it does NOT include maple_node, so `named+maple_node` is the comparable figure; "
      "`all caches` is bytes_per_timer over every slab cache that changed.")
print()
print("| case | kernel | timers | posix_timers_cache | sigqueue | radix_tree_node | maple_node | named | named+maple_node | all caches |")
print("|---|---|---|---|---|---|---|---|---|---|")
for r in d["rounds"]:
    if r["mode"] != "time":
        continue
    for case, c in r["cases"].items():
        if not case.startswith("e.memory"):
            continue
        n = c["timers"]
        caches = c["caches"]

        def per(name):
            x = caches.get(name, {}).get("delta_bytes", 0)
            return x / n

        named = c["timer_caches_bytes_per_timer"]
        print(f"| {case} | {r['kernel']} | {n} | {per('posix_timers_cache'):.1f} | "
              f"{per('sigqueue'):.1f} | {per('radix_tree_node'):.1f} | {per('maple_node'):.1f} | "
              f"{named:.1f} | {named + per('maple_node'):.1f} | {c['bytes_per_timer']:.1f} |")

print()
print("f.exit (time to exit a process holding the timers; no instruction count; exit_ns is the median "
      "of the case's reps, min-max in brackets; the insns round is a second, instrumented timing sample):")
print()
print("| kernel | round | timers | exit_ns | min-max | empty_exit_ns |")
print("|---|---|---|---|---|---|")
for r in d["rounds"]:
    c = r["cases"].get("f.exit")
    if c:
        print(f"| {r['kernel']} | {r['mode']} | {c['timers']} | {c['exit_ns']:,} | "
              f"{c['exit_ns_min']:,}-{c['exit_ns_max']:,} | {c['empty_exit_ns']:,} |")
der = d["summary"].get("derived", {})
for k, v in der.items():
    print()
    print(f"derived {k}: " + ", ".join(
        f"{kern}: {x['legacy_restore_seconds']:,.0f} s{' (extrapolated)' if x.get('extrapolated') else ''}"
        for kern, x in v.items()))
