/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer harness: decode the input into a sequence of API operations on
 * one MMU (both aliases, bad input included), run each, and check every
 * result against the reference model (fuzz_model.c) exactly.  After every
 * operation the engine's root list (each root's validity, references and
 * scheduled zap), the statistics, the vCPU's table cache, the invalidation
 * sequence and the recording backend's counts are compared with the
 * model, and so are, entry for entry, the tables the model changed; every
 * COMPARE_EVERY operations and at the end every table of every tree is,
 * and the backend is compared with the mirror entry for entry.  Teardown must then leave nothing.  Any difference
 * aborts with the operation, what was expected and what happened.
 *
 * Input: byte 0 configures the MMU (a plain VM or one with a private
 * backend, 4 or 5 levels, forced yields, backend pages, whether removals
 * may fail, whether the backend demotes and promotes huge leaves); then each operation is an opcode byte and its arguments
 * (missing bytes read as zero).  GFNs are drawn from table boundaries:
 * four 1 GiB regions (two neighbours, the last of the first 512 GiB and
 * the first of the next), eight 2 MiB blocks in each (first, last and
 * middle ones), any 4 KiB page in a block.
 *
 * Failures are injected deterministically, so the model predicts them:
 * the n-th allocation from an operation's start (-ENOMEM at exactly that
 * site), one-shot busy or hard errors of link_table and set_leaf, and a
 * failing remove_leaf (the MMU dies; every later operation must return
 * -EIO in the documented order of checks, and the backend must not be
 * called again).
 *
 * White box: the tree comparison reads the engine's root list, vCPU and
 * tables through libtdp/internal.h; the allocation-failure injector is the
 * user-space port's.
 *
 * FUZZ_OPS_TRACE=1 in the environment prints each operation as it runs
 * (with fuzz_replay, to read what a crash input does).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_model.h"
#include "ts_env.h"
#include "ts_recount.h"

#include "internal.h"

#if defined(__SANITIZE_ADDRESS__)
#define FUZZ_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FUZZ_ASAN 1
#endif
#endif
#ifdef FUZZ_ASAN
#include <sanitizer/lsan_interface.h>
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Operations per input at most: keeps one input well under a second. */
#define MAX_OPS 256
/* Full tree and backend == mirror comparisons every this many operations
 * (the trees' changed tables are compared after every one). */
#define COMPARE_EVERY 16
#define MAX_HELD 4
#define HARVEST_MAX (1ULL << 20)

struct input {
	const uint8_t *p;
	size_t n, pos;
};

static uint8_t u8(struct input *in)
{
	return in->pos < in->n ? in->p[in->pos++] : 0;
}

static uint64_t u64(struct input *in)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v |= (uint64_t)u8(in) << (8 * i);
	return v;
}

struct fuzz {
	struct model m;
	struct ts_backend *rec;
	struct tdp_mmu *mmu;
	struct tdp_vcpu *vcpu;
	const struct tdp_spte_format *fmt;
	struct tdp_root *held[MAX_HELD];
	struct m_root *mheld[MAX_HELD];
	int nr_held;
	bool may_die;
	int op;
	const char *name;
};

/* ---- reporting -------------------------------------------------------------- */

static struct fuzz *current;

__attribute__((noreturn, format(printf, 1, 2))) static void
fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr,
		"fuzz_ops: operation %d (%s): ", current ? current->op : -1,
		current ? current->name : "-");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

#define EXPECT_EQ(got, want, what)                                           \
	do {                                                                 \
		long long g_ = (long long)(got), w_ = (long long)(want);     \
		if (g_ != w_)                                                \
			fail("%s: got %lld, the model expects %lld", (what), \
			     g_, w_);                                        \
	} while (0)

/* ---- decoding ---------------------------------------------------------------- */

static const uint64_t regions_1g[4] = { 0, 1, 511, 512 };
static const uint64_t blocks_2m[8] = { 0, 1, 2, 3, 255, 256, 510, 511 };

static tdp_gfn_t decode_gfn(struct input *in)
{
	uint8_t a = u8(in), b = u8(in);

	return regions_1g[a & 3] * tdp_level_pages(TDP_LEVEL_1G) +
	       blocks_2m[(a >> 2) & 7] * tdp_level_pages(TDP_LEVEL_2M) +
	       ((uint64_t)((a >> 5) & 1) << 8 | b);
}

static const uint64_t lengths[16] = {
	1,    2,    3,	    64,	    511,    512,    513, 1024,
	1536, 4096, 262143, 262144, 262145, 524288, 0,	 1ULL << 27,
};

/* A range: its start, and an end that is sometimes bad. */
static void decode_range(struct fuzz *z, struct input *in, tdp_gfn_t *start,
			 tdp_gfn_t *end)
{
	uint8_t l = u8(in);

	*start = decode_gfn(in);
	*end = *start + lengths[l & 15];
	if ((l >> 4) == 15)
		*end = z->m.gfn_limit + 1; /* beyond the address width */
}

static unsigned int decode_alias(struct input *in)
{
	uint8_t a = u8(in) % 16;

	if (a < 6)
		return TDP_ALIAS_PRIVATE;
	if (a < 12)
		return TDP_ALIAS_SHARED;
	if (a < 15)
		return TDP_ALIAS_BOTH;
	return a & 1 ? 0 : 8; /* no alias, or an unknown bit */
}

static tdp_pfn_t ref_pfn(tdp_gfn_t gfn, bool private)
{
	return ((private ? 1ULL : 2ULL) << 36) + gfn;
}

/* ---- comparing engine and model ------------------------------------------------ */

/* Report the first entry of @spt that differs from the model's table @t. */
__attribute__((noreturn)) static void
report_table(struct fuzz *z, const tdp_spte_t *spt, const struct m_table *t,
	     int level, tdp_gfn_t base)
{
	const struct tdp_spte_format *fmt = z->fmt;

	for (int i = 0; i < TDP_SPTES_PER_TABLE; i++) {
		tdp_spte_t s = spt[i];
		tdp_gfn_t g = base + (uint64_t)i * tdp_level_pages(level);

		if (t->kind[i] == M_NONE && s != fmt->nonpresent)
			fail("tree GFN %#" PRIx64 " level %d holds "
			     "%#" PRIx64 ", the model has nothing",
			     g, level, s);
		if (t->kind[i] == M_TABLE && (!tdp_spte_is_present(fmt, s) ||
					      tdp_spte_is_leaf(fmt, s, level)))
			fail("tree GFN %#" PRIx64 " level %d holds "
			     "%#" PRIx64 ", the model has a table",
			     g, level, s);
		if ((t->kind[i] == M_LEAF || t->kind[i] == M_MMIO) &&
		    s != t->val[i])
			fail("tree GFN %#" PRIx64 " level %d holds "
			     "%#" PRIx64 ", the model has %#" PRIx64,
			     g, level, s, t->val[i]);
	}
	fail("tree GFN %#" PRIx64 " level %d: a mismatch not found again",
	     base, level);
}

/*
 * The engine's table @spt against the model's @t, entry for entry: every
 * table when @full, else only the tables the model changed since the last
 * comparison (an engine write the model did not predict is then found by
 * the next full comparison, every COMPARE_EVERY operations and at the
 * end; the statistics compared after every operation see most of them at
 * once).  The harness is single-threaded, so the table is read with plain
 * loads: the scan of the non-table entries is branch-free vector code.
 * Entries the model holds as tables are checked and descended into.
 */
static void compare_table(struct fuzz *z, const tdp_spte_t *spt,
			  struct m_table *t, int level, tdp_gfn_t base,
			  bool full)
{
	const struct tdp_spte_format *fmt = z->fmt;
	const tdp_spte_t np = fmt->nonpresent;
	const unsigned char *k = t->kind, *next;
	uint64_t bad = 0;

	for (int i = 0; (full || t->changed) && i < TDP_SPTES_PER_TABLE;
	     i++) {
		/* want = NONE ? np : val; tables are skipped (mask 0). */
		uint64_t none = -(uint64_t)(k[i] == M_NONE);
		uint64_t not_table = -(uint64_t)(k[i] != M_TABLE);
		tdp_spte_t want = t->val[i] ^ ((t->val[i] ^ np) & none);

		bad |= (spt[i] ^ want) & not_table;
	}
	if (bad)
		report_table(z, spt, t, level, base);
	t->changed = false;
	while ((next = memchr(k, M_TABLE, t->kind + TDP_SPTES_PER_TABLE - k))) {
		int i = (int)(next - t->kind);
		tdp_spte_t s = spt[i];

		if (!tdp_spte_is_present(fmt, s) ||
		    tdp_spte_is_leaf(fmt, s, level))
			report_table(z, spt, t, level, base);
		compare_table(z, tdp_pfn_to_table(tdp_spte_pfn(fmt, s)),
			      t->child[i], level - 1,
			      base + (uint64_t)i * tdp_level_pages(level), full);
		k = next + 1;
	}
}

/* Positions on the root lists tell which engine root is which model root. */
static int engine_root_pos(struct fuzz *z, const struct tdp_root *root)
{
	int pos = 0;

	for (struct tdp_root *r = z->mmu->roots; r; r = r->next, pos++)
		if (r == root)
			return pos;
	return -1;
}

static int model_root_pos(struct fuzz *z, const struct m_root *root)
{
	int pos = 0;

	for (struct m_root *r = z->m.roots; r; r = r->next, pos++)
		if (r == root)
			return pos;
	return -1;
}

static void compare_roots(struct fuzz *z, bool full)
{
	struct tdp_mmu *mmu = z->mmu;
	struct m_root *mr = z->m.roots;
	int pos = 0;

	tdp_mutex_lock(&mmu->roots_mutex);
	for (struct tdp_root *r = mmu->roots; r; r = r->next, pos++) {
		int refs;

		if (!mr)
			fail("the engine has more roots than the model (%d)",
			     model_nr_roots(&z->m));
		refs = (mr->mmu_ref ? 1 : 0) + mr->vcpu_refs + mr->get_refs;
		EXPECT_EQ(r->type, mr->type, "root type");
		EXPECT_EQ(tdp_root_is_valid(r), mr->valid, "root validity");
		EXPECT_EQ(tdp_root_refcount(r), refs, "root references");
		EXPECT_EQ(__atomic_load_n(&r->scheduled_zap, __ATOMIC_ACQUIRE),
			  mr->scheduled, "root scheduled for its zap");
		compare_table(z, r->table->spt, mr->table, z->m.root_level, 0,
			      full);
		mr = mr->next;
	}
	if (mr)
		fail("the model has more roots than the engine (%d)", pos);
	for (int t = 0; t < TDP_NR_ROOT_TYPES; t++)
		EXPECT_EQ(engine_root_pos(z, mmu->valid_root[t]),
			  model_root_pos(z, z->m.valid[t]), "valid root");
	tdp_mutex_unlock(&mmu->roots_mutex);
}

static void compare_state(struct fuzz *z, bool full)
{
	uint64_t tables[TDP_NR_ROOT_TYPES][TDP_MAX_LEVEL + 1];
	uint64_t leaves[TDP_NR_ROOT_TYPES][TDP_MAX_LEVEL + 1];
	uint64_t rec_tables = 0, rec_leaves = 0;
	struct tdp_stats st;
	char why[160];

	EXPECT_EQ(tdp_mmu_is_dead(z->mmu), z->m.dead, "dead");
	if (z->m.dead)
		return;
	compare_roots(z, full);
	/* The live counts against a walk of the trees, not only the model. */
	if (!ts_recount_matches_stats(z->mmu, why, sizeof(why)))
		fail("recount: %s", why);
	if (tdp_mmu_get_stats(z->mmu, &st))
		fail("tdp_mmu_get_stats");
	model_count(&z->m, tables, leaves);
	for (int t = 0; t < TDP_NR_ROOT_TYPES; t++) {
		for (int l = 1; l <= TDP_MAX_LEVEL; l++) {
			EXPECT_EQ(st.tables[t][l], tables[t][l],
				  "stats.tables");
			EXPECT_EQ(st.leaves[t][l], leaves[t][l],
				  "stats.leaves");
			if (t == TDP_ROOT_MIRROR && l < z->m.root_level)
				rec_tables += tables[t][l];
			if (t == TDP_ROOT_MIRROR)
				rec_leaves += leaves[t][l];
		}
	}
	EXPECT_EQ(st.faults_fixed, z->m.ctr.faults_fixed, "faults_fixed");
	EXPECT_EQ(st.faults_spurious, z->m.ctr.faults_spurious,
		  "faults_spurious");
	EXPECT_EQ(st.faults_retried, z->m.ctr.faults_retried, "faults_retried");
	EXPECT_EQ(st.zapped_leaves, z->m.ctr.zapped_leaves, "zapped_leaves");
	EXPECT_EQ(st.zapped_tables, z->m.ctr.zapped_tables, "zapped_tables");
	EXPECT_EQ(st.backend_busy, z->m.ctr.backend_busy, "backend_busy");
	EXPECT_EQ(st.backend_errors, z->m.ctr.backend_errors, "backend_errors");
	EXPECT_EQ(st.demotes, z->m.ctr.demotes, "demotes");
	EXPECT_EQ(st.fault_demotes, z->m.ctr.fault_demotes, "fault_demotes");
	EXPECT_EQ(st.promotes, z->m.ctr.promotes, "promotes");
	EXPECT_EQ(st.fault_write_locks, 0, "write locks taken by faults");
	EXPECT_EQ(st.roots_allocated, z->m.ctr.roots_allocated,
		  "roots_allocated");
	EXPECT_EQ(tdp_mmu_seq(z->mmu), z->m.seq, "invalidation sequence");
	EXPECT_EQ(tdp_mmu_mmio_generation(z->mmu), z->m.mmio_gen,
		  "MMIO generation");
	if (z->vcpu) {
		EXPECT_EQ(z->vcpu->cache_count, z->m.vcpu.cache_tables,
			  "vCPU cached tables");
		EXPECT_EQ(z->vcpu->ext_count, z->m.vcpu.cache_ext,
			  "vCPU cached backend pages");
		for (int t = 0; t < TDP_NR_ROOT_TYPES; t++)
			EXPECT_EQ(engine_root_pos(z, z->vcpu->root[t]),
				  model_root_pos(z, z->m.vcpu.root[t]),
				  "vCPU root");
	}
	if (z->rec) {
		EXPECT_EQ(ts_violations(z->rec), 0, "backend violations");
		EXPECT_EQ(ts_nr_tables(z->rec), rec_tables, "backend tables");
		EXPECT_EQ(ts_nr_leaves(z->rec), rec_leaves, "backend leaves");
	}
}

static void compare_backend(struct fuzz *z)
{
	if (z->rec && !z->m.dead)
		EXPECT_EQ(ts_compare(z->rec, z->mmu, 0, z->m.gfn_limit), 0,
			  "mirror != backend mismatches");
}

/* ---- operations ------------------------------------------------------------- */

enum op {
	OP_MAP,
	OP_ZAP_RANGE,
	OP_ZAP_EVENT,
	OP_ZAP_ALL,
	OP_INVAL_BEGIN,
	OP_INVAL_END,
	OP_INVAL_ROOTS,
	OP_ZAP_INVALID,
	OP_LOOKUP,
	OP_WRPROT,
	OP_CLEAR_DIRTY,
	OP_MASKED,
	OP_HARVEST,
	OP_AGE,
	OP_FAST_FIX,
	OP_HW,
	OP_SPLIT,
	OP_RECOVER,
	OP_MMIO_GEN,
	OP_ROOT_GET,
	OP_ROOT_PUT,
	OP_LOAD_ROOT,
	OP_VCPU,
	OP_TOPUP,
	OP_FAIL_ALLOC,
	OP_FAIL_BACKEND,
	OP_FAIL_REMOVE,
	OP_BAD,
	OP_NR,
};

static const char *const op_names[OP_NR] = {
	[OP_MAP] = "map",
	[OP_ZAP_RANGE] = "zap_range",
	[OP_ZAP_EVENT] = "zap event helper",
	[OP_ZAP_ALL] = "zap_all",
	[OP_INVAL_BEGIN] = "invalidate_begin",
	[OP_INVAL_END] = "invalidate_end",
	[OP_INVAL_ROOTS] = "invalidate_roots",
	[OP_ZAP_INVALID] = "zap_invalidated_roots",
	[OP_LOOKUP] = "lookup",
	[OP_WRPROT] = "wrprot_range",
	[OP_CLEAR_DIRTY] = "clear_dirty_range",
	[OP_MASKED] = "clear_dirty_masked",
	[OP_HARVEST] = "harvest_dirty",
	[OP_AGE] = "age_range",
	[OP_FAST_FIX] = "fast_fix",
	[OP_HW] = "CPU access",
	[OP_SPLIT] = "split_huge_range",
	[OP_RECOVER] = "recover_huge_pages",
	[OP_MMIO_GEN] = "set_mmio_generation",
	[OP_ROOT_GET] = "root_get",
	[OP_ROOT_PUT] = "root_put",
	[OP_LOAD_ROOT] = "vcpu_load_root",
	[OP_VCPU] = "vcpu destroy/create",
	[OP_TOPUP] = "vcpu_topup",
	[OP_FAIL_ALLOC] = "arm an allocation failure",
	[OP_FAIL_BACKEND] = "arm a backend map failure",
	[OP_FAIL_REMOVE] = "arm a backend remove failure",
	[OP_BAD] = "bad arguments",
};

/* Opcode byte -> operation: faults are the most frequent. */
static enum op decode_op(uint8_t b)
{
	if (b < 64)
		return OP_MAP;
	return (enum op)(1 + (b - 64) % (OP_NR - 1));
}

static void do_map(struct fuzz *z, struct input *in)
{
	tdp_gfn_t gfn = decode_gfn(in);
	uint8_t flags = u8(in), prot_code = u8(in);
	bool private = flags & 1;
	static const int levels[8] = { 1, 1, 1, 2, 2, 3, 0, 4 };
	struct m_fault mf;
	struct tdp_fault f;
	bool may_retry;
	int want, got;

	mf = (struct m_fault){
		.fault_gfn = private ? gfn : gfn | z->m.direct_bits,
		.pfn = ref_pfn(gfn, private),
		.prot = prot_code & 7,
		.max_level = levels[(flags >> 1) & 7],
		.seq = z->m.seq,
		.mmio = (flags >> 4) == 15,
	};
	if (prot_code & 0x80)
		mf.prot |= 8; /* an unknown right */
	switch ((flags >> 4) & 7) {
	case 1:
		mf.pfn += 1; /* misaligned: 4 KiB only, or a remap */
		break;
	case 2:
		mf.pfn += tdp_level_pages(TDP_LEVEL_2M); /* a remap */
		break;
	case 3:
		mf.seq++; /* resolved before an invalidation ended */
		break;
	case 4:
		if (prot_code & 0x40) /* beyond the address width */
			mf.fault_gfn |= z->m.gfn_limit << 1;
		break;
	default:
		break;
	}
	f = (struct tdp_fault){
		.fault_gfn = mf.fault_gfn,
		.pfn = mf.pfn,
		.prot = mf.prot,
		.max_level = mf.max_level,
		.mmu_seq = mf.seq,
		.mmio = mf.mmio,
	};
	if (!z->vcpu) {
		EXPECT_EQ(tdp_map(NULL, &f), -EINVAL, "tdp_map(NULL)");
		return;
	}
	want = model_map_begin(&z->m, &mf, &may_retry);
	got = tdp_map(z->vcpu, &f);
	if (want != M_WALK) {
		EXPECT_EQ(got, want, "tdp_map");
		return;
	}
	if (may_retry && got == TDP_FAULT_RETRY) {
		model_map_retried(&z->m);
		return;
	}
	EXPECT_EQ(got, model_map_walk(&z->m, &mf), "tdp_map");
}

static void do_lookup(struct fuzz *z, struct input *in)
{
	tdp_gfn_t gfn = decode_gfn(in);
	uint8_t a = u8(in) % 8;
	unsigned int alias = a < 4   ? TDP_ALIAS_PRIVATE
			     : a < 7 ? TDP_ALIAS_SHARED
				     : TDP_ALIAS_BOTH;
	tdp_spte_t s = 0, ms = 0;
	int level = 0, mlevel = 0;
	int want = model_lookup(&z->m, gfn, alias, &ms, &mlevel);

	EXPECT_EQ(tdp_lookup(z->mmu, gfn, alias, &s, &level), want,
		  "tdp_lookup");
	if (want)
		return;
	EXPECT_EQ(level, mlevel, "tdp_lookup level");
	if (s != ms)
		fail("tdp_lookup(%#" PRIx64 ") returned %#" PRIx64
		     ", the model expects %#" PRIx64,
		     gfn, s, ms);
}

static void do_harvest(struct fuzz *z, struct input *in)
{
	tdp_gfn_t start, end;
	unsigned int alias;
	uint64_t *got, *want;
	size_t words;
	bool null;
	int64_t r;

	decode_range(z, in, &start, &end);
	alias = decode_alias(in);
	null = u8(in) == 255;
	if (end > start && end - start > HARVEST_MAX)
		end = start + HARVEST_MAX;
	words = end > start ? (end - start + 63) / 64 : 1;
	got = calloc(words, sizeof(uint64_t));
	want = calloc(words, sizeof(uint64_t));
	if (!got || !want)
		abort();
	r = model_harvest(&z->m, start, end, want, null, alias);
	EXPECT_EQ(
		tdp_harvest_dirty(z->mmu, start, end, null ? NULL : got, alias),
		r, "tdp_harvest_dirty");
	if (r > 0 && memcmp(got, want, words * sizeof(uint64_t)))
		fail("tdp_harvest_dirty reported other GFNs than the model");
	free(got);
	free(want);
}

/* The simulated CPU: reads the valid direct root like hardware. */
static void do_hw(struct fuzz *z, struct input *in)
{
	tdp_gfn_t gfn = decode_gfn(in);
	bool write = u8(in) & 1;
	int want = model_hw_access(&z->m, gfn, write), got = 1;
	tdp_gfn_t tree_gfn = gfn + z->m.direct_bits;
	struct tdp_root *root;

	if (z->m.dead)
		return;
	tdp_walk_begin();
	root = __atomic_load_n(&z->mmu->valid_root[TDP_ROOT_DIRECT],
			       __ATOMIC_ACQUIRE);
	if (root) {
		tdp_spte_t *table = root->table->spt;

		for (int level = z->m.root_level;; level--) {
			tdp_spte_t *p =
				&table[(tree_gfn >> ((level - 1) * 9)) & 511];
			tdp_spte_t s = __atomic_load_n(p, __ATOMIC_ACQUIRE);

			if (!tdp_spte_is_present(z->fmt, s))
				break;
			if (!tdp_spte_is_leaf(z->fmt, s, level)) {
				table = (tdp_spte_t *)tdp_pfn_to_table(
					tdp_spte_pfn(z->fmt, s));
				continue;
			}
			if (write && !(s & z->fmt->writable)) {
				got = 2;
				break;
			}
			__atomic_fetch_or(p,
					  z->fmt->accessed |
						  (write ? z->fmt->dirty : 0),
					  __ATOMIC_ACQ_REL);
			got = 0;
			break;
		}
	}
	tdp_walk_end();
	EXPECT_EQ(got, want, "CPU access");
}

static void hold_root(struct fuzz *z, struct tdp_root *r, struct m_root *mr)
{
	if (z->nr_held == MAX_HELD) {
		tdp_root_put(z->mmu, z->held[0]);
		model_root_put(&z->m, z->mheld[0]);
		memmove(z->held, z->held + 1,
			sizeof(z->held[0]) * (MAX_HELD - 1));
		memmove(z->mheld, z->mheld + 1,
			sizeof(z->mheld[0]) * (MAX_HELD - 1));
		z->nr_held--;
	}
	z->held[z->nr_held] = r;
	z->mheld[z->nr_held] = mr;
	z->nr_held++;
}

static void drop_root(struct fuzz *z, int i)
{
	tdp_root_put(z->mmu, z->held[i]);
	model_root_put(&z->m, z->mheld[i]);
	z->held[i] = z->held[z->nr_held - 1];
	z->mheld[i] = z->mheld[z->nr_held - 1];
	z->nr_held--;
}

static void do_bad(struct fuzz *z, struct input *in)
{
	struct tdp_fault f = { .prot = TDP_PROT_READ, .max_level = 1 };
	struct tdp_stats st;
	struct tdp_root *root;
	tdp_spte_t s;
	int level;

	switch (u8(in) % 7) {
	case 0:
		EXPECT_EQ(tdp_map(NULL, &f), -EINVAL, "tdp_map(NULL)");
		if (z->vcpu)
			EXPECT_EQ(tdp_map(z->vcpu, NULL), -EINVAL,
				  "tdp_map(vcpu, NULL)");
		break;
	case 1:
		EXPECT_EQ(tdp_zap_range(NULL, 0, 1, TDP_ALIAS_BOTH), -EINVAL,
			  "tdp_zap_range(NULL)");
		EXPECT_EQ(tdp_zap_all(NULL), -EINVAL, "tdp_zap_all(NULL)");
		break;
	case 2:
		EXPECT_EQ(tdp_lookup(z->mmu, 0, TDP_ALIAS_SHARED, NULL, &level),
			  -EINVAL, "tdp_lookup(NULL spte)");
		EXPECT_EQ(tdp_lookup(z->mmu, 0, TDP_ALIAS_SHARED, &s, NULL),
			  -EINVAL, "tdp_lookup(NULL level)");
		break;
	case 3:
		EXPECT_EQ(tdp_mmu_get_stats(NULL, &st), -EINVAL,
			  "tdp_mmu_get_stats(NULL)");
		EXPECT_EQ(tdp_mmu_get_stats(z->mmu, NULL), -EINVAL,
			  "tdp_mmu_get_stats(mmu, NULL)");
		break;
	case 4:
		EXPECT_EQ(tdp_root_get(z->mmu, (enum tdp_root_type)2, &root),
			  -EINVAL, "tdp_root_get(bad type)");
		EXPECT_EQ(tdp_root_get(z->mmu, TDP_ROOT_DIRECT, NULL), -EINVAL,
			  "tdp_root_get(NULL)");
		break;
	case 5:
		EXPECT_EQ(tdp_vcpu_topup(NULL), -EINVAL,
			  "tdp_vcpu_topup(NULL)");
		EXPECT_EQ(tdp_vcpu_create(z->mmu, NULL), -EINVAL,
			  "tdp_vcpu_create(NULL)");
		break;
	default:
		/* Teardown refuses while a vCPU context exists. */
		if (z->vcpu)
			EXPECT_EQ(tdp_mmu_teardown(z->mmu), -EINVAL,
				  "tdp_mmu_teardown with a vCPU");
		break;
	}
}

static void do_op(struct fuzz *z, struct input *in, enum op op)
{
	struct tdp_mmu *mmu = z->mmu;
	tdp_gfn_t start, end;
	unsigned int alias;
	uint8_t b;
	int64_t want;
	int ret;

	switch (op) {
	case OP_MAP:
		do_map(z, in);
		break;
	case OP_ZAP_RANGE:
		decode_range(z, in, &start, &end);
		alias = decode_alias(in);
		want = model_zap_range(&z->m, start, end, alias);
		EXPECT_EQ(tdp_zap_range(mmu, start, end, alias), want,
			  "tdp_zap_range");
		break;
	case OP_ZAP_EVENT: {
		static const unsigned int event_alias[4] = {
			TDP_ALIAS_BOTH,
			TDP_ALIAS_SHARED,
			TDP_ALIAS_PRIVATE,
			TDP_ALIAS_SHARED,
		};

		b = u8(in) % 4;
		decode_range(z, in, &start, &end);
		want = model_zap_range(&z->m, start, end, event_alias[b]);
		ret = b == 0   ? tdp_zap_slot_deleted(mmu, start, end)
		      : b == 1 ? tdp_zap_host_unmap(mmu, start, end)
		      : b == 2 ? tdp_zap_convert_to_shared(mmu, start, end)
			       : tdp_zap_convert_to_private(mmu, start, end);
		EXPECT_EQ(ret, want, "zap event helper");
		break;
	}
	case OP_ZAP_ALL:
		EXPECT_EQ(tdp_zap_all(mmu), model_zap_all(&z->m),
			  "tdp_zap_all");
		break;
	case OP_INVAL_BEGIN:
		decode_range(z, in, &start, &end);
		if (z->m.nr_invals >= 32)
			break;
		want = model_invalidate_begin(&z->m, start, end);
		EXPECT_EQ(tdp_invalidate_begin(mmu, start, end), want,
			  "tdp_invalidate_begin");
		break;
	case OP_INVAL_END:
		b = u8(in);
		if (z->m.nr_invals && b < 200) {
			start = z->m.inval[b % z->m.nr_invals].start;
			end = z->m.inval[b % z->m.nr_invals].end;
		} else {
			decode_range(z, in, &start, &end);
		}
		want = model_invalidate_end(&z->m, start, end);
		EXPECT_EQ(tdp_invalidate_end(mmu, start, end), want,
			  "tdp_invalidate_end");
		break;
	case OP_INVAL_ROOTS:
		alias = decode_alias(in);
		b = u8(in);
		want = model_invalidate_roots(&z->m, alias);
		EXPECT_EQ(tdp_mmu_invalidate_roots(mmu, alias), want,
			  "tdp_mmu_invalidate_roots");
		if (b & 1)
			EXPECT_EQ(tdp_mmu_zap_invalidated_roots(mmu),
				  model_zap_invalidated_roots(&z->m),
				  "tdp_mmu_zap_invalidated_roots");
		break;
	case OP_ZAP_INVALID:
		EXPECT_EQ(tdp_mmu_zap_invalidated_roots(mmu),
			  model_zap_invalidated_roots(&z->m),
			  "tdp_mmu_zap_invalidated_roots");
		break;
	case OP_LOOKUP:
		do_lookup(z, in);
		break;
	case OP_WRPROT:
		decode_range(z, in, &start, &end);
		alias = decode_alias(in);
		want = model_wrprot(&z->m, start, end, alias);
		EXPECT_EQ(tdp_wrprot_range(mmu, start, end, alias), want,
			  "tdp_wrprot_range");
		break;
	case OP_CLEAR_DIRTY:
		decode_range(z, in, &start, &end);
		alias = decode_alias(in);
		want = model_clear_dirty(&z->m, start, end, alias);
		EXPECT_EQ(tdp_clear_dirty_range(mmu, start, end, alias), want,
			  "tdp_clear_dirty_range");
		break;
	case OP_MASKED: {
		uint64_t mask;
		bool wrprot;

		start = decode_gfn(in);
		b = u8(in);
		mask = u64(in);
		alias = decode_alias(in);
		wrprot = b & 1;
		if (!(b & 2))
			start &= ~63ULL;
		want = model_clear_dirty_masked(&z->m, start, mask, wrprot,
						alias);
		EXPECT_EQ(
			tdp_clear_dirty_masked(mmu, start, mask, wrprot, alias),
			want, "tdp_clear_dirty_masked");
		break;
	}
	case OP_HARVEST:
		do_harvest(z, in);
		break;
	case OP_AGE: {
		bool clear;

		decode_range(z, in, &start, &end);
		alias = decode_alias(in);
		clear = u8(in) & 1;
		want = model_age(&z->m, start, end, clear, alias);
		EXPECT_EQ(tdp_age_range(mmu, start, end, clear, alias), want,
			  "tdp_age_range");
		break;
	}
	case OP_FAST_FIX: {
		tdp_gfn_t gfn = decode_gfn(in);
		unsigned int prot;

		b = u8(in);
		prot = (b >> 1) & 7;
		if (!(b & 1))
			gfn |= z->m.direct_bits;
		want = model_fast_fix(&z->m, gfn, prot);
		EXPECT_EQ(tdp_fast_fix(mmu, gfn, prot), want, "tdp_fast_fix");
		break;
	}
	case OP_HW:
		do_hw(z, in);
		break;
	case OP_SPLIT: {
		static const int targets[4] = { 1, 1, 2, 3 };
		int target;

		decode_range(z, in, &start, &end);
		alias = decode_alias(in);
		target = targets[u8(in) % 4];
		want = model_split(&z->m, start, end, target, alias);
		EXPECT_EQ(tdp_split_huge_range(mmu, start, end, target, alias),
			  want, "tdp_split_huge_range");
		break;
	}
	case OP_RECOVER: {
		static const int levels[4] = { 2, 2, 3, 1 };
		int max_level;

		decode_range(z, in, &start, &end);
		alias = decode_alias(in);
		b = u8(in);
		max_level = levels[b % 4];
		if (!(b & 4)) {
			start &= ~511ULL;
			end = (end + 511) & ~511ULL;
		}
		want = model_recover(&z->m, start, end, max_level, alias);
		EXPECT_EQ(tdp_recover_huge_pages(mmu, start, end, max_level,
						 alias),
			  want, "tdp_recover_huge_pages");
		break;
	}
	case OP_MMIO_GEN: {
		uint32_t gen = (uint32_t)u8(in) | (uint32_t)u8(in) << 8 |
			       (uint32_t)u8(in) << 16;

		EXPECT_EQ(tdp_mmu_set_mmio_generation(mmu, gen),
			  model_set_mmio_gen(&z->m, gen),
			  "tdp_mmu_set_mmio_generation");
		break;
	}
	case OP_ROOT_GET: {
		int type = u8(in) % 2;
		struct tdp_root *r = NULL;
		struct m_root *mr = NULL;

		want = model_root_get(&z->m, type, &mr);
		EXPECT_EQ(tdp_root_get(mmu, (enum tdp_root_type)type, &r), want,
			  "tdp_root_get");
		if (!want) {
			EXPECT_EQ(tdp_root_type_of(r), type, "root type");
			hold_root(z, r, mr);
		}
		break;
	}
	case OP_ROOT_PUT:
		b = u8(in);
		if (z->nr_held)
			drop_root(z, b % z->nr_held);
		break;
	case OP_LOAD_ROOT: {
		tdp_pfn_t pfn = 0;
		int level = 0;

		if (!z->vcpu)
			break;
		alias = u8(in) % 4 ? TDP_ALIAS_SHARED : TDP_ALIAS_PRIVATE;
		want = model_vcpu_load_root(&z->m, alias);
		EXPECT_EQ(tdp_vcpu_load_root(z->vcpu, alias, &pfn, &level),
			  want, "tdp_vcpu_load_root");
		if (!want) {
			EXPECT_EQ(level, z->m.root_level, "root level");
			EXPECT_EQ(pfn,
				  tdp_virt_to_pfn(z->vcpu->root[TDP_ROOT_DIRECT]
							  ->table->spt),
				  "root frame");
		}
		break;
	}
	case OP_VCPU:
		if (z->vcpu) {
			tdp_vcpu_destroy(z->vcpu);
			z->vcpu = NULL;
			model_vcpu_destroy(&z->m);
		}
		want = model_vcpu_create(&z->m);
		EXPECT_EQ(tdp_vcpu_create(mmu, &z->vcpu), want,
			  "tdp_vcpu_create");
		if (want)
			z->vcpu = NULL;
		break;
	case OP_TOPUP:
		if (z->vcpu)
			EXPECT_EQ(tdp_vcpu_topup(z->vcpu),
				  model_vcpu_topup(&z->m), "tdp_vcpu_topup");
		break;
	case OP_FAIL_ALLOC:
		/* Armed for the next operation only. */
		b = u8(in) % 32;
		z->m.alloc_countdown = b;
		tdp_port_fail_alloc_after(b);
		return;
	case OP_FAIL_BACKEND:
		if (!z->rec)
			break;
		b = u8(in);
		if (b & 1) {
			z->m.fail_link = b & 2 ? -ENOSPC : -EBUSY;
			ts_fail_next_map(z->rec, TS_LINK_TABLE, z->m.fail_link);
		} else {
			z->m.fail_set = b & 2 ? -ENOSPC : -EBUSY;
			ts_fail_next_map(z->rec, TS_SET_LEAF, z->m.fail_set);
		}
		break;
	case OP_FAIL_REMOVE:
		if (!z->rec || !z->may_die || z->m.fail_remove)
			break;
		z->m.fail_remove = true;
		ts_fail_next_remove(z->rec);
		break;
	default:
		do_bad(z, in);
		break;
	}
	/* An armed allocation failure lasts one operation. */
	z->m.alloc_countdown = -1;
	tdp_port_fail_alloc_after(-1);
}

/* ---- one input ------------------------------------------------------------------- */

/* Configuration byte: removals may fail (only with a backend). */
static bool cfg_may_die(uint8_t cfg_byte)
{
	return !(cfg_byte & 1) && (cfg_byte & 16);
}

static void setup(struct fuzz *z, uint8_t cfg_byte)
{
	bool backend = !(cfg_byte & 1);
	int root_level = cfg_byte & 2 ? 5 : 4;
	tdp_gfn_t direct_bits =
		backend ? 1ULL << (root_level * TDP_LEVEL_BITS - 1) : 0;
	size_t ext_size = cfg_byte & 8 ? 0 : 4096;
	struct tdp_mmu_config cfg = {
		.root_level = root_level,
		.direct_bits = direct_bits,
		.host = ts_flush_host(NULL, false),
		.flags = cfg_byte & 4 ? TDP_MMU_FORCE_YIELD : 0,
	};

	z->may_die = cfg_may_die(cfg_byte);
	model_init(&z->m, root_level, direct_bits, backend, ext_size);
	if (backend) {
		z->rec = ts_backend_create(root_level, direct_bits, ext_size);
		if (!z->rec)
			abort();
		/* Bit 5: the backend demotes (faults too) and promotes. */
		z->m.resizes = cfg_byte & 32;
		ts_set_demote(z->rec, z->m.resizes, true);
		ts_set_promote(z->rec, z->m.resizes);
		cfg.backend = ts_backend_ops(z->rec);
	}
	if (tdp_mmu_create(&cfg, &z->mmu))
		fail("tdp_mmu_create");
	if (z->rec)
		ts_backend_set_mmu(z->rec, z->mmu);
	z->fmt = tdp_mmu_format(z->mmu);
	EXPECT_EQ(tdp_vcpu_create(z->mmu, &z->vcpu), model_vcpu_create(&z->m),
		  "tdp_vcpu_create");
}

/* Put every reference, destroy the vCPU, tear down, and check. */
static void finish(struct fuzz *z)
{
	bool mirror_leaves = false;
	struct tdp_stats st;
	int want;

	z->name = "teardown";
	while (z->nr_held)
		drop_root(z, 0);
	if (z->vcpu) {
		tdp_vcpu_destroy(z->vcpu);
		z->vcpu = NULL;
		model_vcpu_destroy(&z->m);
	}
	compare_state(z, true);
	compare_backend(z);
	if (z->m.valid[TDP_ROOT_MIRROR]) {
		uint64_t tables[TDP_NR_ROOT_TYPES][TDP_MAX_LEVEL + 1];
		uint64_t leaves[TDP_NR_ROOT_TYPES][TDP_MAX_LEVEL + 1];

		model_count(&z->m, tables, leaves);
		for (int l = 1; l <= TDP_MAX_LEVEL; l++)
			mirror_leaves |= leaves[TDP_ROOT_MIRROR][l] != 0;
	}
	/* A removal armed to fail fails in teardown's mirror zap. */
	want = z->m.dead || (z->m.fail_remove && mirror_leaves) ? -EIO : 0;
	EXPECT_EQ(tdp_mmu_teardown(z->mmu), want, "tdp_mmu_teardown");
	if (!want) {
		tdp_mmu_get_stats(z->mmu, &st);
		for (int t = 0; t < TDP_NR_ROOT_TYPES; t++) {
			for (int l = 0; l <= TDP_MAX_LEVEL; l++) {
				EXPECT_EQ(st.tables[t][l], 0,
					  "tables after teardown");
				EXPECT_EQ(st.leaves[t][l], 0,
					  "leaves after teardown");
			}
		}
		EXPECT_EQ(st.pages_in_use, 0, "pages in use after teardown");
		EXPECT_EQ(st.roots_freed, st.roots_allocated,
			  "roots freed after teardown");
		if (z->rec) {
			EXPECT_EQ(ts_nr_tables(z->rec), 0,
				  "backend tables after teardown");
			EXPECT_EQ(ts_nr_leaves(z->rec), 0,
				  "backend leaves after teardown");
		}
	}
	EXPECT_EQ(tdp_mmu_teardown(z->mmu), -ESHUTDOWN, "second teardown");
	if (z->rec)
		EXPECT_EQ(ts_violations(z->rec), 0, "backend violations");
	tdp_mmu_destroy(z->mmu);
	ts_backend_destroy(z->rec);
	model_fini(&z->m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool registered, trace;
	struct input in = { .p = data, .n = size };
	struct fuzz z = { .nr_held = 0 };
	bool full;

	if (!registered) {
		tdp_thread_register();
		registered = true;
		trace = getenv("FUZZ_OPS_TRACE") != NULL;
	}
	if (!size)
		return 0;
	current = &z;
	z.name = "setup";
#ifdef FUZZ_ASAN
	/* A dead MMU leaks what the backend may still reference: nothing
	 * an input that may kill it allocates is reported. */
	if (cfg_may_die(data[0]))
		__lsan_disable();
#endif
	setup(&z, u8(&in));
	for (z.op = 0; z.op < MAX_OPS && in.pos < in.n; z.op++) {
		enum op op = decode_op(u8(&in));

		z.name = op_names[op];
		do_op(&z, &in, op);
		if (trace)
			fprintf(stderr,
				"fuzz_ops: %3d %-28s roots %d fixed %" PRIu64
				" spurious %" PRIu64 " retried %" PRIu64
				" zapped %" PRIu64 "%s\n",
				z.op, z.name, model_nr_roots(&z.m),
				z.m.ctr.faults_fixed, z.m.ctr.faults_spurious,
				z.m.ctr.faults_retried, z.m.ctr.zapped_leaves,
				z.m.dead ? " dead" : "");
		if (z.m.dead && z.rec)
			ts_forbid_calls(z.rec, true);
		full = z.op % COMPARE_EVERY == COMPARE_EVERY - 1;
		compare_state(&z, full);
		if (full)
			compare_backend(&z);
	}
	/* An allocation failure armed by the last operation expires. */
	z.m.alloc_countdown = -1;
	tdp_port_fail_alloc_after(-1);
	finish(&z);
#ifdef FUZZ_ASAN
	if (z.may_die)
		__lsan_enable();
#endif
	current = NULL;
	return 0;
}
