/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * SPTE format: the EPT layout passes its own check, the frozen value has
 * every property the design requires, broken layouts are refused, and the
 * leaf, non-leaf and MMIO encoders round-trip through the decoders.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "ts_cmocka.h"

#include <tdp/tdp.h>

#define BIT(n) (1ULL << (n))

static const struct tdp_spte_format *ept = &tdp_spte_format_ept;

static uint64_t rwx_bits(const struct tdp_spte_format *fmt)
{
	return fmt->readable | fmt->writable | fmt->executable;
}

static void test_ept_format_passes_check(void **state)
{
	(void)state;
	assert_int_equal(tdp_spte_format_check(ept), 0);
	assert_int_equal(tdp_spte_format_check(NULL), -EINVAL);
}

/* The bit positions of the EPT layout (include/tdp/spte.h). */
static void test_ept_layout_bits(void **state)
{
	(void)state;
	assert_int_equal(ept->readable, BIT(0));
	assert_int_equal(ept->writable, BIT(1));
	assert_int_equal(ept->executable, BIT(2));
	assert_int_equal(ept->leaf_size, BIT(7));
	assert_int_equal(ept->accessed, BIT(8));
	assert_int_equal(ept->dirty, BIT(9));
	assert_int_equal(ept->pfn_mask, 0x000ffffffffff000ULL);
	assert_int_equal(ept->suppress_ve, BIT(63));
	assert_true(ept->nonpresent & ept->suppress_ve);
}

static void test_frozen_value_properties(void **state)
{
	tdp_spte_t frozen = ept->frozen;

	(void)state;
	assert_true(tdp_spte_is_frozen(ept, frozen));
	assert_false(tdp_spte_is_present(ept, frozen));
	assert_int_equal(frozen & ept->mmu_present, 0);
	assert_int_equal(frozen & ept->pfn_mask, 0);
	assert_int_equal(tdp_spte_pfn(ept, frozen), 0);
	assert_int_equal(frozen & rwx_bits(ept), 0);
	assert_int_equal(tdp_spte_prot(ept, frozen), 0);
	assert_false(tdp_spte_is_mmio(ept, frozen));
	assert_int_not_equal(frozen, ept->nonpresent);

	/* Non-present: not present, not frozen, not MMIO, keeps #VE off. */
	assert_false(tdp_spte_is_present(ept, ept->nonpresent));
	assert_false(tdp_spte_is_frozen(ept, ept->nonpresent));
	assert_false(tdp_spte_is_mmio(ept, ept->nonpresent));
	assert_int_equal(tdp_spte_prot(ept, ept->nonpresent), 0);

	/* No MMIO SPTE, whatever its GFN and generation, is frozen. */
	for (uint32_t gen = 0; gen <= TDP_MMIO_GEN_MASK; gen += 0x1111) {
		for (tdp_gfn_t gfn = 0; gfn < (1ULL << 36);
		     gfn += 0x123456789ULL) {
			tdp_spte_t mmio = tdp_spte_make_mmio(ept, gfn, gen);

			assert_false(tdp_spte_is_frozen(ept, mmio));
			assert_int_not_equal(mmio, ept->nonpresent);
		}
	}
}

/* One way to break the EPT layout, and the name printed on failure. */
struct broken_format {
	const char *what;
	void (*apply)(struct tdp_spte_format *fmt);
};

static void frozen_readable(struct tdp_spte_format *f)
{
	f->frozen |= f->readable;
}
static void frozen_writable(struct tdp_spte_format *f)
{
	f->frozen |= f->writable;
}
static void frozen_executable(struct tdp_spte_format *f)
{
	f->frozen |= f->executable;
}
static void frozen_is_nonpresent(struct tdp_spte_format *f)
{
	f->frozen = f->nonpresent;
}
static void frozen_mmu_present(struct tdp_spte_format *f)
{
	f->frozen |= f->mmu_present;
}
static void frozen_has_pfn(struct tdp_spte_format *f)
{
	f->frozen |= BIT(12);
}
static void frozen_high_pfn(struct tdp_spte_format *f)
{
	f->frozen |= BIT(51);
}
static void pfn_overlaps_present(struct tdp_spte_format *f)
{
	f->pfn_mask |= f->mmu_present;
}
static void pfn_overlaps_host_writable(struct tdp_spte_format *f)
{
	f->pfn_mask |= f->host_writable;
}
static void pfn_overlaps_size(struct tdp_spte_format *f)
{
	f->pfn_mask |= f->leaf_size;
}
static void pfn_overlaps_rwx(struct tdp_spte_format *f)
{
	f->pfn_mask |= f->readable;
}
static void nonpresent_present(struct tdp_spte_format *f)
{
	f->nonpresent |= f->mmu_present;
}
static void nonpresent_readable(struct tdp_spte_format *f)
{
	f->nonpresent |= f->readable;
}
static void mmio_present(struct tdp_spte_format *f)
{
	f->mmio_value |= f->mmu_present;
}
/* MMIO pattern that the frozen and non-present values both match. */
static void mmio_matches_frozen(struct tdp_spte_format *f)
{
	f->mmio_mask = f->mmu_present | f->suppress_ve;
	f->mmio_value = f->suppress_ve;
}
static void gen_too_narrow(struct tdp_spte_format *f)
{
	f->mmio_gen_high = 0;
}
static void gen_overlaps_pfn(struct tdp_spte_format *f)
{
	f->mmio_gen_high |= BIT(12);
}
static void gen_overlaps_mask(struct tdp_spte_format *f)
{
	f->mmio_gen_low |= BIT(0);
}
static void gen_low_high_overlap(struct tdp_spte_format *f)
{
	f->mmio_gen_high |= BIT(3);
}
static void readable_missing(struct tdp_spte_format *f)
{
	f->readable = 0;
}
static void writable_two_bits(struct tdp_spte_format *f)
{
	f->writable |= BIT(4);
}
static void present_missing(struct tdp_spte_format *f)
{
	f->mmu_present = 0;
}

static const struct broken_format broken_formats[] = {
	{ "frozen has R", frozen_readable },
	{ "frozen has W", frozen_writable },
	{ "frozen has X", frozen_executable },
	{ "frozen == nonpresent", frozen_is_nonpresent },
	{ "frozen is MMU-present", frozen_mmu_present },
	{ "frozen has low PFN bit", frozen_has_pfn },
	{ "frozen has high PFN bit", frozen_high_pfn },
	{ "PFN overlaps MMU-present", pfn_overlaps_present },
	{ "PFN overlaps host-writable", pfn_overlaps_host_writable },
	{ "PFN overlaps leaf size", pfn_overlaps_size },
	{ "PFN overlaps R", pfn_overlaps_rwx },
	{ "nonpresent is MMU-present", nonpresent_present },
	{ "nonpresent is readable", nonpresent_readable },
	{ "MMIO value is MMU-present", mmio_present },
	{ "frozen matches MMIO", mmio_matches_frozen },
	{ "MMIO generation too narrow", gen_too_narrow },
	{ "MMIO generation overlaps PFN", gen_overlaps_pfn },
	{ "MMIO generation overlaps RWX", gen_overlaps_mask },
	{ "MMIO generation halves overlap", gen_low_high_overlap },
	{ "no readable bit", readable_missing },
	{ "writable is two bits", writable_two_bits },
	{ "no MMU-present bit", present_missing },
};

static void test_broken_formats_rejected(void **state)
{
	(void)state;
	for (size_t i = 0;
	     i < sizeof(broken_formats) / sizeof(broken_formats[0]); i++) {
		struct tdp_spte_format fmt = *ept;
		int ret;

		broken_formats[i].apply(&fmt);
		ret = tdp_spte_format_check(&fmt);
		if (ret != -EINVAL)
			fail_msg(
				"format \"%s\": check returned %d, want -EINVAL",
				broken_formats[i].what, ret);
	}
}

static const unsigned int all_prots[] = {
	TDP_PROT_READ,
	TDP_PROT_READ | TDP_PROT_WRITE,
	TDP_PROT_READ | TDP_PROT_EXEC,
	TDP_PROT_RWX,
};

static void check_leaf(tdp_pfn_t pfn, int level, unsigned int prot)
{
	tdp_spte_t spte = tdp_spte_make_leaf(ept, pfn, level, prot);
	bool w = prot & TDP_PROT_WRITE;

	assert_true(tdp_spte_is_present(ept, spte));
	assert_true(tdp_spte_is_leaf(ept, spte, level));
	assert_false(tdp_spte_is_frozen(ept, spte));
	assert_false(tdp_spte_is_mmio(ept, spte));
	assert_int_equal(tdp_spte_pfn(ept, spte), pfn);
	assert_int_equal(tdp_spte_prot(ept, spte), prot);
	assert_int_equal(tdp_spte_is_writable(ept, spte), w);
	assert_int_equal((spte & ept->host_writable) != 0, w);
	assert_int_equal((spte & ept->mmu_writable) != 0, w);
	/* The size bit marks a huge leaf, and only a huge leaf. */
	assert_int_equal((spte & ept->leaf_size) != 0, level > TDP_LEVEL_4K);
	/* Created by an access. */
	assert_true(spte & ept->accessed);
	assert_int_equal(spte & ept->memtype_wb, ept->memtype_wb);
}

static void test_leaf_encode_decode(void **state)
{
	static const tdp_pfn_t pfns[] = {
		0, 1, 0x1234, 0xabcdef, (1ULL << 39) + 7, (1ULL << 40) - 1,
	};

	(void)state;
	for (int level = TDP_LEVEL_4K; level <= TDP_LEVEL_1G; level++) {
		for (size_t p = 0; p < sizeof(all_prots) / sizeof(all_prots[0]);
		     p++) {
			for (size_t i = 0; i < sizeof(pfns) / sizeof(pfns[0]);
			     i++) {
				tdp_pfn_t pfn =
					pfns[i] & ~(tdp_level_pages(level) - 1);

				check_leaf(pfn, level, all_prots[p]);
			}
		}
	}
	/* A non-huge SPTE at level 2 (no size bit) is not a leaf. */
	assert_false(tdp_spte_is_leaf(
		ept, tdp_spte_make_leaf(ept, 0, 1, TDP_PROT_READ),
		TDP_LEVEL_2M));
}

static void test_nonleaf_encode_decode(void **state)
{
	static const tdp_pfn_t pfns[] = { 0, 1, 0x7ffff, (1ULL << 40) - 1 };

	(void)state;
	for (size_t i = 0; i < sizeof(pfns) / sizeof(pfns[0]); i++) {
		tdp_spte_t spte = tdp_spte_make_nonleaf(ept, pfns[i]);

		assert_true(tdp_spte_is_present(ept, spte));
		assert_int_equal(tdp_spte_pfn(ept, spte), pfns[i]);
		assert_false(tdp_spte_is_mmio(ept, spte));
		assert_false(tdp_spte_is_frozen(ept, spte));
		for (int level = TDP_LEVEL_2M; level <= TDP_MAX_LEVEL; level++)
			assert_false(tdp_spte_is_leaf(ept, spte, level));
		/* A table entry never restricts what its leaves grant. */
		assert_int_equal(tdp_spte_prot(ept, spte), TDP_PROT_RWX);
	}
}

static void check_mmio(tdp_gfn_t gfn, uint32_t gen)
{
	tdp_spte_t spte = tdp_spte_make_mmio(ept, gfn, gen);

	if (!tdp_spte_is_mmio(ept, spte) ||
	    tdp_spte_mmio_gen(ept, spte) != gen ||
	    tdp_spte_mmio_gfn(ept, spte) != gfn)
		fail_msg(
			"MMIO gfn=%#llx gen=%#x: spte=%#llx is_mmio=%d gen=%#x gfn=%#llx",
			(unsigned long long)gfn, gen, (unsigned long long)spte,
			tdp_spte_is_mmio(ept, spte),
			tdp_spte_mmio_gen(ept, spte),
			(unsigned long long)tdp_spte_mmio_gfn(ept, spte));
	assert_false(tdp_spte_is_present(ept, spte));
	assert_false(tdp_spte_is_frozen(ept, spte));
	assert_int_not_equal(spte, ept->nonpresent);
}

static void test_mmio_encode_decode(void **state)
{
	static const uint32_t gens[] = {
		0,     1,	0x7f,	 0x80,	  0xff,	   0x100,
		0x1ff, 0x2aaaa, 0x55555, 0x40000, 0x7fffe, TDP_MMIO_GEN_MASK,
	};
	static const tdp_gfn_t gfns[] = {
		0, 1, 0x1ff, 0x200, 0x12345678, (1ULL << 35), (1ULL << 36) - 1,
	};

	(void)state;
	for (size_t g = 0; g < sizeof(gens) / sizeof(gens[0]); g++)
		for (size_t i = 0; i < sizeof(gfns) / sizeof(gfns[0]); i++)
			check_mmio(gfns[i], gens[g]);
	/* Every generation bit on its own, and all but it. */
	for (int b = 0; b < TDP_MMIO_GEN_BITS; b++) {
		check_mmio(0x1234, 1U << b);
		check_mmio(0x1234, TDP_MMIO_GEN_MASK & ~(1U << b));
	}
	/* Two generations differ in the SPTE. */
	assert_int_not_equal(tdp_spte_make_mmio(ept, 5, 1),
			     tdp_spte_make_mmio(ept, 5, 2));
}

static void test_is_mmio_classification(void **state)
{
	(void)state;
	assert_true(tdp_spte_is_mmio(ept, tdp_spte_make_mmio(ept, 42, 3)));
	for (int level = TDP_LEVEL_4K; level <= TDP_LEVEL_1G; level++)
		for (size_t p = 0; p < sizeof(all_prots) / sizeof(all_prots[0]);
		     p++)
			assert_false(tdp_spte_is_mmio(
				ept, tdp_spte_make_leaf(ept, 0x200000, level,
							all_prots[p])));
	assert_false(tdp_spte_is_mmio(ept, tdp_spte_make_nonleaf(ept, 0x1000)));
	assert_false(tdp_spte_is_mmio(ept, ept->nonpresent));
	assert_false(tdp_spte_is_mmio(ept, ept->frozen));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ept_format_passes_check),
		cmocka_unit_test(test_ept_layout_bits),
		cmocka_unit_test(test_frozen_value_properties),
		cmocka_unit_test(test_broken_formats_rejected),
		cmocka_unit_test(test_leaf_encode_decode),
		cmocka_unit_test(test_nonleaf_encode_decode),
		cmocka_unit_test(test_mmio_encode_decode),
		cmocka_unit_test(test_is_mmio_classification),
	};

	return TS_RUN_GROUP("spte", tests);
}
