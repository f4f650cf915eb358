/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Consistency checks that need every thread stopped.  Each reports what
 * it finds as violations (report.h).
 */
#ifndef SIM_CONSISTENCY_H
#define SIM_CONSISTENCY_H

#include <stdint.h>

#include "sim.h"

/*
 * At a quiesce point, over every GFN: guest, host, mirror and S-EPT
 * agree on each page's alias and frame, nothing is left frozen or
 * blocked, and the engine's, the module's and the host's page counts
 * agree.  Returns the violations found.
 */
uint64_t sim_check_quiesced(struct sim *s);

/*
 * After the engine tore the MMU down (@st: its statistics then): it holds
 * no page, table or leaf, the TD owns no page, and the engine counted the
 * faults and backend busy/errors the host and module saw.
 */
void sim_check_after_teardown(struct sim *s, const struct tdp_stats *st);

/* After the module reclaimed its control pages: host memory is all free. */
void sim_check_host_memory_free(struct sim *s);

#endif /* SIM_CONSISTENCY_H */
