/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Shared pieces of the strictness tests: a small deterministic
 * configuration (all memory private at boot, no injection, no host
 * events), the state the deliberately broken wrappers keep, and lookups.
 */
#ifndef SIM_TEST_STRICT_H
#define SIM_TEST_STRICT_H

#include "consistency.h"
#include "scenario.h"

/* What a test's wrappers need: the originals and a little state. */
struct breakage {
	struct tdp_private_backend orig_be;
	struct tdp_host_ops orig_host;
	/* Deferred backend call (reordering wrappers). */
	bool deferred;
	tdp_gfn_t deferred_gfn;
	int deferred_level;
	struct tdp_ext_table *deferred_ext;
	/* Host flush wrapper: drop every flush while armed. */
	bool drop_flushes;
	int dropped;
};

extern struct breakage brk;

/* The configuration every strictness test starts from; resets brk. */
void base_config(struct sim_config *cfg);
struct sim *create(const struct sim_config *cfg);
/*
 * A simulation of the base configuration whose engine sees the backend
 * callbacks as @wrap_backend and the host callbacks as @wrap_host_ops
 * leave them (either may be NULL: no wrapper).
 */
struct sim *create_wrapped(void (*wrap_backend)(struct tdp_private_backend *,
						void *),
			   void (*wrap_host_ops)(struct tdp_host_ops *, void *));
/* Host flush callbacks that drop every flush while brk.drop_flushes is
 * set (counted in brk.dropped). */
void wrap_drop_flush(struct tdp_host_ops *ops, void *arg);
/* A GFN at @offset in the first region the guest converts 4 KiB-wise. */
tdp_gfn_t small_region_gfn(struct sim *s, uint64_t offset);
const struct sim_violation *find(struct sim *s, enum sim_violation_kind kind,
				 tdx_status_t st, tdp_gfn_t gfn, int vcpu);

#endif /* SIM_TEST_STRICT_H */
