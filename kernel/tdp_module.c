// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libtdp.ko: the unchanged engine sources, the kernel port, and the public
 * API (every TDP_API function of include/tdp/) exported to other modules.
 * The export list is generated from the headers at build time
 * (tdp_exports.c, see kernel/Makefile), so it cannot fall behind them.
 */
#include <linux/module.h>
#include <linux/rcupdate.h>

static int __init libtdp_init(void)
{
	return 0;
}

/*
 * Tables and roots are freed by RCU callbacks in this module: wait for
 * every queued one before the module's text goes away.
 */
static void __exit libtdp_exit(void)
{
	rcu_barrier();
}

module_init(libtdp_init);
module_exit(libtdp_exit);

/* The engine is LGPL-2.1-or-later; as a kernel module it is combined
 * with the kernel under the GPL. */
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("libtdp: concurrent TDP (EPT/NPT) page-table engine");
