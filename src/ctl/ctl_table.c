/* ctl_table: aligned text tables (a header row, then one row per item). */
#include <stdlib.h>
#include <string.h>

#include "ctl_internal.h"

struct ctl_table {
    size_t columns;
    char **cells; /* rows * columns, row 0 is the header; each cell malloc'd */
    size_t rows, cap;
};

static char *ctl_strdup(const char *s)
{
    size_t n = strlen(s ? s : "") + 1;
    char *d = malloc(n);
    if (d != NULL)
        memcpy(d, s ? s : "", n);
    return d;
}

ctl_table *ctl_table_new(size_t columns, const char *const *headers)
{
    ctl_table *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    t->columns = columns;
    ctl_table_add(t, headers);
    return t;
}

void ctl_table_add(ctl_table *t, const char *const *cells)
{
    if (t == NULL)
        return;
    if (t->rows == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        char **c = realloc(t->cells, cap * t->columns * sizeof *c);
        if (c == NULL)
            return; /* out of memory: the row is left out */
        t->cells = c;
        t->cap = cap;
    }
    for (size_t i = 0; i < t->columns; i++)
        t->cells[t->rows * t->columns + i] = ctl_strdup(cells[i]);
    t->rows++;
}

void ctl_table_print(const ctl_table *t, FILE *out)
{
    if (t == NULL)
        return;
    size_t *w = calloc(t->columns, sizeof *w);
    if (w == NULL)
        return;
    for (size_t r = 0; r < t->rows; r++)
        for (size_t i = 0; i < t->columns; i++) {
            const char *c = t->cells[r * t->columns + i];
            size_t n = c ? strlen(c) : 0;
            if (n > w[i])
                w[i] = n;
        }
    for (size_t r = 0; r < t->rows; r++) {
        for (size_t i = 0; i < t->columns; i++) {
            const char *c = t->cells[r * t->columns + i];
            if (i + 1 < t->columns)
                fprintf(out, "%-*s  ", (int)w[i], c ? c : "");
            else
                fprintf(out, "%s\n", c ? c : "");
        }
    }
    free(w);
}

void ctl_table_free(ctl_table *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->rows * t->columns; i++)
        free(t->cells[i]);
    free(t->cells);
    free(t);
}
