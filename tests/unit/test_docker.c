/* Unit tests for the pure parts of the engine client: reply decoders (on replies captured from
 * Docker 20.10.24 and Podman 4.3.1 in tests/fixtures/engine/), request builders, the stream
 * demultiplexer, the line splitter, error mapping, version negotiation and label parsing. */
#include "engine/docker/docker.h"
#include "engine/docker/docker_internal.h"
#include "engine/base/error.h"
#include "engine/docker/json.h"
#include "engine/base/util.h"
#include "tests/unit/wd_test.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#define FIX "tests/fixtures/engine/"

static cJSON *load_json(const char *name)
{
    char *buf = NULL;
    size_t len = 0;
    char path[256];
    snprintf(path, sizeof path, FIX "%s", name);
    assert_int_equal(wd_read_file(path, 1 << 20, &buf, &len), 0);
    cJSON *doc = cJSON_ParseWithLength(buf, len);
    free(buf);
    assert_non_null(doc);
    return doc;
}

static char *load_raw(const char *name, size_t *len)
{
    char *buf = NULL;
    char path[256];
    snprintf(path, sizeof path, FIX "%s", name);
    assert_int_equal(wd_read_file(path, 1 << 20, &buf, len), 0);
    return buf;
}

static bool exists(const char *name)
{
    char path[256];
    snprintf(path, sizeof path, FIX "%s", name);
    FILE *f = fopen(path, "r");
    if (f)
        fclose(f);
    return f != NULL;
}

/* ---- errors ---- */

static void test_status_errno(void **state)
{
    (void)state;
    assert_int_equal(wd_docker_status_errno(404, "No such container: x"), ENOENT);
    assert_int_equal(wd_docker_status_errno(409, "Conflict."), EEXIST);
    assert_int_equal(wd_docker_status_errno(403, "operation is not permitted"), EACCES);
    assert_int_equal(wd_docker_status_errno(400, "bad"), EINVAL);
    assert_int_equal(wd_docker_status_errno(304, NULL), 0);
    assert_int_equal(wd_docker_status_errno(204, NULL), 0);
    /* Podman answers 500 to conflicts; Docker to start failures */
    assert_int_equal(wd_docker_status_errno(500, "error creating container storage: the container "
                                                 "name \"x\" is already in use by y"),
                     EEXIST);
    assert_int_equal(wd_docker_status_errno(500, "network already exists"), EEXIST);
    assert_int_equal(wd_docker_status_errno(500, "driver failed programming external "
                                                 "connectivity: Bind for 127.0.0.1:80 failed: port "
                                                 "is already allocated"),
                     EADDRINUSE);
    assert_int_equal(wd_docker_status_errno(500, "rootlessport listen tcp 127.0.0.1:1: bind: "
                                                 "address already in use"),
                     EADDRINUSE);
    assert_int_equal(wd_docker_status_errno(500, "no such container"), ENOENT);
    assert_int_equal(wd_docker_status_errno(500, "network is being used"), EBUSY);
    assert_int_equal(wd_docker_status_errno(500, "something else"), EIO);
    assert_int_equal(wd_docker_status_errno(500, NULL), EIO);
}

static void test_error_message(void **state)
{
    (void)state;
    size_t len;
    char *raw = load_raw("docker-error-name-conflict.json", &len);
    char *m = wd_docker_error_message(raw, len);
    assert_true(
        strncmp(m, "Conflict. The container name \"/capture-srv\" is already in use",
                strlen("Conflict. The container name \"/capture-srv\" is already in use")) == 0);
    free(m);
    free(raw);
    raw = load_raw("docker-error-too-old.txt", &len); /* text/plain, not JSON */
    m = wd_docker_error_message(raw, len);
    assert_true(strncmp(m, "client version 1.11 is too old", 30) == 0);
    free(m);
    free(raw);
    m = wd_docker_error_message("line1\nline2\n", 12);
    assert_string_equal(m, "line1 line2");
    free(m);
    m = wd_docker_error_message(NULL, 0);
    assert_string_equal(m, "");
    free(m);
    if (exists("podman-error-name-conflict.json")) {
        raw = load_raw("podman-error-name-conflict.json", &len);
        m = wd_docker_error_message(raw, len);
        assert_int_equal(wd_docker_status_errno(500, m), EEXIST);
        free(m);
        free(raw);
    }
}

/* ---- connection helpers ---- */

static void test_parse_host(void **state)
{
    (void)state;
    struct wd_error *err = NULL;
    char *p = NULL;
    assert_int_equal(wd_docker_parse_host("unix:///var/run/docker.sock", "DOCKER_HOST", &p, &err),
                     0);
    assert_string_equal(p, "/var/run/docker.sock");
    free(p);
    assert_int_equal(wd_docker_parse_host("/run/podman/podman.sock", "x", &p, &err), 0);
    assert_string_equal(p, "/run/podman/podman.sock");
    free(p);
    assert_int_equal(wd_docker_parse_host("tcp://127.0.0.1:2375", "DOCKER_HOST", &p, &err),
                     -EINVAL);
    assert_non_null(strstr(err->msg, "only unix://"));
    assert_non_null(strstr(err->msg, "tcp://"));
    wd_err_free(&err);
    assert_int_equal(wd_docker_parse_host("ssh://me@host", "CONTAINER_HOST", &p, &err), -EINVAL);
    wd_err_free(&err);
    assert_int_equal(wd_docker_parse_host("unix://relative.sock", "x", &p, &err), -EINVAL);
    wd_err_free(&err);
}

static void test_negotiate(void **state)
{
    (void)state;
    struct wd_error *err = NULL;
    char v[16];
    bool warn;
    assert_int_equal(wd_docker_negotiate("1.41", "1.12", v, &warn, &err), 0);
    assert_string_equal(v, "1.41");
    assert_false(warn);
    assert_int_equal(wd_docker_negotiate("1.53", "1.24", v, &warn, &err), 0);
    assert_string_equal(v, WD_DOCKER_API_TESTED); /* never above what we tested */
    assert_int_equal(wd_docker_negotiate("1.52", "1.44", v, &warn, &err), 0);
    assert_string_equal(v, "1.44"); /* Docker 29.0: raise to its minimum */
    assert_true(warn);
    assert_int_equal(wd_docker_negotiate("1.40", "1.24", v, &warn, &err), -ENOTSUP);
    assert_non_null(strstr(err->msg, "too old"));
    wd_err_free(&err);
    assert_int_equal(wd_docker_negotiate("x", NULL, v, &warn, &err), -EPROTO);
    wd_err_free(&err);
    unsigned a, b;
    assert_int_equal(wd_docker_parse_api_version("1.41", &a, &b), 0);
    assert_true(a == 1 && b == 41);
    assert_int_equal(wd_docker_parse_api_version("1.41.1x", &a, &b), -EINVAL);
    assert_int_equal(wd_docker_parse_api_version(".1", &a, &b), -EINVAL);
}

static void test_labels_env(void **state)
{
    (void)state;
    struct wd_error *err = NULL;
    struct wd_label *l = NULL;
    size_t n = 0;
    assert_int_equal(wd_docker_labels_parse(" a.b=1 , c=x=y,,d= ", &l, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_string_equal(l[0].key, "a.b");
    assert_string_equal(l[0].value, "1");
    assert_string_equal(l[1].key, "c");
    assert_string_equal(l[1].value, "x=y");
    assert_string_equal(l[2].key, "d");
    assert_string_equal(l[2].value, "");
    wd_labels_free(l, n);
    assert_int_equal(wd_docker_labels_parse(NULL, &l, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_int_equal(wd_docker_labels_parse("ok=1,novalue", &l, &n, &err), -EINVAL);
    assert_non_null(strstr(err->msg, "WEAVER_DOCKER_LABELS"));
    wd_err_free(&err);
    assert_int_equal(wd_docker_labels_parse("bad key=1", &l, &n, &err), -EINVAL);
    wd_err_free(&err);
}

/* ---- builders ---- */

static void test_container_json(void **state)
{
    (void)state;
    const char *cmd[] = {"serve", "7000"}, *env[] = {"A=1"}, *al[] = {"alpha"};
    const char *hc[] = {"/app/x", "health"};
    struct wd_kv labels[] = {{WD_LABEL_APP, "demo"}, {"org.weaver-docker.test", "spec"}};
    char k0[] = WD_LABEL_OWNER, v0[] = "weaver-docker/0.1.0", k1[] = "org.weaver-docker.test",
         v1[] = "env";
    struct wd_label extra[] = {{k0, v0}, {k1, v1}};
    struct wd_port_binding ports[] = {{7000, NULL, "127.0.0.1", 0}, {7001, "udp", NULL, 9001}};
    struct wd_tmpfs tmp[] = {{"/tmp", NULL}};
    struct wd_healthcheck h = {hc, 2, 1000000000, 3000000000, 0, 3};
    struct wd_container_spec s = {.name = "demo-1",
                                  .image = "weaver-docker/demo:0123456789ab",
                                  .cmd = cmd,
                                  .ncmd = 2,
                                  .env = env,
                                  .nenv = 1,
                                  .labels = labels,
                                  .nlabels = 2,
                                  .user = "65532:65532",
                                  .hostname = "demo-1",
                                  .read_only = true,
                                  .cap_drop_all = true,
                                  .no_new_privileges = true,
                                  .tmpfs = tmp,
                                  .ntmpfs = 1,
                                  .network = "net",
                                  .aliases = al,
                                  .naliases = 1,
                                  .ports = ports,
                                  .nports = 2,
                                  .memory_bytes = 5000000000,
                                  .nano_cpus = 500000000,
                                  .health = &h,
                                  .stop_timeout_s = 5};
    cJSON *c = wd_docker_container_json(&s, extra, 2);
    char *text = wd_json_print(c);
    /* large integers are printed exactly (style.md §3) */
    assert_non_null(strstr(text, "\"Memory\":5000000000"));
    assert_non_null(strstr(text, "\"Timeout\":3000000000"));
    assert_string_equal(wd_json_str(c, "Image"), "weaver-docker/demo:0123456789ab");
    assert_string_equal(wd_json_str(c, "User"), "65532:65532");
    const cJSON *l = wd_json_obj(c, "Labels");
    assert_string_equal(wd_json_str(l, WD_LABEL_APP), "demo");
    assert_string_equal(wd_json_str(l, WD_LABEL_OWNER), "weaver-docker/0.1.0");
    assert_string_equal(wd_json_str(l, "org.weaver-docker.test"), "env"); /* extras win, once */
    assert_int_equal(cJSON_GetArraySize(l), 3);
    const cJSON *hcj = wd_json_obj(c, "Healthcheck");
    assert_string_equal(cJSON_GetArrayItem(wd_json_arr(hcj, "Test"), 0)->valuestring, "CMD");
    assert_int_equal(cJSON_GetArraySize(wd_json_arr(hcj, "Test")), 3);
    const cJSON *hcfg = wd_json_obj(c, "HostConfig");
    assert_true(wd_json_bool(hcfg, "ReadonlyRootfs", false));
    assert_string_equal(cJSON_GetArrayItem(wd_json_arr(hcfg, "CapDrop"), 0)->valuestring, "ALL");
    assert_string_equal(cJSON_GetArrayItem(wd_json_arr(hcfg, "SecurityOpt"), 0)->valuestring,
                        "no-new-privileges");
    assert_non_null(strstr(wd_json_str(wd_json_obj(hcfg, "Tmpfs"), "/tmp"), "mode=1777"));
    /* ulimits are always explicit (Podman in a sandbox) */
    const cJSON *ul = wd_json_arr(hcfg, "Ulimits");
    assert_int_equal(cJSON_GetArraySize(ul), 2);
    assert_string_equal(wd_json_str(cJSON_GetArrayItem(ul, 0), "Name"), "nofile");
    const cJSON *pb = wd_json_obj(hcfg, "PortBindings");
    const cJSON *b0 = cJSON_GetArrayItem(wd_json_arr(pb, "7000/tcp"), 0);
    assert_string_equal(wd_json_str(b0, "HostPort"), "");
    assert_string_equal(wd_json_str(b0, "HostIp"), "127.0.0.1");
    const cJSON *b1 = cJSON_GetArrayItem(wd_json_arr(pb, "7001/udp"), 0);
    assert_string_equal(wd_json_str(b1, "HostPort"), "9001");
    assert_non_null(wd_json_obj(wd_json_obj(c, "ExposedPorts"), "7001/udp"));
    assert_string_equal(wd_json_str(hcfg, "NetworkMode"), "net");
    const cJSON *ep =
        wd_json_obj(wd_json_obj(wd_json_obj(c, "NetworkingConfig"), "EndpointsConfig"), "net");
    assert_string_equal(cJSON_GetArrayItem(wd_json_arr(ep, "Aliases"), 0)->valuestring, "alpha");
    assert_non_null(strstr(text, "\"StopTimeout\":5,"));
    free(text);
    cJSON_Delete(c);
}

static void test_network_and_filters_json(void **state)
{
    (void)state;
    struct wd_kv labels[] = {{WD_LABEL_APP, "demo"}};
    struct wd_network_spec s = {.name = "demo-net", .labels = labels, .nlabels = 1};
    cJSON *n = wd_docker_network_json(&s, NULL, 0);
    assert_true(wd_json_bool(n, "CheckDuplicate", false));
    assert_string_equal(wd_json_str(n, "Driver"), "bridge");
    assert_string_equal(wd_json_str(wd_json_obj(n, "Labels"), WD_LABEL_APP), "demo");
    cJSON_Delete(n);
    const char *l[] = {"a=b", "c"}, *ev[] = {"die"};
    char *f = wd_docker_filters_json(l, 2, "container", ev, 1);
    assert_string_equal(f,
                        "{\"label\":[\"a=b\",\"c\"],\"type\":[\"container\"],\"event\":[\"die\"]}");
    free(f);
    f = wd_docker_filters_json(NULL, 0, NULL, NULL, 0);
    assert_string_equal(f, "{}");
    free(f);
}

/* ---- decoders on captured replies ---- */

static void test_parse_version(void **state)
{
    (void)state;
    cJSON *doc = load_json("docker-version.json");
    struct wd_engine_version v;
    struct wd_error *err = NULL;
    assert_int_equal(wd_docker_parse_version(doc, &v, &err), 0);
    assert_string_equal(v.api_version, "1.41");
    assert_string_equal(v.min_api_version, "1.12");
    assert_false(v.podman);
    wd_engine_version_free(&v);
    cJSON_Delete(doc);
    if (exists("podman-version.json")) {
        doc = load_json("podman-version.json");
        assert_int_equal(wd_docker_parse_version(doc, &v, &err), 0);
        assert_true(v.podman);
        wd_engine_version_free(&v);
        cJSON_Delete(doc);
    }
    doc = cJSON_Parse("[1]");
    assert_int_equal(wd_docker_parse_version(doc, &v, &err), -EPROTO);
    wd_err_free(&err);
    cJSON_Delete(doc);
}

static void check_running(const char *file, bool podman)
{
    cJSON *doc = load_json(file);
    struct wd_container_info c;
    struct wd_error *err = NULL;
    assert_int_equal(wd_docker_parse_container(doc, "capture-net", &c, &err), 0);
    assert_string_equal(c.name, "capture-srv");
    assert_string_equal(c.status, "running");
    assert_true(c.running);
    assert_non_null(c.ip);
    assert_false(c.tty);
    if (!podman)
        assert_string_equal(c.health, "healthy");
    uint16_t hp = 0;
    assert_int_equal(wd_container_info_host_port(&c, 7000, "tcp", &hp), 0);
    assert_true(hp > 0);
    assert_int_equal(wd_container_info_host_port(&c, 7001, "tcp", &hp), -ENOENT);
    bool owner = false;
    for (size_t i = 0; i < c.nlabels; i++)
        owner = owner || strcmp(c.labels[i].key, WD_LABEL_OWNER) == 0;
    assert_true(owner);
    wd_container_info_free(&c);
    /* unknown network: no address */
    assert_int_equal(wd_docker_parse_container(doc, "other", &c, &err), 0);
    assert_null(c.ip);
    wd_container_info_free(&c);
    cJSON_Delete(doc);
}

static void test_parse_container(void **state)
{
    (void)state;
    check_running("docker-container-running.json", false);
    if (exists("podman-container-running.json"))
        check_running("podman-container-running.json", true);
    const char *ex[] = {"docker-container-exited.json", "podman-container-exited.json"};
    for (size_t i = 0; i < 2; i++) {
        if (!exists(ex[i]))
            continue;
        cJSON *doc = load_json(ex[i]);
        struct wd_container_info c;
        struct wd_error *err = NULL;
        assert_int_equal(wd_docker_parse_container(doc, NULL, &c, &err), 0);
        assert_string_equal(c.status, "exited");
        assert_false(c.running);
        assert_int_equal(c.exit_code, 3);
        assert_null(c.ip);
        wd_container_info_free(&c);
        cJSON_Delete(doc);
    }
    struct wd_container_info c;
    struct wd_error *err = NULL;
    cJSON *bad = cJSON_Parse("{\"Id\":\"x\"}");
    assert_int_equal(wd_docker_parse_container(bad, NULL, &c, &err), -EPROTO);
    wd_err_free(&err);
    cJSON_Delete(bad);
}

static void test_parse_lists(void **state)
{
    (void)state;
    const char *files[] = {"docker-container-list.json", "podman-container-list.json"};
    for (size_t f = 0; f < 2; f++) {
        if (!exists(files[f]))
            continue;
        cJSON *doc = load_json(files[f]);
        struct wd_container_summary *s = NULL;
        size_t n = 0;
        struct wd_error *err = NULL;
        assert_int_equal(wd_docker_parse_container_list(doc, &s, &n, &err), 0);
        assert_int_equal(n, 2);
        for (size_t i = 0; i < n; i++) {
            assert_true(strncmp(s[i].name, "capture-", 8) == 0);
            assert_true(s[i].nlabels >= 3);
        }
        wd_container_summaries_free(s, n);
        char **ids = NULL;
        assert_int_equal(wd_docker_parse_id_list(doc, &ids, &n, &err), 0);
        assert_int_equal(n, 2);
        assert_int_equal(strlen(ids[0]), 64);
        wd_strv_free(ids, n);
        cJSON_Delete(doc);
    }
}

static void test_parse_network_image_wait(void **state)
{
    (void)state;
    struct wd_error *err = NULL;
    const char *pre[] = {"docker", "podman"};
    for (size_t i = 0; i < 2; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s-network-inspect.json", pre[i]);
        if (!exists(name))
            continue;
        cJSON *doc = load_json(name);
        struct wd_network_info n;
        assert_int_equal(wd_docker_parse_network(doc, &n, &err), 0);
        assert_string_equal(n.name, "capture-net");
        assert_string_equal(n.driver, "bridge");
        assert_non_null(n.subnet);
        assert_non_null(n.gateway);
        assert_true(n.nlabels >= 2);
        wd_network_info_free(&n);
        cJSON_Delete(doc);

        snprintf(name, sizeof name, "%s-image-inspect.json", pre[i]);
        doc = load_json(name);
        struct wd_image_info im;
        assert_int_equal(wd_docker_parse_image(doc, &im, &err), 0);
        assert_true(strncmp(im.id, "sha256:", 7) == 0 || strlen(im.id) == 64);
        assert_true(im.size_bytes > 0);
        bool app = false;
        for (size_t j = 0; j < im.nlabels; j++)
            app = app || strcmp(im.labels[j].key, WD_LABEL_APP) == 0;
        assert_true(app);
        wd_image_info_free(&im);
        cJSON_Delete(doc);

        snprintf(name, sizeof name, "%s-wait.json", pre[i]);
        doc = load_json(name);
        int64_t code;
        char *m = NULL;
        assert_int_equal(wd_docker_parse_wait(doc, &code, &m, &err), 0);
        assert_int_equal(code, 3);
        assert_null(m);
        cJSON_Delete(doc);
    }
    cJSON *doc = cJSON_Parse("{\"StatusCode\":-1,\"Error\":{\"Message\":\"boom\"}}");
    int64_t code;
    char *m = NULL;
    assert_int_equal(wd_docker_parse_wait(doc, &code, &m, &err), 0);
    assert_int_equal(code, -1);
    assert_string_equal(m, "boom");
    free(m);
    cJSON_Delete(doc);
    doc = cJSON_Parse("{\"StatusCode\":1.5}");
    assert_int_equal(wd_docker_parse_wait(doc, &code, &m, &err), -ERANGE);
    wd_err_free(&err);
    cJSON_Delete(doc);
}

struct evcount {
    int start, die, health, other;
    int64_t die_code;
    char health_status[32];
};

static int count_event(void *arg, const char *line, size_t len)
{
    struct evcount *c = arg;
    cJSON *doc = cJSON_ParseWithLength(line, len);
    assert_non_null(doc);
    struct wd_docker_event ev;
    struct wd_label *attrs = NULL;
    struct wd_error *err = NULL;
    assert_int_equal(wd_docker_parse_event(doc, &ev, &attrs, &err), 0);
    switch (ev.action) {
    case WD_EV_START:
        c->start++;
        break;
    case WD_EV_DIE:
        c->die++;
        if (strcmp(ev.name, "capture-srv") == 0)
            c->die_code = ev.exit_code;
        break;
    case WD_EV_HEALTH:
        c->health++;
        snprintf(c->health_status, sizeof c->health_status, "%s", ev.health ? ev.health : "");
        break;
    default:
        c->other++;
    }
    assert_true(ev.time_ns > 1000000000000000000LL);
    assert_true(ev.nattrs >= 3);
    free(attrs);
    cJSON_Delete(doc);
    return 0;
}

static void test_events_stream(void **state)
{
    (void)state;
    const char *files[] = {"docker-events.jsonl", "podman-events.jsonl"};
    for (size_t f = 0; f < 2; f++) {
        if (!exists(files[f]))
            continue;
        size_t len;
        char *raw = load_raw(files[f], &len);
        /* feed in awkward pieces: objects split across reads */
        struct wd_lines l = {0};
        struct evcount c = {0};
        struct wd_error *err = NULL;
        for (size_t off = 0; off < len; off += 7) {
            size_t n = len - off < 7 ? len - off : 7;
            assert_int_equal(
                wd_lines_feed(&l, (const uint8_t *)raw + off, n, count_event, &c, &err), 0);
        }
        assert_int_equal(wd_lines_end(&l, count_event, &c, &err), 0);
        wd_lines_free(&l);
        assert_int_equal(c.start, 2);
        assert_int_equal(c.die, 2);
        assert_int_equal(c.die_code, 3);
        if (f == 0) {
            assert_int_equal(c.health, 1);
            assert_string_equal(c.health_status, "healthy");
        }
        free(raw);
    }
}

static void test_progress(void **state)
{
    (void)state;
    size_t len;
    char *raw = load_raw("docker-load-error.jsonl", &len);
    cJSON *doc = cJSON_ParseWithLength(raw, len);
    struct wd_progress p;
    wd_docker_parse_progress(doc, &p);
    assert_non_null(p.error);
    assert_non_null(strstr(p.error, "unexpected EOF"));
    cJSON_Delete(doc);
    free(raw);
    doc = cJSON_Parse("{\"aux\":{\"ID\":\"sha256:abc\"}}");
    wd_docker_parse_progress(doc, &p);
    assert_string_equal(p.aux_id, "sha256:abc");
    assert_null(p.error);
    cJSON_Delete(doc);
}

/* ---- stream demultiplexer ---- */

struct out {
    struct wd_buf s[3];
    int calls;
};

static int collect(void *arg, int stream, const uint8_t *data, size_t len)
{
    struct out *o = arg;
    assert_true(stream == 1 || stream == 2);
    o->calls++;
    return wd_buf_append(&o->s[stream], data, len);
}

static void out_free(struct out *o)
{
    for (int i = 0; i < 3; i++)
        wd_buf_free(&o->s[i]);
}

static void demux_file(const char *file, bool tty, size_t step, struct out *o)
{
    size_t len;
    char *raw = load_raw(file, &len);
    struct wd_demux m = {.tty = tty};
    struct wd_error *err = NULL;
    for (size_t off = 0; off < len; off += step) {
        size_t n = len - off < step ? len - off : step;
        assert_int_equal(wd_demux_feed(&m, (const uint8_t *)raw + off, n, collect, o, &err), 0);
    }
    assert_int_equal(wd_demux_end(&m, &err), 0);
    wd_demux_free(&m);
    free(raw);
}

static void test_demux_captured(void **state)
{
    (void)state;
    const char *files[] = {"docker-logs-multiplexed.bin", "podman-logs-multiplexed.bin"};
    for (size_t f = 0; f < 2; f++) {
        if (!exists(files[f]))
            continue;
        size_t steps[] = {1, 3, 8, 9, 4096};
        for (size_t i = 0; i < WD_ARRAY_LEN(steps); i++) {
            struct out o = {0};
            demux_file(files[f], false, steps[i], &o);
            assert_non_null(strstr((char *)o.s[1].data, "hello stdout port=7000\n"));
            assert_non_null(strstr((char *)o.s[1].data, "exiting with 3\n"));
            assert_null(strstr((char *)o.s[1].data, "stderr"));
            assert_non_null(strstr((char *)o.s[2].data, "hello stderr port=7000\n"));
            assert_non_null(strstr((char *)o.s[2].data, "to-stderr\n"));
            out_free(&o);
        }
    }
    struct out o = {0};
    demux_file("docker-logs-tty.bin", true, 5, &o);
    assert_int_equal(o.s[2].len, 0);
    assert_true(strncmp((char *)o.s[1].data, "usage: echo", 11) == 0);
    assert_non_null(strstr((char *)o.s[1].data, "\r\n")); /* the terminal's line endings */
    out_free(&o);
}

static void test_demux_errors(void **state)
{
    (void)state;
    struct wd_error *err = NULL;
    struct out o = {0};
    struct wd_demux m = {0};
    /* bad header bytes 1-3 */
    const uint8_t bad[] = {1, 0, 1, 0, 0, 0, 0, 1, 'x'};
    assert_int_equal(wd_demux_feed(&m, bad, sizeof bad, collect, &o, &err), -EPROTO);
    wd_err_free(&err);
    wd_demux_free(&m);
    /* oversized frame rejected before allocating */
    struct wd_demux m2 = {0};
    const uint8_t big[] = {1, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff};
    assert_int_equal(wd_demux_feed(&m2, big, 4, collect, &o, &err), 0); /* partial header */
    assert_int_equal(wd_demux_feed(&m2, big + 4, 4, collect, &o, &err), -EMSGSIZE);
    wd_err_free(&err);
    wd_demux_free(&m2);
    /* system error frame (type 3) */
    struct wd_demux m3 = {0};
    const uint8_t sys[] = {3, 0, 0, 0, 0, 0, 0, 4, 'b', 'o', 'o', 'm'};
    assert_int_equal(wd_demux_feed(&m3, sys, sizeof sys, collect, &o, &err), -EIO);
    assert_non_null(strstr(err->msg, "boom"));
    wd_err_free(&err);
    wd_demux_free(&m3);
    /* truncated stream, and empty frames */
    struct wd_demux m4 = {0};
    const uint8_t part[] = {0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 5, 'a', 'b'};
    assert_int_equal(wd_demux_feed(&m4, part, sizeof part, collect, &o, &err), 0);
    assert_int_equal(wd_demux_end(&m4, &err), -EPROTO);
    wd_err_free(&err);
    wd_demux_free(&m4);
    assert_int_equal(o.calls, 0);
    out_free(&o);
    /* stdin (type 0) shows as stdout */
    struct wd_demux m5 = {0};
    struct out o5 = {0};
    const uint8_t in0[] = {0, 0, 0, 0, 0, 0, 0, 1, 'z'};
    assert_int_equal(wd_demux_feed(&m5, in0, sizeof in0, collect, &o5, &err), 0);
    assert_string_equal((char *)o5.s[1].data, "z");
    wd_demux_free(&m5);
    out_free(&o5);
}

static int stop_at_first(void *arg, int stream, const uint8_t *data, size_t len)
{
    (void)arg, (void)stream, (void)data, (void)len;
    return -ECANCELED;
}

static void test_demux_consumer_stop(void **state)
{
    (void)state;
    struct wd_error *err = NULL;
    struct wd_demux m = {0};
    const uint8_t f[] = {1, 0, 0, 0, 0, 0, 0, 1, 'a', 1, 0, 0, 0, 0, 0, 0, 1, 'b'};
    assert_int_equal(wd_demux_feed(&m, f, sizeof f, stop_at_first, NULL, &err), -ECANCELED);
    wd_err_free(&err);
    wd_demux_free(&m);
}

static int count_lines(void *arg, const char *line, size_t len)
{
    (void)line;
    assert_true(len > 0);
    (*(int *)arg)++;
    return 0;
}

static void test_lines_limits(void **state)
{
    (void)state;
    struct wd_lines l = {0};
    struct wd_error *err = NULL;
    int n = 0;
    const char *s = "{\"a\":1}\r\n\n{\"b\":2}\n{\"c\"";
    assert_int_equal(wd_lines_feed(&l, (const uint8_t *)s, strlen(s), count_lines, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(wd_lines_end(&l, count_lines, &n, &err), 0);
    assert_int_equal(n, 3); /* a final line without newline (Podman's load reply) */
    wd_lines_free(&l);
    struct wd_lines big = {0};
    uint8_t *junk = xmalloc(WD_MAX_JSON_LINE + 2);
    memset(junk, 'x', WD_MAX_JSON_LINE + 2);
    assert_int_equal(wd_lines_feed(&big, junk, WD_MAX_JSON_LINE + 2, count_lines, &n, &err),
                     -EMSGSIZE);
    wd_err_free(&err);
    wd_lines_free(&big);
    free(junk);
}

static void test_frame_header(void **state)
{
    (void)state;
    struct wd_error *err = NULL;
    int st;
    size_t len;
    const uint8_t h[8] = {2, 0, 0, 0, 0, 0, 1, 2};
    assert_int_equal(wd_docker_frame_header(h, &st, &len, &err), 0);
    assert_int_equal(st, 2);
    assert_int_equal(len, 258);
    const uint8_t bad[8] = {4, 0, 0, 0, 0, 0, 0, 0};
    assert_int_equal(wd_docker_frame_header(bad, &st, &len, &err), -EPROTO);
    wd_err_free(&err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_errno),
        cmocka_unit_test(test_error_message),
        cmocka_unit_test(test_parse_host),
        cmocka_unit_test(test_negotiate),
        cmocka_unit_test(test_labels_env),
        cmocka_unit_test(test_container_json),
        cmocka_unit_test(test_network_and_filters_json),
        cmocka_unit_test(test_parse_version),
        cmocka_unit_test(test_parse_container),
        cmocka_unit_test(test_parse_lists),
        cmocka_unit_test(test_parse_network_image_wait),
        cmocka_unit_test(test_events_stream),
        cmocka_unit_test(test_progress),
        cmocka_unit_test(test_demux_captured),
        cmocka_unit_test(test_demux_errors),
        cmocka_unit_test(test_demux_consumer_stop),
        cmocka_unit_test(test_lines_limits),
        cmocka_unit_test(test_frame_header),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
