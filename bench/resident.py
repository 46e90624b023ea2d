#!/usr/bin/env python3
"""Which pages of a running process's binary are resident, and whose code
they hold.

Reads /proc/PID/maps and /proc/PID/pagemap (root, or CAP_SYS_ADMIN) for the
mappings of the binary, then attributes each resident page to the symbols
that overlap it (`nm -C -S`), summed by crate (the first path segment of a
Rust symbol; `C:` for C symbols such as SQLite's). Bytes of a resident page
that no symbol covers (section padding, .eh_frame, .rodata without sizes)
are counted per mapping as "(no symbol)".

This is what explains an idle process's RssFile: the kernel maps the page
cache's pages around each fault (fault-around, 64 KB by default), so a
crate whose code start-up never runs is still resident where it sits next
to code that does.

usage: bench/resident.py PID BINARY [--top N]
"""

import bisect
import collections
import re
import struct
import subprocess
import sys

PAGE = 4096


def resident_pages(pid, binary):
    """(file offset, permissions) of every resident page mapped from `binary`,
    and a summary per mapping."""
    maps = []
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 6 and parts[5] == binary:
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                maps.append((lo, hi, parts[1], int(parts[2], 16)))
    if not maps:
        sys.exit(f"bench/resident.py: {binary} is not mapped by process {pid}")
    pages, summary = [], []
    with open(f"/proc/{pid}/pagemap", "rb") as pm:
        for lo, hi, perm, off in maps:
            n = (hi - lo) // PAGE
            pm.seek(lo // PAGE * 8)
            data = pm.read(n * 8)
            count = 0
            for i in range(n):
                (entry,) = struct.unpack_from("<Q", data, i * 8)
                if entry >> 63:
                    count += 1
                    pages.append((off + i * PAGE, perm))
            summary.append((perm, (hi - lo) // 1024, count * PAGE // 1024))
    return pages, summary


def load_segments(binary):
    """(file offset, virtual address, file size) of each LOAD segment."""
    out = subprocess.run(["readelf", "-lW", binary], capture_output=True, text=True, check=True)
    segs = []
    for line in out.stdout.splitlines():
        f = line.split()
        if f and f[0] == "LOAD":
            segs.append((int(f[1], 16), int(f[2], 16), int(f[4], 16)))
    return segs


def symbols(binary):
    out = subprocess.run(
        ["nm", "-C", "--defined-only", "-S", binary], capture_output=True, text=True, check=True
    )
    syms = []
    for line in out.stdout.splitlines():
        f = line.split(" ", 3)
        if len(f) == 4 and f[2] in "tTrRdD":
            syms.append((int(f[0], 16), int(f[1], 16), f[3]))
    syms.sort()
    return syms


def crate_of(name):
    """The crate a symbol's code comes from: `a::b::f` and `<a::T as x::Tr>::f`
    are `a`'s; `<&T as x::Tr>::f` (a generic type) is the trait's crate."""
    n = re.sub(r"^<(impl )?", "", name)
    m = re.match(r"([A-Za-z_][A-Za-z0-9_]*)::", n)
    if m:
        return m.group(1)
    m = re.search(r" as ([A-Za-z_][A-Za-z0-9_]*)::", name)
    if name.startswith("<") and m:
        return m.group(1)
    return "C:" + re.split(r"[ (]", name)[0].split(".")[0]


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    pid, binary = int(argv[0]), argv[1]
    top = int(argv[argv.index("--top") + 1]) if "--top" in argv else 30
    pages, summary = resident_pages(pid, binary)
    for perm, size, res in summary:
        print(f"mapping {perm}: {size} KB, {res} KB resident")
    segs = load_segments(binary)
    syms = symbols(binary)
    starts = [s[0] for s in syms]
    by = collections.Counter()
    for off, perm in pages:
        vaddr = next((v + off - o for o, v, sz in segs if o <= off < o + sz + PAGE), None)
        if vaddr is None:
            by[f"(no symbol) {perm}"] += PAGE
            continue
        j = max(bisect.bisect_right(starts, vaddr) - 1, 0)
        covered = 0
        while j < len(syms) and syms[j][0] < vaddr + PAGE:
            a, size, name = syms[j]
            overlap = max(0, min(a + size, vaddr + PAGE) - max(a, vaddr))
            if overlap:
                by[crate_of(name)] += overlap
                covered += overlap
            j += 1
        by[f"(no symbol) {perm}"] += max(0, PAGE - covered)
    print(f"resident: {sum(by.values()) // 1024} KB")
    for name, size in by.most_common(top):
        print(f"{size // 1024:8d} KB  {name}")


if __name__ == "__main__":
    main(sys.argv[1:])
