#!/usr/bin/env python3
"""Turns a benchmark run's output into bench/RESULTS-latest.md and README's table.

    scripts/bench_report.py RUN_OUTPUT [--readme README.md] [--latest bench/RESULTS-latest.md]

RUN_OUTPUT is what scripts/bench.sh collected: per benchmark a line
`=== <bench> load <1m> <5m> <15m>` and then the benchmark's stdout, whose
`RESULT <scenario> <name>=<value> target=<t> PASS|MISS (<figures>)` lines
(../shared/PERF.md) are the results; `<bench> failed; ...` lines mark a failure.

Scenarios of this run replace their rows; the rows of scenarios it did not run stay, each
with the date and tree of the run that measured it, so `scripts/bench.sh pull_bench`
refreshes only the pull rows. The README's table lives between the markers
`<!-- bench-table:begin -->` and `<!-- bench-table:end -->` and is rewritten whole.
Standard library only.
"""

import argparse
import datetime
import os
import re
import subprocess
import sys

RESULT = re.compile(
    r"^RESULT (?P<scenario>\S+) (?P<name>[A-Za-z_]+)=(?P<value>\S+) "
    r"target=(?P<target>\S+) (?P<status>PASS|MISS)(?: \((?P<figures>.*)\))?\s*$")
HEADER = re.compile(r"^=== (?P<bench>\S+)(?: load (?P<load>[\d. ]+))?\s*$")
FAILED = re.compile(r"^(?P<bench>\S+) failed; ")
BEGIN = "<!-- bench-table:begin -->"
END = "<!-- bench-table:end -->"
COLUMNS = ["scenario", "benchmark", "measured", "target", "", "figures (the floor of the same run)",
           "date (UTC)", "tree", "load"]


def cell(text):
    return text.replace("|", "\\|").replace("\n", " ")


def parse_run(path, date, tree):
    rows, failed, bench, load = {}, [], "?", ""
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            m = HEADER.match(line)
            if m:
                bench, load = m.group("bench"), (m.group("load") or "").strip()
                continue
            m = FAILED.match(line)
            if m:
                failed.append(m.group("bench"))
                continue
            m = RESULT.match(line)
            if not m:
                continue
            name = m.group("name")
            measured = m.group("value") if name == "ratio" else f"{name}={m.group('value')}"
            rows[m.group("scenario")] = {
                "scenario": m.group("scenario"), "benchmark": bench, "measured": measured,
                "target": bound(m) + m.group("target"), "": m.group("status"),
                "figures (the floor of the same run)": m.group("figures") or "",
                "date (UTC)": date, "tree": tree, "load": load,
            }
    return rows, failed


def bound(m):
    """"≥ " or "≤ ": which side of its target the figure must be, read from the verdict."""
    value, target = float(m.group("value")), float(m.group("target"))
    if value == target:
        return ""
    return "≥ " if (value > target) == (m.group("status") == "PASS") else "≤ "


def read_table(path):
    """The rows of an earlier RESULTS-latest.md, by scenario."""
    rows = {}
    if not os.path.exists(path):
        return rows
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.startswith("| ") or line.startswith("| scenario"):
                continue
            cells = [c.strip().replace("\\|", "|")
                     for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            if len(cells) == len(COLUMNS):
                rows[cells[0]] = dict(zip(COLUMNS, cells))
    return rows


def table(rows, columns):
    out = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for scenario in sorted(rows, key=lambda s: (rows[s]["benchmark"], s)):
        out.append("| " + " | ".join(cell(rows[scenario][c]) for c in columns) + " |")
    return "\n".join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_output")
    parser.add_argument("--readme", default="README.md")
    parser.add_argument("--latest", default="bench/RESULTS-latest.md")
    args = parser.parse_args()

    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    try:
        tree = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        if subprocess.run(["git", "diff", "--quiet", "HEAD"]).returncode != 0:
            tree += "+changes"
    except (OSError, subprocess.CalledProcessError):
        tree = "?"
    fresh, failed = parse_run(args.run_output, date, tree)
    if not fresh and not failed:
        print("bench_report: no RESULT line in", args.run_output, file=sys.stderr)
        return 1
    rows = read_table(args.latest)
    rows.update(fresh)

    with open(args.latest, "w", encoding="utf-8") as f:
        f.write("# Latest benchmark results\n\n"
                "Written by `scripts/bench.sh` (scripts/bench_report.py) from its last runs; "
                "do not edit by hand. Method: ../shared/PERF.md — every ratio is against a "
                "floor measured in the same run (named in the figures), server pinned to "
                "CPU 0, load to CPU 1. `load` is the 1/5/15-minute load average when the "
                "benchmark started: on this shared 2-core machine, figures measured under "
                "load are indicative only. Causes of misses and earlier runs: "
                "[RESULTS.md](RESULTS.md).\n\n")
        if failed:
            f.write(f"Failed in the run of {date}: {', '.join(failed)} (see build dir "
                    "*.stderr).\n\n")
        f.write(table(rows, COLUMNS) + "\n")

    with open(args.readme, encoding="utf-8") as f:
        readme = f.read()
    if BEGIN not in readme or END not in readme:
        print(f"bench_report: {args.readme} has no {BEGIN} ... {END} markers; "
              "only", args.latest, "was written", file=sys.stderr)
        return 0
    short = ["scenario", "measured", "target", "", "figures (the floor of the same run)",
             "date (UTC)"]
    block = (f"{BEGIN}\n"
             "Regenerated by `scripts/bench.sh` from its runs (each row's date; load and tree: "
             "[bench/RESULTS-latest.md](bench/RESULTS-latest.md)).\n\n"
             f"{table(rows, short)}\n{END}")
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    with open(args.readme, "w", encoding="utf-8") as f:
        f.write(head + block + tail)
    print(f"bench_report: {len(fresh)} result(s) written to {args.latest} and "
          f"{args.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
