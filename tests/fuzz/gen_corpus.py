#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Write the seed corpus of the fuzz harness (tests/fuzz/corpus/).

Each seed is a short scenario in the harness's input encoding (see the
decoder in fuzz_ops.c, which this file must follow): a configuration byte,
then operations.  The seeds give libFuzzer well-formed starting points
for every operation, every configuration and every injected failure;
the fuzzer mutates from there.  Deterministic: rerunning rewrites the same
files.

Usage: python3 tests/fuzz/gen_corpus.py [output-directory]
"""
import os
import random
import sys

# Configuration byte.
PLAIN_VM, FIVE_LEVELS, FORCE_YIELD, NO_EXT_PAGES, MAY_DIE, RESIZES = \
    1, 2, 4, 8, 16, 32

# Operations, in the order of enum op in fuzz_ops.c.
OPS = ("map zap_range zap_event zap_all inval_begin inval_end inval_roots "
       "zap_invalid lookup wrprot clear_dirty masked harvest age fast_fix "
       "hw split recover mmio_gen root_get root_put load_root vcpu topup "
       "fail_alloc fail_backend fail_remove bad").split()
NR_OPS = len(OPS)

# Aliases as the decoder reads them (byte % 16).
PRIVATE, SHARED, BOTH, BAD_ALIAS = 0, 6, 12, 15
LENGTHS = [1, 2, 3, 64, 511, 512, 513, 1024, 1536, 4096, 262143, 262144,
           262145, 524288, 0, 1 << 27]
LEVEL_CODE = {1: 0, 2: 3, 3: 5, 'bad': 6}


def opcode(name):
    i = OPS.index(name)
    return [0] if i == 0 else [64 + i - 1]


def gfn(region=0, block=0, offset=0):
    """region 0..3, block index 0..7, offset 0..511."""
    return [region | block << 2 | (offset >> 8) << 5, offset & 255]


def rng(length_index, region=0, block=0, offset=0):
    return [length_index] + gfn(region, block, offset)


def fault(region, block, offset, private=False, level=1, prot=7, variant=0):
    flags = (1 if private else 0) | LEVEL_CODE[level] << 1 | variant << 4
    return opcode('map') + gfn(region, block, offset) + [flags, prot]


def op(name, *args):
    out = opcode(name)
    for a in args:
        out += a if isinstance(a, list) else [a]
    return out


def block_faults(region, block, private, step=1, level=1, prot=7):
    out = []
    for off in range(0, 512, step):
        out += fault(region, block, off, private, level, prot)
    return out


def seeds():
    s = {}
    # Faults of both aliases on table boundaries, then lookups.
    body = []
    for region in range(4):
        for block in (0, 7):
            for off in (0, 511):
                body += fault(region, block, off, private=True)
                body += fault(region, block, off, private=False)
                body += op('lookup', gfn(region, block, off), 0)
                body += op('lookup', gfn(region, block, off), 4)
    s['faults_boundaries'] = [0] + body
    # Huge leaves: 2 MiB and 1 GiB faults, remaps, splits by 4 KiB faults.
    s['huge_faults'] = [0] + fault(0, 1, 0, False, 2) + \
        fault(0, 1, 5, False, 1) + fault(1, 0, 0, False, 3) + \
        fault(1, 3, 9, False, 1) + fault(0, 2, 0, True, 2) + \
        fault(0, 2, 3, True, 1) + fault(0, 1, 7, False, 1, 7, 1) + \
        fault(0, 1, 7, False, 1, 7, 2) + \
        op('lookup', gfn(0, 1, 7), 4) + op('lookup', gfn(1, 3, 100), 4)
    # Range zaps of every alias filter and every event helper.
    body = block_faults(0, 0, True, 64) + block_faults(0, 0, False, 64)
    body += op('zap_range', rng(5, 0, 0, 0), PRIVATE)
    body += block_faults(0, 0, True, 64)
    body += op('zap_range', rng(3, 0, 0, 100), SHARED)
    body += op('zap_range', rng(10, 0, 0, 0), BOTH)
    body += op('zap_range', rng(14, 0, 0, 0), BOTH)
    body += op('zap_range', rng(0xf0, 0, 0, 0), SHARED)
    body += op('zap_range', rng(1, 0, 0, 0), BAD_ALIAS)
    for event in range(4):
        body += block_faults(1, 1, True, 128) + block_faults(1, 1, False, 128)
        body += op('zap_event', event, rng(5, 1, 1, 0))
    s['zaps'] = [0] + body
    # Invalidation brackets around faults, stale sequence numbers.
    body = op('inval_begin', rng(5, 0, 0, 0)) + fault(0, 0, 3) + \
        fault(0, 0, 3, True) + fault(0, 1, 3) + fault(0, 0, 3, False, 1, 7, 3)
    body += op('inval_begin', rng(3, 0, 2, 0)) + fault(0, 1, 0, False, 2)
    body += op('inval_end', 0) + fault(0, 0, 3) + op('inval_end', 0)
    body += fault(0, 0, 3) + op('inval_end', 250, rng(1, 3, 3, 3))
    s['invalidations'] = [0] + body
    # Root invalidation, references held across it, zaps of invalid roots.
    body = fault(0, 0, 1) + op('root_get', 0) + op('root_get', 1) + \
        op('inval_roots', SHARED, 0) + fault(0, 0, 2) + \
        op('zap_range', rng(5, 0, 0, 0), SHARED) + \
        op('zap_invalid') + op('root_put', 0) + op('load_root', 1) + \
        op('inval_roots', PRIVATE, 1) + op('inval_roots', SHARED, 1) + \
        op('load_root', 0) + op('vcpu') + fault(0, 0, 1) + \
        op('root_get', 0) + op('inval_roots', SHARED, 1) + op('root_put', 0)
    s['roots'] = [0] + body
    # Dirty logging: CPU writes, write-protection, fast fix, harvests.
    body = block_faults(0, 0, False, 8, 1) + fault(0, 1, 0, False, 2)
    for off in range(0, 512, 24):
        body += op('hw', gfn(0, 0, off), 1)
    body += op('hw', gfn(0, 1, 77), 1)
    body += op('harvest', rng(7, 0, 0, 0), SHARED, 0)
    body += op('wrprot', rng(7, 0, 0, 0), SHARED)
    body += op('hw', gfn(0, 0, 8), 1) + op('fast_fix', gfn(0, 0, 8), 0b0110)
    body += op('hw', gfn(0, 0, 8), 1)
    body += op('masked', gfn(0, 0, 0), 1, [0xff] * 8, SHARED)
    body += op('masked', gfn(0, 0, 64), 0, [0x55] * 8, SHARED)
    body += op('clear_dirty', rng(7, 0, 0, 0), SHARED)
    body += op('age', rng(7, 0, 0, 0), SHARED, 1) + \
        op('age', rng(7, 0, 0, 0), SHARED, 0)
    body += op('harvest', rng(7, 0, 0, 0), PRIVATE, 0)
    body += op('harvest', rng(7, 0, 0, 0), SHARED, 255)
    s['dirty'] = [0] + body
    # Split and recover: 1 GiB -> 2 MiB -> 4 KiB and back.
    body = fault(1, 0, 0, False, 3) + op('split', rng(5, 1, 2, 0), SHARED, 2)
    body += op('split', rng(9, 1, 0, 0), SHARED, 0) + \
        op('recover', rng(11, 1, 0, 0), SHARED, 2)
    body += op('recover', rng(11, 1, 0, 0), SHARED, 0) + \
        op('split', rng(1, 1, 0, 0), SHARED, 3)
    body += fault(0, 3, 0, False, 2) + \
        op('split', rng(5, 0, 3, 0), SHARED, 0) + \
        op('hw', gfn(0, 3, 7), 1) + op('recover', rng(5, 0, 3, 0), SHARED, 0)
    body += op('recover', rng(5, 0, 3, 3), SHARED, 4)
    s['split_recover'] = [0] + body
    # What recovery must not collapse, then what it must, dirty bits kept.
    body = fault(2, 1, 0, False, 2) + op('split', rng(5, 2, 1, 0), SHARED, 0)
    body += op('wrprot', rng(3, 2, 1, 64), SHARED)
    body += op('recover', rng(5, 2, 1, 0), SHARED, 0)
    body += fault(2, 1, 64, False, 1) + fault(2, 1, 65, False, 1)
    body += op('hw', gfn(2, 1, 300), 1)
    body += op('recover', rng(5, 2, 1, 0), SHARED, 0)
    body += op('harvest', rng(5, 2, 1, 0), SHARED, 0)
    body += fault(2, 2, 0, False, 2) + op('split', rng(5, 2, 2, 0), SHARED, 0)
    body += op('zap_range', rng(0, 2, 2, 511), SHARED)
    body += op('recover', rng(5, 2, 2, 0), SHARED, 0)
    body += fault(2, 2, 511, False, 1, 5)
    body += op('recover', rng(5, 2, 2, 0), SHARED, 0)
    body += fault(3, 0, 0, False, 3) + op('split', rng(12, 3, 0, 0), SHARED, 0)
    body += op('recover', rng(12, 3, 0, 0), SHARED, 2)
    body += op('lookup', gfn(3, 5, 5), 4)
    s['recover_attributes'] = [0] + body
    # Rules with one bit of difference: a 2 MiB fault retries while a
    # 4 KiB invalidation inside its span runs; an upgrade sets the
    # accessed bit again after aging cleared it; the fast fix restores
    # only the write bit.
    body = op('inval_begin', rng(0, 0, 5, 300)) + fault(0, 5, 7, False, 2)
    body += fault(0, 5, 7, True, 2) + op('inval_end', 0)
    body += fault(0, 5, 7, False, 2)
    body += fault(0, 6, 1, False, 1, 1) + op('age', rng(0, 0, 6, 1), SHARED, 1)
    body += op('lookup', gfn(0, 6, 1), 4) + fault(0, 6, 1, False, 1, 3)
    body += op('lookup', gfn(0, 6, 1), 4)
    body += op('wrprot', rng(0, 0, 6, 1), SHARED)
    body += op('fast_fix', gfn(0, 6, 1), 0b1110)
    body += op('fast_fix', gfn(0, 6, 1), 0b0110)
    body += op('lookup', gfn(0, 6, 1), 4)
    s['one_bit_rules'] = [0] + body
    # MMIO SPTEs and their generation.
    body = fault(0, 0, 5, False, 1, 7, 15) + fault(0, 0, 5, False, 1, 7, 15)
    body += op('mmio_gen', 1, 0, 0) + fault(0, 0, 5, False, 1, 7, 15) + \
        fault(0, 0, 5) + fault(0, 0, 6, True, 1, 7, 15) + \
        op('zap_range', rng(5, 0, 0, 0), SHARED) + op('lookup', gfn(0, 0, 5), 4)
    s['mmio'] = [0] + body
    # Backend failures: busy and hard, on link and on set.
    body = []
    for b in (0, 1, 2, 3):
        body += op('fail_backend', b) + fault(b, 4, 9, True)
        body += fault(b, 4, 9, True)
    s['backend_failures'] = [0] + body
    # Allocation failure at the n-th allocation of faults, roots, splits.
    body = []
    for n in range(0, 24, 3):
        body += op('vcpu') + op('fail_alloc', n) + fault(0, 0, n, True)
        body += op('inval_roots', SHARED, 1) + op('fail_alloc', n) + \
            fault(0, 0, n)
        body += op('fail_alloc', n % 3) + op('root_get', 0)
        body += op('fail_alloc', n % 2) + op('inval_begin', rng(1, 2, 2, 2))
        body += op('inval_end', 0)
    body += fault(1, 0, 0, False, 3) + op('fail_alloc', 5) + \
        op('split', rng(9, 1, 0, 0), SHARED, 0)
    s['alloc_failures'] = [0] + body
    # A failing removal kills the MMU: every later call returns -EIO.
    body = fault(0, 0, 1, True) + fault(0, 0, 2) + op('fail_remove') + \
        op('zap_range', rng(5, 0, 0, 0), BOTH) + fault(0, 0, 3) + \
        op('lookup', gfn(0, 0, 1), 0) + op('vcpu') + op('zap_all') + \
        op('harvest', rng(1, 0, 0, 0), SHARED, 0) + op('topup') + op('bad', 6)
    s['death'] = [MAY_DIE] + body
    # Bad arguments of every kind.
    body = []
    for i in range(7):
        body += op('bad', i)
    body += fault(0, 0, 0, False, 'bad') + fault(0, 0, 0, False, 1, 0) + \
        fault(0, 0, 0, False, 1, 0x87) + fault(0, 0, 0, False, 1, 0x47, 4)
    body += op('split', rng(1, 0, 0, 0), SHARED, 3) + \
        op('recover', rng(1, 0, 0, 1), SHARED, 4) + \
        op('masked', gfn(0, 0, 3), 2, [1] * 8, SHARED) + \
        op('fast_fix', gfn(0, 0, 0), 0) + op('fast_fix', gfn(0, 0, 0), 1)
    s['bad_input'] = [0] + body
    # A backend that demotes and promotes: 4 KiB faults below private huge
    # leaves, partial private zaps (ends inside 2 MiB and 1 GiB leaves),
    # private recovery (promotes), with and without an allocation failure.
    body = fault(0, 1, 0, True, 2) + fault(0, 1, 9, True, 1) + \
        op('lookup', gfn(0, 1, 9), 0) + \
        op('recover', rng(5, 0, 1, 0), PRIVATE, 0) + \
        fault(1, 0, 0, True, 3) + fault(1, 3, 7, True, 1) + \
        fault(0, 2, 0, True, 2) + op('zap_range', rng(3, 0, 2, 100), PRIVATE) + \
        fault(0, 3, 0, True, 2) + op('fail_alloc', 1) + \
        op('zap_range', rng(0, 0, 3, 5), BOTH) + \
        op('zap_range', rng(0, 0, 3, 5), BOTH) + \
        op('recover', rng(10, 0, 0, 0), BOTH, 0)
    s['demote_promote'] = [RESIZES] + body
    s['demote_promote_yields'] = [RESIZES | FORCE_YIELD] + seeded_mix(13)
    # Other configurations with a mix of everything.
    mix = seeded_mix(7)
    s['plain_vm'] = [PLAIN_VM] + mix
    s['five_levels'] = [FIVE_LEVELS] + mix
    s['forced_yields'] = [FORCE_YIELD] + mix
    s['no_backend_pages'] = [NO_EXT_PAGES] + mix
    s['plain_vm_yields'] = [PLAIN_VM | FORCE_YIELD | FIVE_LEVELS] + \
        seeded_mix(11)
    return s


def seeded_mix(seed):
    """A random but well-formed mix of every operation."""
    r = random.Random(seed)
    out = []
    for _ in range(120):
        name = r.choice(OPS[:24])
        region, block, off = r.randrange(4), r.randrange(8), r.randrange(512)
        alias = r.choice((PRIVATE, SHARED, BOTH))
        if name == 'map':
            out += fault(region, block, off, r.random() < 0.5,
                         r.choice((1, 1, 2, 3)), r.choice((1, 3, 5, 7)))
        elif name in ('zap_range', 'wrprot', 'clear_dirty'):
            out += op(name, rng(r.randrange(14), region, block, off), alias)
        elif name in ('harvest', 'age'):
            out += op(name, rng(r.randrange(10), region, block, off),
                      SHARED, r.randrange(2))
        elif name in ('split', 'recover'):
            out += op(name, rng(r.randrange(14), region, block, off),
                      SHARED, r.randrange(3))
        elif name in ('lookup', 'hw', 'fast_fix'):
            out += op(name, gfn(region, block, off), r.randrange(16))
        elif name == 'masked':
            out += op(name, gfn(region, block, off), r.randrange(4),
                      [r.randrange(256) for _ in range(8)], SHARED)
        else:
            out += op(name, *[r.randrange(256) for _ in range(4)])
    return out


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), 'corpus')
    os.makedirs(out, exist_ok=True)
    for name, data in sorted(seeds().items()):
        with open(os.path.join(out, name), 'wb') as f:
            f.write(bytes(data))
    print('%d seeds written to %s' % (len(seeds()), out))


if __name__ == '__main__':
    main()
