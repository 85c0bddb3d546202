/* cmd/common.c - what every command shares: aligned tables and the control API of a running
 * deployer (option errors are in cmd/options.c). */
#include "cmd/cmd.h"
#include "engine/weaver/config.h"
#include "engine/deploy/control.h"
#include "engine/docker/docker.h"
#include "engine/deploy/state.h"
#include "engine/base/util.h"
#include "engine/docker/json.h"

#include <cjson/cJSON.h>

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

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

#define CONTROL_TIMEOUT_MS 10000

int wd_cmd_control(struct wd_ctx *ctx, const char *cmd, const char *app, const char *method,
                   const char *path, const char *body, struct wd_buf *resp, struct wd_error **err)
{
    return wd_cmd_control_wait(ctx, cmd, app, method, path, body, CONTROL_TIMEOUT_MS, resp, err);
}

int wd_cmd_control_wait(struct wd_ctx *ctx, const char *cmd, const char *app, const char *method,
                        const char *path, const char *body, int timeout_ms, struct wd_buf *resp,
                        struct wd_error **err)
{
    if (!wd_config_valid_app_name(app))
        return wd_err(err, EINVAL, "%s: \"%s\" is not an app name (see 'weaver-docker ps')", cmd,
                      app);
    autodocker struct wd_docker *dk = NULL;
    autoerr struct wd_error *cerr = NULL;
    if (wd_docker_connect(ctx->host, &dk, &cerr) < 0)
        dk = NULL; /* the process runtime needs no engine */
    struct wd_deployment_rec *recs = NULL;
    size_t n = 0;
    long pid = 0;
    char *sock = NULL;
    if (wd_state_list_all(dk, app, &recs, &n, &cerr) == 0)
        for (size_t i = 0; i < n; i++)
            if (recs[i].deployer_alive && strcmp(recs[i].app, app) == 0) { /* the newest */
                pid = recs[i].pid;
                free(sock);
                sock = wd_state_control_path(&recs[i]);
            }
    wd_state_free(recs, n);
    if (pid == 0)
        return wd_err(err, ENOENT, "%s: %s is not running (start it with 'weaver-docker up')", cmd,
                      app);
    if (sock == NULL)
        return wd_err(err, ENOENT, "%s: the deployer of %s (pid %ld) has no control socket", cmd,
                      app, pid);
    int status = 0;
    autoerr struct wd_error *e = NULL;
    if (wd_control_call(sock, method, path, body, body ? strlen(body) : 0, timeout_ms, &status,
                        resp, &e) < 0)
        status = wd_err(err, EIO, "%s: the deployer of %s (pid %ld) does not answer: %s", cmd,
                        app, pid, e->msg);
    free(sock);
    return status;
}

cJSON *wd_cmd_deployer_status(const struct wd_deployment_rec *rec, int timeout_ms,
                              struct wd_error **err)
{
    autofree char *sock = wd_state_control_path(rec);
    if (sock == NULL)
        return NULL;
    struct wd_buf resp = {.max = 8 << 20};
    int status = 0;
    cJSON *j = NULL;
    if (wd_control_call(sock, "GET", "/v1/status", NULL, 0, timeout_ms, &status, &resp, err) == 0 &&
        status == 200)
        j = cJSON_ParseWithLength(resp.data ? (const char *)resp.data : "", resp.len);
    wd_buf_free(&resp);
    return j;
}

int wd_cmd_refused(const char *cmd, int status, const struct wd_buf *resp, const char *dflt,
                   struct wd_error **err)
{
    autojson cJSON *j = NULL;
    autoerr struct wd_error *perr = NULL;
    const char *msg = NULL;
    if (resp->len &&
        wd_json_parse(resp->data, resp->len, "the deployer's answer", &j, &perr) == 0)
        msg = wd_json_str(j, "error");
    return wd_err(err, status == 404 ? ENOENT : status == 400 ? EINVAL : EIO, "%s: %s", cmd,
                  msg ? msg : dflt);
}
