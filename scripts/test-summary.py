#!/usr/bin/env python3
"""test-summary.py: count passed and failed tests from meson's JSON test logs.

meson test writes BUILD/meson-logs/<logbase>.json: one JSON object per test program with
"name", "result" (OK, FAIL, SKIP, TIMEOUT, EXPECTEDFAIL, UNEXPECTEDPASS, ERROR, ...) and the
program's "stdout"/"stderr". Where the output allows it, the individual test cases inside a
program are counted instead of the program:
  - TAP (GTest --tap): "ok N ...", "ok N ... # SKIP reason", "not ok N ...";
  - Python unittest -v: the "Ran N tests" line and "OK (skipped=..)" / "FAILED (failures=..,
    errors=.., skipped=..)" summary, and "test ... skipped 'reason'" lines for names.
A program that did not end as meson expected (crash, timeout, bad exit) while its cases all
passed adds one failure of its own, so a failing program is never reported as green.

With --require-e2e (or KD_REQUIRE_E2E=1) every skip counts as a failure and is listed.
The last line printed is exactly "N passed, N failed". Exit status 0 only when nothing failed
and something passed.

Usage: test-summary.py [--build-dir build] [--make-status N] [LOG.json ...]
"""

import argparse
import glob
import json
import os
import re
import sys

PASS_RESULTS = {"OK", "EXPECTEDFAIL"}
SKIP_RESULTS = {"SKIP"}

TAP_LINE = re.compile(r"^(not ok|ok)\b\s*(\d+)?\s*-?\s*([^#]*?)\s*(?:#\s*(SKIP|TODO)\b\s*(.*))?$",
                      re.IGNORECASE)
TAP_PLAN = re.compile(r"^1\.\.(\d+)")
UT_RAN = re.compile(r"^Ran (\d+) tests? in ", re.MULTILINE)
UT_RESULT = re.compile(r"^(OK|FAILED)(?: \((.*)\))?\s*$", re.MULTILINE)
UT_SKIPPED = re.compile(r"^(\S+) \((\S+)\)(?:\n.*)? \.\.\. skipped '(.*)'$", re.MULTILINE)


class Counts:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.skipped = []   # (test program, case, reason)
        self.failures = []  # (test program, what)


def count_tap(out):
    """(passed, failed, skipped[(case, reason)], planned) or None when OUT is not TAP."""
    passed = failed = 0
    skipped = []
    planned = None
    seen = False
    for line in out.splitlines():
        line = line.rstrip()
        m = TAP_PLAN.match(line)
        if m:
            planned = int(m.group(1))
            continue
        m = TAP_LINE.match(line)
        if not m:
            continue
        seen = True
        ok = m.group(1).lower() == "ok"
        directive = (m.group(4) or "").upper()
        if directive == "SKIP":
            skipped.append((m.group(3) or "#%s" % m.group(2), m.group(5) or ""))
        elif ok or directive == "TODO":
            passed += 1
        else:
            failed += 1
    if not seen and planned is None:
        return None
    return passed, failed, skipped, planned


def count_unittest(out):
    """(passed, failed, skipped[(case, reason)]) or None when OUT has no unittest summary."""
    ran = UT_RAN.findall(out)
    res = UT_RESULT.findall(out)
    if not ran or not res:
        return None
    total = int(ran[-1])
    fields = {}
    for part in (res[-1][1] or "").split(","):
        key, _, val = part.strip().partition("=")
        if val.isdigit():
            fields[key] = int(val)
    failed = fields.get("failures", 0) + fields.get("errors", 0) + fields.get("unexpected successes", 0)
    nskipped = fields.get("skipped", 0)
    skipped = [("%s (%s)" % (m[0], m[1]), m[2]) for m in UT_SKIPPED.findall(out)]
    while len(skipped) < nskipped:
        skipped.append(("(unnamed)", ""))
    passed = max(total - failed - nskipped, 0)
    return passed, failed, skipped


def add_test(counts, entry):
    name = entry.get("name", "?")
    result = entry.get("result", "?")
    out = (entry.get("stdout") or "") + "\n" + (entry.get("stderr") or "")
    program_ok = result in PASS_RESULTS or result in SKIP_RESULTS

    tap = count_tap(entry.get("stdout") or "")
    ut = None if tap else count_unittest(out)
    if result in SKIP_RESULTS and not (tap and (tap[0] or tap[1])):
        # The whole program skipped itself (exit 77, or TAP "1..0 # SKIP").
        counts.skipped.append((name, "", "whole program skipped"))
        return "SKIP", 0, 0, 1
    if tap or ut:
        passed, failed, skipped = (tap or ut)[:3]
        counts.passed += passed
        counts.failed += failed
        counts.skipped.extend((name, case, reason) for case, reason in skipped)
        if failed:
            counts.failures.append((name, "%d failed case(s)" % failed))
        extra = ""
        if tap and tap[3] is not None and passed + failed + len(skipped) < tap[3] and program_ok:
            extra = "planned %d cases, ran %d" % (tap[3], passed + failed + len(skipped))
        if (not program_ok and failed == 0) or extra:
            counts.failed += 1
            failed += 1
            counts.failures.append((name, extra or "program ended with %s (exit %s) after its cases passed"
                                    % (result, entry.get("returncode"))))
        return result, passed, failed, len(skipped)
    if result in PASS_RESULTS:
        counts.passed += 1
        return result, 1, 0, 0
    counts.failed += 1
    counts.failures.append((name, "%s (exit %s)" % (result, entry.get("returncode"))))
    return result, 0, 1, 0


def main():
    ap = argparse.ArgumentParser(description="count passed and failed tests from meson test logs")
    ap.add_argument("--build-dir", default=os.environ.get("BUILD_DIR", "build"))
    ap.add_argument("--require-e2e", action="store_true",
                    default=os.environ.get("KD_REQUIRE_E2E") == "1",
                    help="count skipped tests as failed (default: KD_REQUIRE_E2E=1)")
    ap.add_argument("--make-status", type=int, default=0,
                    help="exit status of the make run; non-zero with no failed test adds a failure")
    ap.add_argument("logs", nargs="*", help="meson test JSON logs (default: BUILD/meson-logs/testlog*.json)")
    args = ap.parse_args()

    logs = args.logs or sorted(glob.glob(os.path.join(args.build_dir, "meson-logs", "testlog*.json")))
    counts = Counts()
    print("== test summary (%s)" % (", ".join(logs) if logs else "no meson test log found"))
    for path in logs:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                lines = f.readlines()
        except OSError as e:
            print("cannot read '%s': %s" % (path, e.strerror))
            counts.failed += 1
            counts.failures.append((path, "unreadable log"))
            continue
        for lineno, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                print("'%s' line %d: not JSON, ignored" % (path, lineno))
                continue
            result, p, fl, s = add_test(counts, entry)
            print("  %-14s %-40s %3d passed %3d failed %3d skipped"
                  % (result, entry.get("name", "?"), p, fl, s))

    if args.make_status != 0 and counts.failed == 0:
        counts.failed += 1
        counts.failures.append(("make check", "exited %d with no failed test: set-up or build failed"
                                % args.make_status))

    if counts.skipped:
        if args.require_e2e:
            print("skipped, counted as failed because KD_REQUIRE_E2E=1:")
            counts.failed += len(counts.skipped)
        else:
            print("skipped:")
        for prog, case, reason in counts.skipped:
            print("  %s%s%s" % (prog, (": " + case) if case else "", (" - " + reason) if reason else ""))
    if counts.failures:
        print("failed:")
        for prog, what in counts.failures:
            print("  %s: %s" % (prog, what))
    if not args.require_e2e and counts.skipped:
        print("%d skipped" % len(counts.skipped))
    print("%d passed, %d failed" % (counts.passed, counts.failed))
    return 0 if counts.failed == 0 and counts.passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
