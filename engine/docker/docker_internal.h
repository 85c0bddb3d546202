/* engine/docker/docker_internal.h - the pure parts of the engine client (no sockets): request
 * builders, reply parsers, stream demultiplexer, error mapping. Only engine/docker*.c,
 * engine/docker/image.c and their unit tests / fuzz targets include this. */
#ifndef WD_ENGINE_DOCKER_INTERNAL_H
#define WD_ENGINE_DOCKER_INTERNAL_H

#include "engine/docker/docker.h"
#include "engine/base/error.h"
#include "engine/docker/http.h"
#include "engine/base/util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cJSON;

/* "unix:///path" or "/path" -> "/path" (caller frees). -EINVAL for tcp://, ssh://, npipe://... */
int wd_docker_parse_host(const char *uri, const char *source, char **path, struct wd_error **err);
/* "1.41" -> 1, 41. Returns 0 or -EINVAL. */
int wd_docker_parse_api_version(const char *s, unsigned *major, unsigned *minor);
/* Pick the version to speak: min(server max, WD_DOCKER_API_TESTED), raised to the server's
 * minimum when that is higher (*warn set). -ENOTSUP when the server max is below
 * WD_DOCKER_API_MIN. @out gets "1.41". */
int wd_docker_negotiate(const char *server_max, const char *server_min, char out[16], bool *warn,
                        struct wd_error **err);
/* Parse WEAVER_DOCKER_LABELS ("k=v,k2=v2"; empty = none). Caller frees (wd_labels_free). */
int wd_docker_labels_parse(const char *env, struct wd_label **out, size_t *n,
                           struct wd_error **err);
/* The engine's error text from an error body: JSON "message" (Docker, Podman), else the raw
 * body; one line, at most 1024 bytes. Caller frees. Never NULL. */
char *wd_docker_error_message(const void *body, size_t len);

/* Request bodies. Caller owns the returned tree (cJSON_Delete). */
struct cJSON *wd_docker_volume_json(const char *name, const struct wd_kv *labels, size_t nlabels,
                                    const struct wd_label *extra, size_t nextra);
struct cJSON *wd_docker_container_json(const struct wd_container_spec *s,
                                       const struct wd_label *extra, size_t nextra);
struct cJSON *wd_docker_network_json(const struct wd_network_spec *s, const struct wd_label *extra,
                                     size_t nextra);
/* filters={"label":[...],"type":[...],"event":[...]} as JSON text (NULL arrays omitted).
 * Caller frees. */
char *wd_docker_filters_json(const char *const *labels, size_t nlabels, const char *type,
                             const char *const *events, size_t nevents);

struct wd_engine_version {
    char *version;     /* "20.10.24+dfsg1" */
    char *api_version; /* "1.41" */
    char *min_api_version;
    char *os, *arch;
    bool podman;
};
void wd_engine_version_free(struct wd_engine_version *v);

/* Reply decoders: @doc is borrowed; outputs are owned by the caller. -EPROTO on a malformed
 * reply. */
int wd_docker_parse_version(const struct cJSON *doc, struct wd_engine_version *out,
                            struct wd_error **err);
int wd_docker_parse_container(const struct cJSON *doc, const char *network,
                              struct wd_container_info *out, struct wd_error **err);
int wd_docker_parse_container_list(const struct cJSON *doc, struct wd_container_summary **out,
                                   size_t *n, struct wd_error **err);
int wd_docker_parse_network(const struct cJSON *doc, struct wd_network_info *out,
                            struct wd_error **err);
int wd_docker_parse_image(const struct cJSON *doc, struct wd_image_info *out,
                          struct wd_error **err);
/* IDs of a list reply ([{"Id": ...}], networks and images alike). */
int wd_docker_parse_id_list(const struct cJSON *doc, char ***ids, size_t *n, struct wd_error **err);
void wd_strv_free(char **v, size_t n);
/* wait reply {"StatusCode":N,"Error":{"Message":...}|null}. *errmsg NULL when none. */
int wd_docker_parse_wait(const struct cJSON *doc, int64_t *code, char **errmsg,
                         struct wd_error **err);
/* One events line. Strings in *out are borrowed from @doc; out->attrs points into *attrs,
 * which the caller frees with free() (the strings inside are borrowed too). */
int wd_docker_parse_event(const struct cJSON *doc, struct wd_docker_event *out,
                          struct wd_label **attrs, struct wd_error **err);

/* One line of a /build or /images/load progress stream. Strings are borrowed from @doc. */
struct wd_progress {
    const char *error;  /* errorDetail.message or error */
    const char *aux_id; /* aux.ID */
    const char *stream; /* stream text */
};
void wd_docker_parse_progress(const struct cJSON *doc, struct wd_progress *out);

/* ---- stream framing (docker-engine.md §5.6) ---- */
/* Decode an 8-byte frame header. Returns 0, -EPROTO (bad header) or -EMSGSIZE (too big). */
int wd_docker_frame_header(const uint8_t h[8], int *stream, size_t *len, struct wd_error **err);

struct wd_demux {
    struct wd_buf pending;
    bool tty; /* raw bytes, no headers */
};
/* Feed bytes; complete frames go to @cb. Returns 0, the callback's negative value, or
 * -EPROTO/-EMSGSIZE on a bad frame, -EIO on a system-error frame (type 3, message = payload). */
int wd_demux_feed(struct wd_demux *m, const uint8_t *p, size_t n, wd_docker_output_fn cb, void *arg,
                  struct wd_error **err);
/* End of stream: -EPROTO if a partial frame is left. */
int wd_demux_end(struct wd_demux *m, struct wd_error **err);
void wd_demux_free(struct wd_demux *m);

/* Newline-delimited stream splitter (events, progress). Lines are passed without the "\n"
 * (and "\r"); empty lines are skipped. Lines over WD_MAX_JSON_LINE fail with -EMSGSIZE. */
struct wd_lines {
    struct wd_buf pending;
};
typedef int (*wd_line_fn)(void *arg, const char *line, size_t len);
int wd_lines_feed(struct wd_lines *l, const uint8_t *p, size_t n, wd_line_fn cb, void *arg,
                  struct wd_error **err);
int wd_lines_end(struct wd_lines *l, wd_line_fn cb, void *arg, struct wd_error **err);
void wd_lines_free(struct wd_lines *l);

/* ---- calls (engine/docker/docker.c), for the stream followers in engine/docker/docker_stream.c ---- */

struct wd_docker_call {
    const char *method;
    const char *path; /* after /vX.Y */
    const char *content_type;
    const void *body;
    size_t body_len;
    long timeout_ms; /* 0 = none (streams) */
    wd_http_sink_fn sink;
    void *sink_arg;
    struct wd_error **sink_err;
    wd_http_headers_fn on_headers;
    void *headers_arg;
    const atomic_int *cancel;
};
/* One request; an engine that is gone is -ECONNREFUSED, a status >= 300 maps to an errno with
 * the engine's message. @err may be NULL. */
int wd_docker_call(struct wd_docker *d, const struct wd_docker_call *c, struct wd_http_response *rs,
                   const char *what, struct wd_error **err);
/* -EINVAL with "KIND: REF is not a valid name or id" unless @ref is one. */
int wd_docker_check_ref(const char *kind, const char *ref, struct wd_error **err);

#endif
