/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The summary of a finished simulation (sim.h): a table of every counter,
 * SEAMCALL outcome, page-table figure and violation kind, and the same
 * numbers as JSON.
 */
#ifndef SIM_SUMMARY_H
#define SIM_SUMMARY_H

#include <stdio.h>

#include "sim.h"

/* Summary table on @f, and the same numbers as JSON to @path. */
void sim_print_summary(struct sim *s, FILE *f);
int sim_write_json(struct sim *s, const char *path);
/* Several TDs: {"tds": n, "td": [one summary object each], "violations":
 * total, "passed": bool}. */
int sim_write_json_tds(struct sim **tds, unsigned int n, const char *path);

#endif /* SIM_SUMMARY_H */
