/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The PAMT of the simulated TDX module (tdx_module.h): the type the
 * module gives each page of host memory, and a page's entry as the host
 * and the checks read it (tdx_pamt_get()).
 */
#ifndef SIM_TDX_PAMT_H
#define SIM_TDX_PAMT_H

#include <stdint.h>

#include <tdp/types.h>

/* PAMT page types. */
enum pamt_type {
	PAMT_NDA,  /* not assigned to the module: free for TDX use */
	PAMT_REG,  /* a private page of the TD */
	PAMT_EPT,  /* an S-EPT page of the TD */
	PAMT_CTL,  /* a TD control page: TDR, TDCS, TDVPR */
	PAMT_RSVD, /* not TDX-usable memory */
};

struct tdx_pamt_info {
	enum pamt_type type;
	/* PAMT_REG: 1 for a 4 KiB page, 2 for a page of a 2 MiB page. */
	int size_level;
	tdp_gfn_t gfn;   /* PAMT_REG: the GFN the page is mapped at */
	uint64_t bepoch; /* epoch stamped by the last RANGE.BLOCK */
	uint32_t owner;  /* the TD's owner tag (tdx_module_config), or 0 */
};

#endif /* SIM_TDX_PAMT_H */
