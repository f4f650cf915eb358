/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Embedding libtdp in a hypervisor, in miniature: create an MMU, handle
 * faults from a vCPU thread, unmap a range when the host takes memory
 * back, tear down.  The README shows the same code.
 */
#include <stdio.h>
#include <tdp/tdp.h>

static void flush_range(void *ctx, tdp_gfn_t gfn, uint64_t n) { (void)ctx; (void)gfn; (void)n; /* INVEPT/INVLPGA here */ }
static void flush_all(void *ctx) { (void)ctx; }

int main(void)
{
	struct tdp_mmu_config cfg = {
		.root_level = 4,
		.host = { .flush_range = flush_range, .flush_all = flush_all },
	};
	struct tdp_mmu *mmu;
	struct tdp_vcpu *vcpu;
	struct tdp_stats st;

	tdp_thread_register();
	if (tdp_mmu_create(&cfg, &mmu) || tdp_vcpu_create(mmu, &vcpu))
		return 1;
	for (tdp_gfn_t gfn = 0; gfn < 4096; gfn++) {   /* EPT violations */
		struct tdp_fault f = {
			.fault_gfn = gfn, .pfn = 0x100000 + gfn,
			.prot = TDP_PROT_READ | TDP_PROT_WRITE,
			.max_level = TDP_LEVEL_2M, .mmu_seq = tdp_mmu_seq(mmu),
		};
		while (tdp_map(vcpu, &f) == TDP_FAULT_RETRY)
			f.mmu_seq = tdp_mmu_seq(mmu);
	}
	tdp_invalidate_begin(mmu, 512, 1024);           /* host unmaps 2 MiB */
	tdp_zap_host_unmap(mmu, 512, 1024);
	tdp_invalidate_end(mmu, 512, 1024);
	tdp_mmu_get_stats(mmu, &st);
	printf("2M leaves %llu, 4K leaves %llu, tables %llu, flushes %llu\n",
	       (unsigned long long)st.leaves[TDP_ROOT_DIRECT][2],
	       (unsigned long long)st.leaves[TDP_ROOT_DIRECT][1],
	       (unsigned long long)(st.tables[TDP_ROOT_DIRECT][1] + st.tables[TDP_ROOT_DIRECT][2] +
				    st.tables[TDP_ROOT_DIRECT][3] + st.tables[TDP_ROOT_DIRECT][4]),
	       (unsigned long long)(st.flushes_range + st.flushes_all));
	tdp_vcpu_destroy(vcpu);
	tdp_mmu_destroy(mmu);
	tdp_thread_unregister();
	return 0;
}
