#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The engine's layering, checked.

  engine_layers.py ROOT LIBTDP_A [--graph]
  engine_layers.py --calls-only ARCHIVE [--graph]   (another component's
                                   objects, e.g. the simulator's: the
                                   call circle check alone)

1. Includes: every engine source (libtdp/, its ports included) includes
   only headers of include/, libtdp/ and libtdp/port/, or system headers.
2. Calls: which engine source calls which, from the symbols the objects
   in the static library LIBTDP_A define and use (nm); there must be no
   circle.  --graph prints the edges.
"""
import pathlib
import re
import subprocess
import sys


def check_includes(root):
    bad = 0
    lib = root / 'libtdp'
    for p in sorted(lib.rglob('*.[ch]')):
        for n, line in enumerate(p.read_text().splitlines(), 1):
            m = re.match(r'\s*#\s*include\s*([<"])([^>"]+)[>"]', line)
            if not m:
                continue
            kind, name = m.groups()
            if kind == '"':
                homes = (lib.resolve(), (root / 'include').resolve())
                ok = any((d / name).is_file() and
                         any((d / name).resolve().is_relative_to(h)
                             for h in homes)
                         for d in (p.parent, lib, root / 'include'))
            else:
                first = name.split('/')[0]
                ok = first == 'tdp' or not (root / first).exists()
                if first == 'tdp':
                    ok = (root / 'include' / name).is_file()
            if not ok:
                print(f'{p.relative_to(root)}:{n}: includes {name}, '
                      'outside include/ and libtdp/')
                bad += 1
    return bad


def call_graph(archive):
    out = subprocess.run(['nm', archive], capture_output=True, text=True,
                         check=True).stdout
    defs, uses, obj = {}, {}, None
    for line in out.splitlines():
        if line.endswith(':'):
            obj = line[:-1].replace('.c.o', '').replace('.o', '')
            continue
        parts = line.split()
        if obj is None:
            continue
        if len(parts) == 3 and parts[1] in 'TDBRC':
            defs[parts[2]] = obj
        elif len(parts) == 2 and parts[0] == 'U':
            uses.setdefault(obj, set()).add(parts[1])
    edges = {}
    for f, syms in uses.items():
        for s in syms:
            if s in defs and defs[s] != f:
                edges.setdefault(f, set()).add(defs[s])
    return edges


def circles(edges):
    """Strongly connected components of more than one file (Tarjan)."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    nodes = set(edges) | {w for ws in edges.values() for w in ws}
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return found


def main(argv):
    if len(argv) not in (3, 4):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    if argv[1] == '--calls-only':
        bad = 0
    else:
        bad = check_includes(pathlib.Path(argv[1]))
    edges = call_graph(argv[2])
    if '--graph' in argv:
        for f in sorted(edges):
            print(f'{f} -> {" ".join(sorted(edges[f]))}')
    for comp in circles(edges):
        print('files call each other in a circle: ' + ', '.join(comp))
        bad += 1
    print(f'layers: {len(edges)} files with calls, {bad} problems')
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
