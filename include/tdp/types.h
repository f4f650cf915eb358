/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libtdp basic types: frame numbers, SPTE values, levels, aliases and the
 * error convention shared by every public header.
 *
 * Errors: every function that can fail returns a negative errno value, and
 * each value has exactly one meaning across the library:
 *
 *   -EINVAL      bad input (NULL handle, GFN beyond the address width,
 *                start >= end, misaligned huge range, level out of range,
 *                missing required callback); nothing was changed.
 *   -ENOMEM      an allocation failed before any SPTE was changed.
 *   -EOPNOTSUPP  the operation is not supported for the requested alias
 *                (the mirror root refuses dirty logging, aging, lockless
 *                fixes, huge-page split/collapse, live root invalidation).
 *   -EIO         the MMU is dead: a no-fail private-backend callback
 *                failed earlier; every later operation returns -EIO and
 *                nothing the backend may still reference is freed.
 *   -ESHUTDOWN   the MMU was torn down with tdp_mmu_teardown().
 *   other        a hard error returned by a private-backend map callback,
 *                passed through unchanged (see tdp/backend.h).
 */
#ifndef TDP_TYPES_H
#define TDP_TYPES_H

/*
 * Standard types and errno values: the C library's in user space, the
 * kernel's own when the headers are built into a kernel module (see
 * kernel/README.md).
 */
#ifdef __KERNEL__
#include <linux/errno.h>
#include <linux/stddef.h>
#include <linux/types.h>
#else
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Marks the library's exported functions. */
#if defined(__GNUC__)
#define TDP_API __attribute__((visibility("default")))
#else
#define TDP_API
#endif

/* Guest frame number: guest physical address >> 12. */
typedef uint64_t tdp_gfn_t;
/* Host frame number: host physical address >> 12. */
typedef uint64_t tdp_pfn_t;
/* One 64-bit entry of a TDP page table. */
typedef uint64_t tdp_spte_t;

#define TDP_PAGE_SHIFT 12
#define TDP_PAGE_SIZE (1ULL << TDP_PAGE_SHIFT)
/* SPTEs per page table, and GFN bits translated per level. */
#define TDP_SPTES_PER_TABLE 512
#define TDP_LEVEL_BITS 9

/* Page-table levels: 1 maps 4 KiB, 2 maps 2 MiB, 3 maps 1 GiB. */
enum tdp_level {
	TDP_LEVEL_4K = 1,
	TDP_LEVEL_2M = 2,
	TDP_LEVEL_1G = 3,
	TDP_LEVEL_512G = 4,
	TDP_LEVEL_256T = 5,
};
#define TDP_MAX_LEVEL 5

/* Number of 4 KiB frames covered by one SPTE at @level (1..5). */
static inline uint64_t tdp_level_pages(int level)
{
	return 1ULL << ((level - 1) * TDP_LEVEL_BITS);
}

/*
 * Alias filter of a range operation.  A confidential VM sees every GFN
 * twice: the private alias (mapped by the mirror root and the private
 * backend) and the shared alias (the GFN with the shared bit set, mapped by
 * the direct root).  For a VM without a private backend every GFN is
 * shared, and TDP_ALIAS_PRIVATE selects nothing.
 */
enum tdp_alias {
	TDP_ALIAS_PRIVATE = 1 << 0,
	TDP_ALIAS_SHARED = 1 << 1,
	TDP_ALIAS_BOTH = TDP_ALIAS_PRIVATE | TDP_ALIAS_SHARED,
};

/* Permissions of a leaf mapping. */
enum tdp_prot {
	TDP_PROT_READ = 1 << 0,
	TDP_PROT_WRITE = 1 << 1,
	TDP_PROT_EXEC = 1 << 2,
	TDP_PROT_RWX = TDP_PROT_READ | TDP_PROT_WRITE | TDP_PROT_EXEC,
};

struct tdp_mmu;
struct tdp_vcpu;

#ifdef __cplusplus
}
#endif

#endif /* TDP_TYPES_H */
