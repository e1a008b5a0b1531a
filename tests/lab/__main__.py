"""`python -m tests.lab up N` boots N lab hosts and prints an Ansible inventory for them;
`python -m tests.lab down` stops every lab on this machine and cleans what a killed run left."""

from __future__ import annotations

import argparse
import sys
import time

import yaml

from tests.lab import LabError, down_all, up


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.lab", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    u = sub.add_parser("up", help="boot N hosts; prints an Ansible inventory (YAML) on stdout")
    u.add_argument("n", type=int)
    sub.add_parser("down", help="stop every lab host, remove bridges, veths, cgroups, state")
    args = p.parse_args(argv)
    try:
        if args.cmd == "up":
            if not 1 <= args.n <= 20:
                p.error("N must be between 1 and 20")
            t0 = time.monotonic()
            lab = up(args.n)
            print(f"# lab {lab.lab_id}: {args.n} hosts on {lab.bridge} ({lab.subnet}), up in "
                  f"{time.monotonic() - t0:.1f} s; `python -m tests.lab down` removes it", file=sys.stderr)
            print(yaml.safe_dump(lab.inventory(), sort_keys=False), end="")
        else:
            for line in down_all():
                print(f"removed {line}")
    except LabError as e:
        print(f"lab: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
