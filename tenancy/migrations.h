/*
 * The PostgreSQL schema migrations, tenancy/migrations/NNNN_name.sql,
 * embedded at build time (cmake/EmbedMigrations.cmake). Version i + 1 is
 * entry i; each is applied once, in order, by tenancy/store_pg.c.
 */
#ifndef BW_TENANCY_MIGRATIONS_H
#define BW_TENANCY_MIGRATIONS_H

#include <stddef.h>

struct bw__migration {
	int version;
	const char *name; /* file name */
	const char *sql;  /* its text, NUL-terminated */
};

extern const struct bw__migration bw__tenancy_migrations[];
extern const size_t bw__tenancy_migrations_n;

#endif
