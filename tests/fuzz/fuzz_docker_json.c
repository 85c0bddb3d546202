/* Fuzz target: every JSON reply decoder of the engine client on one document, plus the error
 * text extraction and classification of raw bodies. */
#include "engine/docker/docker.h"
#include "engine/docker/docker_internal.h"
#include "engine/base/error.h"
#include "engine/base/util.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cjson/cJSON.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct wd_error *err = NULL;
    char *m = wd_docker_error_message(data, size);
    (void)wd_docker_status_errno(500, m);
    free(m);
    cJSON *doc = cJSON_ParseWithLength((const char *)data, size);
    if (doc == NULL)
        return 0;

    struct wd_engine_version v;
    if (wd_docker_parse_version(doc, &v, &err) == 0)
        wd_engine_version_free(&v);
    wd_err_free(&err);

    struct wd_container_info c;
    if (wd_docker_parse_container(doc, NULL, &c, &err) == 0) {
        uint16_t hp;
        (void)wd_container_info_host_port(&c, 7000, "tcp", &hp);
        wd_container_info_free(&c);
    }
    wd_err_free(&err);
    if (wd_docker_parse_container(doc, "net", &c, &err) == 0)
        wd_container_info_free(&c);
    wd_err_free(&err);

    struct wd_container_summary *s = NULL;
    size_t n = 0;
    if (wd_docker_parse_container_list(doc, &s, &n, &err) == 0)
        wd_container_summaries_free(s, n);
    wd_err_free(&err);

    char **ids = NULL;
    if (wd_docker_parse_id_list(doc, &ids, &n, &err) == 0)
        wd_strv_free(ids, n);
    wd_err_free(&err);

    struct wd_network_info net;
    if (wd_docker_parse_network(doc, &net, &err) == 0)
        wd_network_info_free(&net);
    wd_err_free(&err);

    struct wd_image_info im;
    if (wd_docker_parse_image(doc, &im, &err) == 0)
        wd_image_info_free(&im);
    wd_err_free(&err);

    int64_t code;
    char *msg = NULL;
    if (wd_docker_parse_wait(doc, &code, &msg, &err) == 0)
        free(msg);
    wd_err_free(&err);

    struct wd_docker_event ev;
    struct wd_label *attrs = NULL;
    if (wd_docker_parse_event(doc, &ev, &attrs, &err) == 0) {
        if (ev.action_text == NULL || ev.id == NULL || ev.name == NULL || ev.type == NULL)
            __builtin_trap();
        free(attrs);
    }
    wd_err_free(&err);

    struct wd_progress p;
    wd_docker_parse_progress(doc, &p);
    cJSON_Delete(doc);
    return 0;
}
