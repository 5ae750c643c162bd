#!/usr/bin/env python3
"""assemble-web.py: the served tree of the web dashboard, without a bundler.

  assemble-web.py --src web --novnc node_modules/@novnc/novnc --out DIR [--stamp FILE]

DIR becomes web/ plus noVNC's ES modules, copied (never linked: kvmdeskd refuses
files whose real path leaves its web_dir) to DIR/vendor/novnc/{core,vendor}, with
noVNC's licence beside them. Files already up to date are left alone and files
that no longer exist in the sources are removed, so running it on every build
is cheap. With MESON_INSTALL_DESTDIR_PREFIX set (meson install), a relative
--out is taken under it.

When noVNC is missing (npm ci not run) it warns and assembles the rest: the
dashboard works but cannot open consoles.
"""

import argparse
import os
import shutil
import sys

NOVNC_PARTS = ("core", "vendor", "LICENSE.txt", "AUTHORS", "package.json")


def wanted_files(src, novnc):
    """{relative path in the output: source path}."""
    files = {}
    for base, dirs, names in os.walk(src):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for n in names:
            if n.startswith(".") or n == "meson.build":
                continue
            path = os.path.join(base, n)
            files[os.path.relpath(path, src)] = path
    if novnc and os.path.isdir(os.path.join(novnc, "core")):
        for part in NOVNC_PARTS:
            top = os.path.join(novnc, part)
            if os.path.isfile(top):
                files[os.path.join("vendor", "novnc", part)] = top
                continue
            for base, dirs, names in os.walk(top):
                dirs.sort()
                for n in names:
                    path = os.path.join(base, n)
                    files[os.path.join("vendor", "novnc", os.path.relpath(path, novnc))] = path
    else:
        print("assemble-web: warning: noVNC not found at '%s' (run 'npm ci' in the source "
              "directory): the dashboard will not open consoles" % novnc, file=sys.stderr)
    return files


def same(a, b):
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return False
    return sa.st_size == sb.st_size and int(sa.st_mtime) == int(sb.st_mtime)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", required=True)
    ap.add_argument("--novnc", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--stamp")
    args = ap.parse_args()

    out = args.out
    destdir = os.environ.get("MESON_INSTALL_DESTDIR_PREFIX")
    if destdir and not os.path.isabs(out):
        out = os.path.join(destdir, out)
    files = wanted_files(args.src, args.novnc)
    if "index.html" not in files:
        sys.exit("assemble-web: '%s' has no index.html" % args.src)
    os.makedirs(out, exist_ok=True)
    copied = 0
    for rel, path in sorted(files.items()):
        dest = os.path.join(out, rel)
        if same(path, dest) and not os.path.islink(dest):
            continue
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if os.path.islink(dest) or os.path.isdir(dest):
            shutil.rmtree(dest) if os.path.isdir(dest) and not os.path.islink(dest) else os.unlink(dest)
        shutil.copy2(path, dest)
        os.chmod(dest, 0o644)
        copied += 1
    removed = 0
    for base, dirs, names in os.walk(out, topdown=False):
        for n in names:
            rel = os.path.relpath(os.path.join(base, n), out)
            if rel not in files:
                os.unlink(os.path.join(base, n))
                removed += 1
        if base != out and not os.listdir(base):
            os.rmdir(base)
    if args.stamp:
        with open(args.stamp, "w") as f:
            f.write("%d files\n" % len(files))
    if copied or removed:
        print("assemble-web: %s: %d files (%d copied, %d removed)" % (out, len(files), copied, removed))


if __name__ == "__main__":
    main()
