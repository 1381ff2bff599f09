/*
 * bulwarkctl's text tables and "key: value" blocks (see ctl_render.h).
 * Strings are built with open_memstream(); widths count UTF-8 code points,
 * which is right for the names a broker holds (no wide or combining
 * characters are expected, and a misaligned column is the worst outcome).
 */
#include "admin/ctl_render.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/*
 * Writes s[0..n) with control characters escaped: C0 and DEL as \xNN, the
 * C1 range (U+0080..U+009F, which some terminals obey) as \u00NN, and a line
 * break as "; " (a trailing one is dropped).
 */
static void put_escaped(FILE *m, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;

	while (n > 0 && p[n - 1] == '\n')
		n--;
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\n')
			fputs("; ", m);
		else if (p[i] < 0x20 || p[i] == 0x7f)
			fprintf(m, "\\x%02x", p[i]);
		else if (p[i] == 0xc2 && i + 1 < n && p[i + 1] >= 0x80 && p[i + 1] <= 0x9f)
			fprintf(m, "\\u%04x", p[++i]);
		else
			fputc(p[i], m);
	}
}

static bool is_scalar(const json_t *v)
{
	return !json_is_object(v) && !json_is_array(v);
}

static void put_scalar(FILE *m, const json_t *v)
{
	if (json_is_string(v))
		put_escaped(m, json_string_value(v), json_string_length(v));
	else if (json_is_integer(v))
		fprintf(m, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
	else if (json_is_real(v))
		fprintf(m, "%g", json_real_value(v));
	else if (json_is_boolean(v))
		fputs(json_is_true(v) ? "yes" : "no", m);
	else
		fputc('-', m);
}

/* True when every element of the array is a scalar (an empty one is). */
static bool scalar_array(const json_t *a)
{
	size_t i;
	json_t *e;

	json_array_foreach(a, i, e) if (!is_scalar(e)) return false;
	return true;
}

static void put_cell(FILE *m, const json_t *v)
{
	size_t i;
	json_t *e;

	if (is_scalar(v)) {
		put_scalar(m, v);
	} else if (json_is_array(v) && scalar_array(v)) {
		if (json_array_size(v) == 0)
			fputc('-', m);
		json_array_foreach(v, i, e)
		{
			fputs(i ? ", " : "", m);
			put_scalar(m, e);
		}
	} else {
		char *s = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);
		if (s)
			put_escaped(m, s, strlen(s));
		free(s);
	}
}

char *bw_ctl_cell(const json_t *v)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);

	if (!m)
		return NULL;
	put_cell(m, v);
	if (fclose(m) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* Display width of UTF-8 text: its code points. */
static size_t width(const char *s)
{
	size_t w = 0;

	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			w++;
	return w;
}

static void put_padded(FILE *out, const char *s, size_t w, bool last)
{
	fputs(s, out);
	if (last)
		return;
	for (size_t n = width(s); n < w + 2; n++)
		fputc(' ', out);
}

static void put_row(FILE *out, char **cells, const size_t *w, size_t ncols, int indent)
{
	fprintf(out, "%*s", indent, "");
	for (size_t c = 0; c < ncols; c++)
		put_padded(out, cells[c] ? cells[c] : "?", w[c], c + 1 == ncols);
	fputc('\n', out);
}

size_t bw_ctl_render_table(FILE *out, const json_t *rows, const struct bw_ctl_col *cols,
                           size_t ncols, int indent)
{
	size_t nrows = json_array_size(rows);
	char **cells = calloc(nrows * ncols + 1, sizeof(*cells));
	size_t *w = calloc(ncols + 1, sizeof(*w));
	char **heads = calloc(ncols + 1, sizeof(*heads));

	if (!cells || !w || !heads) {
		fprintf(out, "%*s(out of memory)\n", indent, "");
		nrows = 0;
		goto free_arrays;
	}
	for (size_t c = 0; c < ncols; c++) {
		heads[c] = (char *)cols[c].header;
		w[c] = width(cols[c].header);
	}
	for (size_t r = 0; r < nrows; r++) {
		const json_t *row = json_array_get(rows, r);
		for (size_t c = 0; c < ncols; c++) {
			char *s = bw_ctl_cell(json_object_get(row, cols[c].key));
			cells[r * ncols + c] = s;
			if (s && width(s) > w[c])
				w[c] = width(s);
		}
	}
	put_row(out, heads, w, ncols, indent);
	for (size_t r = 0; r < nrows; r++)
		put_row(out, cells + r * ncols, w, ncols, indent);
	for (size_t i = 0; i < nrows * ncols; i++)
		free(cells[i]);
free_arrays:
	free(heads);
	free(w);
	free(cells);
	return nrows;
}

/* At most this many columns in a table whose columns come from its rows. */
#define AUTO_COLS_MAX 32

/*
 * Prints rows (an array of objects) with a column for each member any row
 * has, in order of first appearance, headed by the member's name in upper
 * case.
 */
static void render_auto_table(FILE *out, const json_t *rows, int indent)
{
	struct bw_ctl_col cols[AUTO_COLS_MAX];
	size_t ncols = 0, r, c;
	const char *key;
	json_t *row, *v;

	json_array_foreach(rows, r, row)
	{
		json_object_foreach((json_t *)row, key, v)
		{
			for (c = 0; c < ncols && strcmp(cols[c].key, key); c++)
				;
			if (c == ncols && ncols < AUTO_COLS_MAX)
				cols[ncols++] = (struct bw_ctl_col){ .key = key };
		}
	}
	for (c = 0; c < ncols; c++) {
		char *h = strdup(cols[c].key);
		for (char *p = h; p && *p; p++)
			*p = (char)toupper((unsigned char)*p);
		cols[c].header = h ? h : "?";
	}
	bw_ctl_render_table(out, rows, cols, ncols, indent);
	for (c = 0; c < ncols; c++)
		if (strcmp(cols[c].header, "?"))
			free((char *)cols[c].header);
}

static bool is_table(const json_t *v)
{
	return json_is_array(v) && json_array_size(v) > 0 && !scalar_array(v);
}

/* A member printed on its key's own line. */
static bool is_inline(const json_t *v)
{
	return !is_table(v) && !(json_is_object(v) && json_object_size(v) > 0);
}

static void put_key(FILE *out, const char *key, int indent)
{
	fprintf(out, "%*s", indent, "");
	put_escaped(out, key, strlen(key));
	fputc(':', out);
}

void bw_ctl_render_kv(FILE *out, const json_t *obj, int indent)
{
	size_t w = 0;
	const char *key;
	json_t *v;

	if (!json_is_object(obj)) {
		char *s = bw_ctl_cell(obj);
		fprintf(out, "%*s%s\n", indent, "", s ? s : "?");
		free(s);
		return;
	}
	json_object_foreach((json_t *)obj, key, v) if (is_inline(v) && width(key) > w) w =
	        width(key);
	json_object_foreach((json_t *)obj, key, v)
	{
		put_key(out, key, indent);
		if (is_table(v)) {
			fputc('\n', out);
			render_auto_table(out, v, indent + 2);
		} else if (!is_inline(v)) {
			fputc('\n', out);
			bw_ctl_render_kv(out, v, indent + 2);
		} else {
			char *s = bw_ctl_cell(json_is_object(v) ? NULL : v);
			for (size_t n = width(key); n < w + 1; n++)
				fputc(' ', out);
			fprintf(out, "%s\n", s ? s : "?");
			free(s);
		}
	}
}

/* Prints the `done` sentence: {key} becomes args[key] (escaped). */
static void render_done(FILE *out, const char *tmpl, const json_t *args)
{
	const char *p = tmpl;

	while (*p) {
		const char *open = strchr(p, '{'), *close = open ? strchr(open, '}') : NULL;
		if (!close) {
			fputs(p, out);
			break;
		}
		fwrite(p, 1, (size_t)(open - p), out);
		char key[64];
		size_t n = (size_t)(close - open - 1);
		snprintf(key, sizeof(key), "%.*s", (int)(n < sizeof(key) ? n : sizeof(key) - 1),
		         open + 1);
		char *s = bw_ctl_cell(json_object_get(args, key));
		fputs(s ? s : "?", out);
		free(s);
		p = close + 1;
	}
	fputc('\n', out);
}

void bw_ctl_render(FILE *out, const struct bw_ctl_view *v, const json_t *args, const json_t *result)
{
	const json_t *rows = v && v->list ? json_object_get(result, v->list) : NULL;
	const json_t *member = v && v->member ? json_object_get(result, v->member) : NULL;

	if (v && v->render)
		v->render(out, args, result);
	else if (json_is_array(rows) && json_array_size(rows) == 0)
		fprintf(out, "%s\n", v->empty ? v->empty : "none");
	else if (json_is_array(rows))
		bw_ctl_render_table(out, rows, v->cols, v->ncols, 0);
	else if (v && v->done)
		render_done(out, v->done, args);
	else if (member)
		bw_ctl_render_kv(out, member, 0);
	else if (result && !json_is_null(result))
		bw_ctl_render_kv(out, result, 0);
}
