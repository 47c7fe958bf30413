#!/usr/bin/env python3
"""Runs the same docker CLI command lines against a reference dockerd and a skiff daemon and
prints where stdout, stderr or the exit code differ, after normalising what always differs
(ids, digests, timestamps, relative times, sizes, column padding).

Usage:
    scripts/docker-diff.py --reference unix:///path/d.sock --skiff unix:///path/skiff.sock \\
        [--raw] CASES...

Each line of a CASES file (or of stdin when none is given) is a bash command line using
"$DOCKER" for the CLI; it runs once per daemon with DOCKER_HOST, a DOCKER_CONFIG of that side's
own (a temporary directory unless --reference-config/--skiff-config name one) and WHO
(`reference` or `skiff`, for paths that must differ). A line starting with `@` is a set-up step:
it runs on both sides and is not compared. `#` starts a comment line.

The daemons are the caller's: start a dockerd the way tests/e2e/common/dockerd.rs does and a
`skiff daemon` on temporary roots, load the same image into both (`docker save` from one,
`docker load` into the other keeps image ids equal), and remove both when done.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile

NORMALISE = [
    (r"sha256:[0-9a-f]{64}", "sha256:<H>"),
    (r"\b[0-9a-f]{64}\b", "<ID>"),
    (r"\b[0-9a-f]{12}\b", "<ID12>"),
    (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", "<TS>"),
    (r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4} \w+", "<DATE>"),
    (r"(About an?|Less than a|\d+) (seconds?|minutes?|hours?)( ago)?", "<DUR>"),
    (r"\b\d+(\.\d+)?\s?([kKMG]i?B|B)\b", "<SZ>"),
    (r"[ \t]{2,}", "  "),
]


def normalise(text):
    for pattern, replacement in NORMALISE:
        text = re.sub(pattern, replacement, text)
    return text


def run(command, host, config, who, timeout):
    env = dict(os.environ, DOCKER_HOST=host, DOCKER_CONFIG=config, WHO=who)
    env.setdefault("DOCKER", "docker")
    env.pop("DOCKER_CONTEXT", None)
    try:
        p = subprocess.run(
            ["bash", "-c", command], env=env, capture_output=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return ("timeout", "", "")
    decode = lambda b: b.decode("utf-8", "replace")
    return (p.returncode, decode(p.stdout), decode(p.stderr))


def shorten(value, limit=600):
    if isinstance(value, str) and len(value) > limit:
        return value[:limit] + "…"
    return value


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", required=True, help="DOCKER_HOST of the dockerd")
    parser.add_argument("--skiff", required=True, help="DOCKER_HOST of the skiff daemon")
    parser.add_argument("--reference-config", help="DOCKER_CONFIG for the dockerd side")
    parser.add_argument("--skiff-config", help="DOCKER_CONFIG for the skiff side")
    parser.add_argument("--raw", action="store_true", help="compare without normalising")
    parser.add_argument("--timeout", type=float, default=60, help="seconds per command")
    parser.add_argument("cases", nargs="*", help="files of command lines (default: stdin)")
    args = parser.parse_args()

    configs = tempfile.TemporaryDirectory(prefix="skiff-docker-diff-")
    sides = {
        "reference": (args.reference, args.reference_config or f"{configs.name}/reference"),
        "skiff": (args.skiff, args.skiff_config or f"{configs.name}/skiff"),
    }
    for _, config in sides.values():
        os.makedirs(config, exist_ok=True)

    lines = []
    for path in args.cases or ["-"]:
        with (sys.stdin if path == "-" else open(path)) as f:
            lines.extend(f.read().splitlines())

    differing = 0
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        setup = line.startswith("@")
        command = line[1:] if setup else line
        results = {
            who: run(command, host, config, who, args.timeout)
            for who, (host, config) in sides.items()
        }
        if setup:
            continue
        ref, ours = results["reference"], results["skiff"]
        if not args.raw:
            ref = (ref[0], normalise(ref[1]), normalise(ref[2]))
            ours = (ours[0], normalise(ours[1]), normalise(ours[2]))
        if ref == ours:
            print(f"== {command}")
            continue
        differing += 1
        print(f"!! {command}")
        for name, a, b in zip(("exit", "stdout", "stderr"), ref, ours):
            if a != b:
                print(f"   [{name}] dockerd: {shorten(a)!r}")
                print(f"   [{name}] skiff:   {shorten(b)!r}")
    print(f"{differing} command line(s) differ")
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
