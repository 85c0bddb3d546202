/* cmd/common.c - what every command shares: option errors and aligned tables. */
#include "cmd/cmd.h"
#include "engine/util.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

int wd_cmd_bad_option(const char *cmd, char **argv, const char *optstring,
                      struct wd_error **err)
{
    /* getopt printed nothing (main sets opterr to 0): one line of ours, naming the option */
    const char *arg = optind > 0 ? argv[optind - 1] : "";
    bool is_long = strncmp(arg, "--", 2) == 0;
    char shortopt[3] = {'-', (char)optopt, 0};
    /* a long option getopt knows sets optopt; a short one is known if optstring has it */
    bool missing = is_long ? optopt != 0 : optopt && strchr(optstring, optopt) != NULL;
    const char *what = is_long ? arg : shortopt;
    if (is_long && missing) /* --level= or --level at the end */
        what = arg;
    return wd_err(err, EINVAL, "%s: %s '%s' (see 'weaver-docker %s --help')", cmd,
                  missing ? "missing value for option" : "unknown option", what, cmd);
}

void wd_table_add(struct wd_table *t, const char *const *cells)
{
    t->rows = xrealloc(t->rows, (t->nrows + 1) * sizeof *t->rows);
    char **row = xcalloc(t->ncols, sizeof *row);
    for (size_t c = 0; c < t->ncols; c++)
        row[c] = xstrdup(cells[c] ? cells[c] : "");
    t->rows[t->nrows++] = row;
}

void wd_table_print(struct wd_table *t, FILE *out, const char *indent)
{
    size_t w[16] = {0};
    for (size_t r = 0; r < t->nrows; r++)
        for (size_t c = 0; c < t->ncols && c < WD_ARRAY_LEN(w); c++) {
            size_t l = strlen(t->rows[r][c]);
            if (l > w[c])
                w[c] = l;
        }
    for (size_t r = 0; r < t->nrows; r++) {
        fputs(indent, out);
        for (size_t c = 0; c < t->ncols; c++) {
            if (c + 1 == t->ncols) /* no trailing blanks */
                fprintf(out, "%s\n", t->rows[r][c]);
            else
                fprintf(out, "%-*s  ", (int)w[c], t->rows[r][c]);
        }
    }
}

void wd_table_free(struct wd_table *t)
{
    for (size_t r = 0; r < t->nrows; r++) {
        for (size_t c = 0; c < t->ncols; c++)
            free(t->rows[r][c]);
        free(t->rows[r]);
    }
    free(t->rows);
    t->rows = NULL;
    t->nrows = 0;
}
