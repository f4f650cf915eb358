/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Simulator counters.  One table (SIM_COUNTERS) names every counter, the
 * section it is printed in and its key in the JSON output, so the summary
 * table and the JSON file always carry the same numbers; the counters of
 * a section stand together, and the sections are printed in this order.
 * Counters are updated with relaxed atomic adds from any thread.
 */
#ifndef SIM_STATS_H
#define SIM_STATS_H

#include <stdint.h>

/* X(id, section, key, description) */
#define SIM_COUNTERS(X)                                                        \
	X(FAULT_PRIVATE_FIXED, "faults", "private_fixed",                      \
	  "private faults that installed a mapping")                           \
	X(FAULT_PRIVATE_SPURIOUS, "faults", "private_spurious",                \
	  "private faults already mapped")                                     \
	X(FAULT_PRIVATE_RETRY, "faults", "private_retry",                      \
	  "private faults that returned TDP_FAULT_RETRY")                      \
	X(FAULT_PRIVATE_ERROR, "faults", "private_error",                      \
	  "private faults that failed with an error")                          \
	X(FAULT_SHARED_FIXED, "faults", "shared_fixed",                        \
	  "shared faults that installed a mapping")                            \
	X(FAULT_SHARED_SPURIOUS, "faults", "shared_spurious",                  \
	  "shared faults already mapped")                                      \
	X(FAULT_SHARED_RETRY, "faults", "shared_retry",                        \
	  "shared faults that returned TDP_FAULT_RETRY")                       \
	X(FAULT_SHARED_ERROR, "faults", "shared_error",                        \
	  "shared faults that failed with an error")                           \
	X(FAULT_INJECTED_SURVIVED, "faults", "injected_failures_survived",     \
	  "faults failed by an injected SEAMCALL failure, then retried")       \
	X(BUILD_IMAGE_PAGES, "td_build", "image_pages",                        \
	  "pages PAGE.ADDed into the initial image through the mirror root")   \
	X(BUILD_RETRIES, "td_build", "add_retries",                            \
	  "image faults and MR.EXTENDs retried (busy or injected)")            \
	X(RETRY_BLOCKED_HUGE, "retries", "blocked_huge_reentries",             \
	  "private accesses that met a huge leaf blocked for a demote")        \
	X(RETRY_REENTRY, "retries", "fault_reentries",                         \
	  "guest re-entries after a retried fault")                            \
	X(RETRY_REMOVE_BUSY, "retries", "removal_busy",                        \
	  "removal SEAMCALLs retried with vCPUs held out")                     \
	X(RETRY_TRACK_EPOCH, "retries", "track_previous_epoch",                \
	  "TRACK retried after PREVIOUS_TLB_EPOCH_BUSY")                       \
	X(RETRY_ACCEPT_BUSY, "retries", "accept_busy",                         \
	  "guest ACCEPTs retried after OPERAND_BUSY")                          \
	X(RETRY_VP_ENTER_BUSY, "retries", "vp_enter_busy",                     \
	  "VM entries retried after OPERAND_BUSY")                             \
	X(RETRY_ZAP_BUSY, "retries", "zap_busy",                               \
	  "zaps repeated after -EBUSY (a demote stayed busy)")                 \
	X(ZAP_TO_SHARED, "zaps", "convert_to_shared",                          \
	  "tdp_zap_convert_to_shared calls")                                   \
	X(ZAP_TO_SHARED_PAGES, "zaps", "convert_to_shared_pages",              \
	  "pages in those ranges")                                             \
	X(ZAP_TO_PRIVATE, "zaps", "convert_to_private",                        \
	  "tdp_zap_convert_to_private calls")                                  \
	X(ZAP_TO_PRIVATE_PAGES, "zaps", "convert_to_private_pages",            \
	  "pages in those ranges")                                             \
	X(ZAP_HOST_UNMAP, "zaps", "host_unmap", "tdp_zap_host_unmap calls")    \
	X(ZAP_HOST_UNMAP_PAGES, "zaps", "host_unmap_pages",                    \
	  "pages in those ranges")                                             \
	X(ZAP_SLOT_DELETED, "zaps", "slot_deleted",                            \
	  "tdp_zap_slot_deleted calls")                                        \
	X(ZAP_SLOT_DELETED_PAGES, "zaps", "slot_deleted_pages",                \
	  "pages in those ranges")                                             \
	X(ZAP_PRIVATE_LEAVES, "zaps", "private_leaves_removed",                \
	  "remove_leaf callbacks (BLOCK, TRACK, kick, REMOVE)")                \
	X(ZAP_PRIVATE_TABLES, "zaps", "private_tables_removed",                \
	  "free_table callbacks (BLOCK, TRACK, kick, SEPT.REMOVE)")            \
	X(DEMOTE_PRIVATE, "huge_pages", "private_demotes_for_zaps",            \
	  "demote_leaf callbacks done for zaps (BLOCK, TRACK, kick, DEMOTE)")  \
	X(DEMOTE_PRIVATE_FAULT, "huge_pages", "private_demotes_for_faults",    \
	  "demote_leaf callbacks done for faults, under the read lock")        \
	X(PROMOTE_PRIVATE, "huge_pages", "private_promotes",                   \
	  "promote_leaf callbacks done (BLOCK, TRACK, kick, PAGE.PROMOTE)")    \
	X(PROMOTE_REFUSED, "huge_pages", "private_promotes_refused",           \
	  "PAGE.PROMOTE refused: the 512 pages not all MAPPED or PENDING")     \
	X(FLUSH_RANGE, "flushes", "range_callbacks",                           \
	  "host flush_range callbacks")                                        \
	X(FLUSH_ALL, "flushes", "all_callbacks", "host flush_all callbacks")   \
	X(FLUSH_TLB_ENTRIES, "flushes", "tlb_entries_shot_down",               \
	  "shared TLB entries invalidated by host flushes")                    \
	X(FLUSH_EPOCH, "flushes", "epoch_flushes_at_entry",                    \
	  "private TLB flushes at VM entry after a TRACK")                     \
	X(FLUSH_ROOT_SWITCH, "flushes", "root_switch_flushes",                 \
	  "shared TLB flushes because the loaded root changed")                \
	X(KICK_ALL, "flushes", "kick_all",                                     \
	  "kicks of every vCPU (after TRACK)")                                 \
	X(KICK_WAITS, "flushes", "kick_waits",                                 \
	  "vCPUs a kick had to wait for")                                      \
	X(HOLD_OUTS, "flushes", "hold_outs",                                   \
	  "times vCPUs were held out of guest mode")                           \
	X(CONV_TO_SHARED, "conversions", "to_shared", "MapGPA to shared")      \
	X(CONV_TO_SHARED_PAGES, "conversions", "to_shared_pages",              \
	  "pages converted to shared")                                         \
	X(CONV_TO_PRIVATE, "conversions", "to_private", "MapGPA to private")   \
	X(CONV_TO_PRIVATE_PAGES, "conversions", "to_private_pages",            \
	  "pages converted to private")                                        \
	X(STRAY_READS, "conversions", "stray_reads",                           \
	  "stray reads into the next page (load_unaligned_zeropad)")           \
	X(STRAY_NOT_PRESENT, "conversions", "stray_not_present",               \
	  "stray reads the guest's page table refused (#PF, fixed up)")        \
	X(STRAY_FAULTED, "conversions", "stray_faulted",                       \
	  "stray reads that took an EPT violation")                            \
	X(ACCEPT_2M, "accepts", "accepted_2m", "2 MiB ACCEPTs that succeeded") \
	X(ACCEPT_4K, "accepts", "accepted_4k", "4 KiB ACCEPTs that succeeded") \
	X(ACCEPT_SIZE_MISMATCH, "accepts", "size_mismatch",                    \
	  "ACCEPTs that returned PAGE_SIZE_MISMATCH (fallback to 4 KiB)")      \
	X(ACCEPT_ALREADY, "accepts", "already_accepted",                       \
	  "ACCEPTs that returned PAGE_ALREADY_ACCEPTED")                       \
	X(ACCEPT_EXIT, "accepts", "ept_violation_exits",                       \
	  "ACCEPTs that exited to the host with an EPT violation")             \
	X(ACCESS_READ, "accesses", "reads", "guest reads")                     \
	X(ACCESS_WRITE, "accesses", "writes", "guest writes")                  \
	X(TLB_HIT, "accesses", "tlb_hits", "translations found in the TLB")    \
	X(WALK_PRIVATE, "accesses", "private_walks",                           \
	  "hardware walks of the Secure EPT")                                  \
	X(WALK_SHARED, "accesses", "shared_walks",                             \
	  "hardware walks of the direct tree")                                 \
	X(EPT_VIOLATION, "accesses", "ept_violations",                         \
	  "accesses that exited with an EPT violation")                        \
	X(DIRTY_BITS_SET, "accesses", "dirty_bits_set",                        \
	  "direct-tree leaves whose dirty bit a write set (the CPU)")          \
	X(PSC_HIT, "accesses", "psc_hits",                                     \
	  "shared walks that started from the paging-structure cache")         \
	X(PSC_STALE, "accesses", "psc_stale",                                  \
	  "paging-structure cache hits whose 4 KiB entry did not translate")   \
	X(MIGRATE_ROUNDS, "migration", "rounds",                               \
	  "dirty-logging rounds, the final stop-and-copy included")            \
	X(MIGRATE_HARVESTED, "migration", "harvested",                         \
	  "dirty GFNs tdp_harvest_dirty() reported")                           \
	X(MIGRATE_COPIED, "migration", "copied",                               \
	  "shared pages copied to the destination")                            \
	X(MIGRATE_FINAL_CHECKED, "migration", "final_checked",                 \
	  "shared pages compared with their copy at the end")                  \
	X(MMIO_READS, "mmio", "reads", "MMIO reads the host emulated")         \
	X(MMIO_WRITES, "mmio", "writes", "MMIO writes the host emulated")      \
	X(MMIO_RAM_ACCESSES, "mmio", "ram_accesses",                           \
	  "accesses to window pages a memory slot made RAM")                   \
	X(MMIO_MISCONFIG, "mmio", "misconfig_exits",                           \
	  "EPT misconfigurations (walks that met an MMIO SPTE)")               \
	X(MMIO_FAULTS, "mmio", "sptes_installed",                              \
	  "MMIO SPTEs tdp_map() installed")                                    \
	X(MMIO_STALE, "mmio", "stale_refaults",                                \
	  "misconfigurations through an older generation, faulted again")      \
	X(MMIO_FLIPS, "mmio", "layout_changes",                                \
	  "memory slots added over or removed from window pages")              \
	X(MMIO_GEN_BUMPS, "mmio", "generation_bumps",                          \
	  "MMIO generation changes (tdp_mmu_set_mmio_generation)")             \
	X(CHECK_ACCESS, "checks", "access_checks",                             \
	  "page owner and (gfn, version) checks on guest accesses")            \
	X(CHECK_FREE, "checks", "page_free_checks",                            \
	  "host page frees checked against TLBs and the PAMT")                 \
	X(CHECK_REMOVE, "checks", "remove_checks",                             \
	  "PAGE.REMOVEs checked against live vCPU TLB entries")                \
	X(CHECK_FROZEN, "checks", "frozen_checks",                             \
	  "backend callbacks whose mirror entry was checked FROZEN (or "       \
	  "unlinked)")                                                         \
	X(CHECK_FLUSH_ORDER, "checks", "flush_order_checks",                   \
	  "GFNs of a zap's range flushes checked already cleared in the tree") \
	X(CHECK_ROOT_FLUSH_ORDER, "checks", "root_flush_order_checks",        \
	  "range flushes of a root zap checked against the old root's leaves") \
	X(CHECK_TLB_BACKED, "checks", "tlb_backed_checks",                    \
	  "write-locked zap flushes that checked every TLB entry backed")      \
	X(RACER_BITS, "events", "racer_bits_set",                             \
	  "accessed/dirty bits the racing CPU set while aimed")                \
	X(CHECK_WRPROT_DIRTY, "checks", "wrprot_dirty_checks",                 \
	  "ledger GFNs checked still dirty right after a write-protect")       \
	X(CHECK_LOCK_FREE, "checks", "lock_free_checks",                       \
	  "takes of mmu_lock for write that checked every TLB entry backed")   \
	X(CHECK_LIVE_FILTERED, "checks", "tlb_checks_filtered",                \
	  "vCPU TLBs a liveness check cleared by their filter, unlocked")      \
	X(CHECK_QUIESCE, "checks", "quiesce_checks",                           \
	  "stop-the-world consistency checks")                                 \
	X(CHECK_QUIESCE_PAGES, "checks", "quiesce_pages",                      \
	  "GFNs compared across guest, host, mirror and S-EPT")                \
	X(CHECK_IMAGE, "checks", "image_first_touches",                        \
	  "first touches of initial-image pages (content checked)")            \
	X(CHECK_MEASUREMENT, "checks", "measurement_checks",                   \
	  "guest checks of the reported measurement against its image")        \
	X(CHECK_LEDGER, "checks", "dirty_ledger_checks",                       \
	  "freed shared pages checked against the dirty ledger, quiesced "     \
	  "GFNs with a ledger bit against the tree")                           \
	X(CHECK_BACKED, "checks", "cache_backed_checks",                         \
	  "TLB and paging-structure cache entries checked against the tree")   \
	X(CHECK_ROOT_ZAP, "checks", "root_zap_checks",                         \
	  "TLBs checked for translations through a zapped root")               \
	X(CHECK_FAULT_MAP, "checks", "fault_map_checks",                       \
	  "fixed faults whose leaf was checked in the tree right after")       \
	X(CHECK_FINAL, "checks", "final_checks",                               \
	  "checks after TD teardown")                                          \
	X(CHECK_REPLAY_PAGES, "checks", "replay_pages",                        \
	  "touched pages checked mapped once, in their alias, after a replay") \
	X(CHECK_REPLAY_TABLES, "checks", "replay_table_counts",                \
	  "trees whose tables per level were checked against the touched "     \
	  "regions")                                                           \
	X(EVENT_UNMAP, "events", "host_unmaps",                                \
	  "host unmaps (shared pages migrated)")                               \
	X(EVENT_HOT_BURST, "events", "hot_bursts",                             \
	  "host bursts of 2 MiB pre-faults, recoveries and demoting 4 KiB "    \
	  "pre-faults on a shared-hot region")                                 \
	X(HOT_DEMOTE_TRIES, "events", "hot_demote_faults",                     \
	  "4 KiB pre-faults of a shared-hot region mapped 2 MiB (each makes "  \
	  "the engine demote)")                                                \
	X(HOT_RESETS, "events", "hot_slot_resets",                             \
	  "slot deletions of a shared-hot region whose 4 KiB leaves could "    \
	  "not merge")                                                         \
	X(EVENT_PAGES_MIGRATED, "events", "pages_migrated",                    \
	  "shared pages copied to a new host page")                            \
	X(EVENT_SLOT_DELETE, "events", "slot_deletions",                       \
	  "memory slots deleted and re-added")                                 \
	X(EVENT_RECOVER, "events", "recoveries",                               \
	  "host recoveries of private 2 MiB pages (tdp_recover_huge_pages)")   \
	X(EVENT_DIRTY_LOG, "events", "dirty_log_events",                       \
	  "dirty-logging bursts: split, write-protect, clear-dirty, harvest, " \
	  "aging (no --migrate needed)")                                       \
	X(EVENT_RECOVER_SHARED, "events", "recoveries_shared",                 \
	  "host recoveries of shared 2 MiB regions (faulted in and split "     \
	  "first)")                                                            \
	X(RECOVERED_SHARED, "events", "recovered_shared",                      \
	  "shared 2 MiB leaves recovery made")                                 \
	X(EVENT_UNMAP_REGION, "events", "region_unmaps",                       \
	  "host unmaps of a whole 2 MiB region a vCPU uses (a THP "            \
	  "migrated)")                                                         \
	X(EVENT_PREFAULT, "events", "prefaults",                               \
	  "host pre-faults of private memory")                                 \
	X(EVENT_TEARDOWN, "events", "td_teardowns", "TD teardowns")            \
	X(EVENT_ROOT_INVALIDATE, "events", "root_invalidations",               \
	  "direct roots invalidated and zapped while the VM runs")             \
	X(RACE_WHOLE, "events", "race_unmaps",                                 \
	  "unmaps run by a fault's host after it resolved the page")           \
	X(RACE_PARTIAL, "events", "race_partial_unmaps",                       \
	  "unmaps of the rest of a 2 MiB region running across its tdp_map()") \
	X(RACE_TABLE, "events", "race_table_unlinks",                          \
	  "unmaps of a whole region right after a 4 KiB fault in it")          \
	X(FAULT_DELAYS, "events", "fault_delays",                              \
	  "faults delayed between resolving the page and tdp_map()")           \
	X(EVENT_SPLIT, "events", "eager_splits",                               \
	  "eager splits of the shared huge leaves of a region "                \
	  "(tdp_split_huge_range)")                                            \
	X(EVENT_PROMOTE_PREP, "events", "promote_preparations",               \
	  "regions pre-faulted or demoted in place, then recovered at once")   \
	X(EVENT_DEMOTE_IN_PLACE, "events", "demotes_in_place",                 \
	  "private 2 MiB leaves demoted by a 4 KiB pre-fault, for a promote")  \
	X(EVENT_ZAP_ALL, "events", "zap_alls",                                 \
	  "zaps of every shared mapping and direct table (tdp_zap_all)")       \
	X(WALKER_PARKS, "walker", "parks",                                     \
	  "walks parked in a direct table of 4 KiB leaves")                    \
	X(WALKER_MIRROR_PARKS, "walker", "mirror_parks",                       \
	  "walks parked in a mirror table a private 2 MiB leaf was demoted "   \
	  "into")                                                              \
	X(WALKER_MISSES, "walker", "misses",                                   \
	  "parks given up: the chosen GFNs had no table of 4 KiB leaves")      \
	X(WALKER_UNLINKS, "walker", "unlinks_seen",                            \
	  "tables unlinked while the walker was parked in them")               \
	X(WALKER_FROZEN_CHECKS, "walker", "frozen_checks",                     \
	  "unlinked tables seen with all 512 entries FROZEN")                  \
	X(HOST_ALLOC_2M, "host_memory", "chunks_2m",                           \
	  "2 MiB backing chunks allocated")                                    \
	X(HOST_ALLOC_2M_FAILED, "host_memory", "chunks_2m_unavailable",        \
	  "2 MiB chunks wanted but fragmented (4 KiB used)")                   \
	X(HOTADD_ONLINED, "host_memory", "hotadd_onlined_pages",               \
	  "hot-added pages the onlining hook let online for shared use")       \
	X(HOTADD_REFUSED, "host_memory", "hotadd_private_refused",             \
	  "onlining hook refusals of hot-added memory for private use")        \
	X(HOTADD_SHARED_PAGES, "host_memory", "hotadd_shared_pages",           \
	  "shared backing pages allocated from hot-added memory")              \
	X(HOST_PAGES_FREED, "host_memory", "pages_freed",                      \
	  "backing pages returned to the host")                                \
	X(REPLAY_PRIVATE, "replay", "private_accesses",                        \
	  "trace accesses to private pages")                                   \
	X(REPLAY_SHARED, "replay", "shared_accesses",                          \
	  "trace accesses to shared pages")

enum sim_counter {
#define SIM_COUNTER_ENUM(id, section, key, desc) SIM_C_##id,
	SIM_COUNTERS(SIM_COUNTER_ENUM)
#undef SIM_COUNTER_ENUM
	SIM_NR_COUNTERS
};

/*
 * SEAMCALLs and TDCALLs the module counts, by outcome.
 * X(id, name, key)
 */
#define SIM_SEAMCALLS(X)                                                       \
	X(PAGE_ADD, "PAGE.ADD", "page_add")                                    \
	X(MR_EXTEND, "MR.EXTEND", "mr_extend")                                 \
	X(MR_FINALIZE, "MR.FINALIZE", "mr_finalize")                           \
	X(SEPT_ADD, "SEPT.ADD", "sept_add")                                    \
	X(PAGE_AUG_4K, "PAGE.AUG 4K", "page_aug_4k")                           \
	X(PAGE_AUG_2M, "PAGE.AUG 2M", "page_aug_2m")                           \
	X(RANGE_BLOCK, "RANGE.BLOCK", "range_block")                           \
	X(RANGE_UNBLOCK, "RANGE.UNBLOCK", "range_unblock")                     \
	X(TRACK, "TRACK", "track")                                             \
	X(PAGE_REMOVE, "PAGE.REMOVE", "page_remove")                           \
	X(SEPT_REMOVE, "SEPT.REMOVE", "sept_remove")                           \
	X(PAGE_DEMOTE, "PAGE.DEMOTE", "page_demote")                           \
	X(PAGE_PROMOTE, "PAGE.PROMOTE", "page_promote")                        \
	X(VP_ENTER, "VP.ENTER", "vp_enter")                                    \
	X(PAGE_ACCEPT, "TDG.PAGE.ACCEPT", "page_accept")                       \
	X(PAGE_RECLAIM, "PHYMEM.PAGE.RECLAIM", "page_reclaim")

enum sim_seamcall {
#define SIM_SEAMCALL_ENUM(id, name, key) SIM_SC_##id,
	SIM_SEAMCALLS(SIM_SEAMCALL_ENUM)
#undef SIM_SEAMCALL_ENUM
	SIM_NR_SEAMCALLS
};

/*
 * X(id, key): OK is success (including non-error statuses), BUSY an
 * OPERAND_BUSY from a real lock conflict, BUSY_INJECTED one injected by
 * --busy-rate, FAIL_INJECTED a hard failure injected by --fail-rate,
 * ERROR any other error status.
 */
#define SIM_OUTCOMES(X)                                                        \
	X(OK, "ok")                                                            \
	X(BUSY, "busy")                                                        \
	X(BUSY_INJECTED, "busy_injected")                                      \
	X(FAIL_INJECTED, "failed_injected")                                    \
	X(ERROR, "error")

enum sim_outcome {
#define SIM_OUTCOME_ENUM(id, key) SIM_OUT_##id,
	SIM_OUTCOMES(SIM_OUTCOME_ENUM)
#undef SIM_OUTCOME_ENUM
	SIM_NR_OUTCOMES
};

/* One set of counts: a snapshot (sim_stats_snapshot()) or one shard. */
struct sim_stats {
	uint64_t c[SIM_NR_COUNTERS];
	uint64_t seamcall[SIM_NR_SEAMCALLS][SIM_NR_OUTCOMES];
};

/*
 * The live counters, one shard per thread (threads beyond
 * SIM_STAT_SHARDS share shards), so that vCPU threads counting every
 * access do not pass one cache line between them.  Each shard is
 * written with atomic adds by the threads that map to it; readers sum
 * the shards (sim_counter_read(), sim_stats_snapshot()).
 */
#define SIM_STAT_SHARDS 16

struct sim_counters {
	struct {
		struct sim_stats s;
	} __attribute__((aligned(64))) shard[SIM_STAT_SHARDS];
};

/* The calling thread's shard (assigned on its first count). */
unsigned int sim_stat_shard(void);

static inline void sim_count(struct sim_counters *st, enum sim_counter id,
			     uint64_t n)
{
	if (st)
		__atomic_add_fetch(&st->shard[sim_stat_shard()].s.c[id], n,
				   __ATOMIC_RELAXED);
}

static inline uint64_t sim_counter_read(const struct sim_counters *st,
					enum sim_counter id)
{
	uint64_t n = 0;

	for (int i = 0; i < SIM_STAT_SHARDS; i++)
		n += __atomic_load_n(&st->shard[i].s.c[id], __ATOMIC_RELAXED);
	return n;
}

static inline uint64_t sim_seamcall_read(const struct sim_counters *st,
					 enum sim_seamcall op,
					 enum sim_outcome out)
{
	uint64_t n = 0;

	for (int i = 0; i < SIM_STAT_SHARDS; i++)
		n += __atomic_load_n(&st->shard[i].s.seamcall[op][out],
				     __ATOMIC_RELAXED);
	return n;
}

static inline void sim_count_seamcall(struct sim_counters *st,
				      enum sim_seamcall op,
				      enum sim_outcome out)
{
	if (st)
		__atomic_add_fetch(&st->shard[sim_stat_shard()].s.seamcall[op][out],
				   1, __ATOMIC_RELAXED);
}

/* tdp_map() calls the host made: every fault outcome of both aliases. */
static inline uint64_t sim_faults_total(const struct sim_stats *st)
{
	uint64_t n = 0;

	for (int c = SIM_C_FAULT_PRIVATE_FIXED; c <= SIM_C_FAULT_SHARED_ERROR;
	     c++)
		n += st->c[c];
	return n;
}

/* Names for printing and JSON. */
const char *sim_counter_section(enum sim_counter id);
const char *sim_counter_key(enum sim_counter id);
const char *sim_counter_desc(enum sim_counter id);
const char *sim_seamcall_name(enum sim_seamcall op);
const char *sim_seamcall_key(enum sim_seamcall op);
const char *sim_outcome_key(enum sim_outcome out);

/* The sums of the shards: a consistent-enough copy for printing, exact
 * when no thread counts (at a quiesce point or after the run). */
void sim_stats_snapshot(const struct sim_counters *st, struct sim_stats *out);

#endif /* SIM_STATS_H */
