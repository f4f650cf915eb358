#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The README's layout table against the tree.

  layout_check.py ROOT

Every folder git tracks files in (down to three levels, the seed corpus
aside) must have a row `path/` in the table under "## Layout" of
README.md, and every row must name a folder that exists.  Outside a git
checkout (a source package) it has nothing to compare and exits 77.
"""
import pathlib
import re
import subprocess
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from port_names import set_differences  # noqa: E402


def tracked_folders(root):
    files = subprocess.run(['git', '-C', str(root), 'ls-files'],
                           capture_output=True, text=True,
                           check=True).stdout.split()
    folders = set()
    for f in files:
        parts = f.split('/')[:-1]
        for depth in range(1, min(len(parts), 3) + 1):
            folders.add('/'.join(parts[:depth]))
    return {f for f in folders if not f.startswith('tests/fuzz/corpus')}


def table_rows(root):
    text = (root / 'README.md').read_text()
    section = text.split('\n## Layout\n', 1)[1].split('\n## ', 1)[0]
    return {m.rstrip('/') for m in
            re.findall(r'^\| `([^`]+)/?` \|', section, re.M)}


def main(argv):
    if len(argv) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    root = pathlib.Path(argv[1])
    if not (root / '.git').exists():
        print('layout_check: not a git checkout, skipped')
        return 77  # meson's "skipped"
    folders, rows = tracked_folders(root), table_rows(root)
    bad = set_differences(folders, rows, 'README layout: no row for {}/',
                          'README layout: row {}/ names no tracked folder')
    print(f'layout_check: {len(folders)} folders, {len(rows)} rows, '
          f'{bad} problems')
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
