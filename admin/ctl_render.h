/*
 * bulwarkctl's human output: a JSON result turned into aligned text tables
 * (headers, column widths from the content) and "key: value" blocks. Every
 * string the node sends is printed with control characters escaped, so a
 * tenant's principal or topic name cannot drive the operator's terminal.
 */
#ifndef BW_ADMIN_CTL_RENDER_H
#define BW_ADMIN_CTL_RENDER_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

/* A table column: its header and the member of each row it shows. */
struct bw_ctl_col {
	const char *header;
	const char *key;
};

/*
 * How a command's result is shown; the first member set wins.
 *  - render: a function of its own (args is the request's args, may be NULL).
 *  - list: result[list] is an array of rows, printed with cols (ncols of
 *    them), or the line `empty` when it has none.
 *  - done: a sentence for results that only confirm, where {key} is
 *    replaced by args[key] ("tenant {name} deleted").
 *  - member: result[member] printed as "key: value" lines.
 *  - none of them: the whole result as "key: value" lines.
 */
struct bw_ctl_view {
	void (*render)(FILE *out, const json_t *args, const json_t *result);
	const char *list;
	const struct bw_ctl_col *cols;
	size_t ncols;
	const char *empty;
	const char *done;
	const char *member;
};

/* Prints result as v says. */
void bw_ctl_render(FILE *out, const struct bw_ctl_view *v, const json_t *args,
                   const json_t *result);

/*
 * One cell's text, malloc'd (the caller frees; NULL only when out of
 * memory): a string with its control characters escaped and line breaks
 * shown as "; "; numbers; yes/no for booleans; "-" for null or missing; an
 * array of scalars comma-separated ("-" when empty); anything else as
 * compact JSON.
 */
char *bw_ctl_cell(const json_t *v);

/*
 * Prints rows (an array of objects) as a table with a header line, each
 * line indented by `indent` spaces; columns are as wide as their widest
 * cell, two spaces apart, and the last one is not padded. Returns the
 * number of rows printed.
 */
size_t bw_ctl_render_table(FILE *out, const json_t *rows, const struct bw_ctl_col *cols,
                           size_t ncols, int indent);

/*
 * Prints an object as "key: value" lines, values aligned, indented by
 * `indent`; a member holding an object is printed below its key, one
 * holding an array of objects as a table with a column for every member
 * its rows have.
 */
void bw_ctl_render_kv(FILE *out, const json_t *obj, int indent);

#endif
