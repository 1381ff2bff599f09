/*
 * The views of bulwarkctl commands whose results need reshaping: stats (a
 * row a tenant), quota show and set (a quota's value beside the one in
 * force), a tenant (its quotas' defaults said so), group list (a group's
 * rules in one cell) and import mosquitto (a sentence).
 */
#ifndef BW_ADMIN_CTL_VIEWS_H
#define BW_ADMIN_CTL_VIEWS_H

#include <jansson.h>
#include <stdio.h>

void bw_ctl_view_stats(FILE *out, const json_t *args, const json_t *result);
void bw_ctl_view_quotas(FILE *out, const json_t *args, const json_t *result);
void bw_ctl_view_tenant(FILE *out, const json_t *args, const json_t *result);
void bw_ctl_view_groups(FILE *out, const json_t *args, const json_t *result);
void bw_ctl_view_import(FILE *out, const json_t *args, const json_t *result);

#endif
