/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The private backend libtdp drives: struct tdp_private_backend
 * implemented with the simulated TDX module's SEAMCALLs, the way KVM's
 * TDX code implements its mirror hooks.
 *
 *   link_table  -> SEPT.ADD with a fresh 4 KiB page from TDX-usable host
 *                  memory; the engine's backend page (ext_table) only
 *                  records which S-EPT page backs the mirror table
 *   set_leaf    -> PAGE.AUG (4 KiB or 2 MiB); while the TD is built,
 *                  PAGE.ADD of the host's source page (4 KiB)
 *   remove_leaf -> RANGE.BLOCK, TRACK, kick every vCPU, PAGE.REMOVE
 *   free_table  -> RANGE.BLOCK, TRACK, kick, SEPT.REMOVE, and the S-EPT
 *                  page goes back to host memory
 *
 * Map callbacks return 0, -EBUSY for OPERAND_BUSY (the engine retries the
 * fault), SIM_ERR_INJECTED for an injected failure, SIM_ERR_TDX for any
 * other SEAMCALL error (reported as a violation by the module).  The
 * removal path must not fail: a SEAMCALL that returns OPERAND_BUSY is
 * retried with every vCPU held out of guest mode (KVM's answer to busy
 * during a zap); TRACK that finds vCPUs in the previous epoch kicks them
 * and retries.  A removal the module still refuses fails with -EIO and
 * the engine goes dead.  demote_leaf answers -EBUSY for a busy first
 * BLOCK (nothing changed); once the leaf is blocked it finishes like a
 * removal, and a hard PAGE.DEMOTE error is undone with UNBLOCK and
 * answered SIM_ERR_TDX.
 *
 * Besides the module's own checks the adapter checks the engine's side of
 * the contract: no map callback runs during a removal, set_leaf maps the
 * frame the host resolved, free_table names a table link_table created,
 * no vCPU keeps a live private translation after PAGE.REMOVE, and the
 * mirror entry every callback works on reads FROZEN to a lockless
 * tdp_lookup() while it runs (free_table: the table is unreachable).
 */
#ifndef SIM_BACKEND_H
#define SIM_BACKEND_H

#include <errno.h>
#include <stdint.h>

#include <tdp/backend.h>

#include "tdx_module.h"

struct sim;

#define SIM_ERR_INJECTED (-ENXIO)
#define SIM_ERR_TDX      (-EPROTO)

/* What the adapter keeps in the engine's backend page of a mirror table. */
struct sim_ext_record {
	uint64_t magic; /* SIM_EXT_MAGIC while the table is linked */
	tdp_pfn_t sept_pfn;
	tdp_gfn_t gfn;
	int level;
};

#define SIM_EXT_MAGIC 0x53455054u /* "SEPT" */

struct sim_backend {
	struct sim *sim;
	/*
	 * While the host builds the TD (host.h, sim_host_build_td()): the
	 * source page of the image page being mapped; set_leaf then adds
	 * it with PAGE.ADD instead of PAGE.AUG, as KVM's TDX code does with
	 * its page_add_src.  0 otherwise.  Written only by the thread that
	 * builds the TD, before any vCPU thread exists; read by set_leaf.
	 */
	tdp_pfn_t page_add_src;
	int64_t maps_in_flight;     /* atomic: link_table/set_leaf running */
	int64_t removals_in_flight; /* atomic: remove_leaf/free_table/
				     * demote_leaf running */
};

/* Fill @ops with the adapter's callbacks for @s. */
void sim_backend_init(struct sim *s, struct tdp_private_backend *ops);

/*
 * TRACK (retried as described above), then kick every vCPU out of guest
 * mode: afterwards every block made before it is tracked.  Returns the
 * TRACK status.  For tests that assemble their own removal sequence.
 */
tdx_status_t sim_backend_track(struct sim *s);

#endif /* SIM_BACKEND_H */
