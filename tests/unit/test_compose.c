/* compose/compose.c rendering and the manager's hello parser (engine/rt_compose.c). */
#include "compose/compose.h"
#include "engine/error.h"
#include "engine/rt_compose.h"
#include "engine/util.h"
#include "tests/unit/wd_test.h"

#include <errno.h>
#include <string.h>

#include <yaml.h>

static const struct wd_compose_group groups[] = {
    {"github.com/ServiceWeaver/weaver/Main", "weaver-main", 2},
    {"example.com/shop/Cart", "shop-cart", 3},
};
static const struct wd_compose_listener listeners[] = {{"shop", 12080}};
static const char *const env[] = {"GREETING=on", "PRICE=$5", "N=12"};
static const char *const args[] = {"--flag=$HOME"};
static char lk[] = "org.weaver-docker.test", lv[] = "t1";
static const struct wd_label extra[] = {{lk, lv}};

static struct wd_compose_spec spec(void)
{
    return (struct wd_compose_spec){
        .app = "shop",
        .image = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        .binary_name = "shop",
        .manager_bin = "/weaver-docker",
        .shim_bin = "/weaver-docker-shim",
        .token_hex = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
        .config_text = "[serviceweaver]\nname = \"shop\"\n[\"x/Cart\"]\nPrice = \"$3\"\n",
        .manager_port = 7070,
        .groups = groups,
        .ngroups = 2,
        .listeners = listeners,
        .nlisteners = 1,
        .args = args,
        .nargs = 1,
        .env = env,
        .nenv = 3,
        .labels = extra,
        .nlabels = 1,
    };
}

/* Parse the YAML back and find the scalar at a path of mapping keys. */
static yaml_node_t *lookup(yaml_document_t *doc, const char *const *path, size_t n)
{
    yaml_node_t *node = yaml_document_get_root_node(doc);
    for (size_t i = 0; node && i < n; i++) {
        if (node->type != YAML_MAPPING_NODE)
            return NULL;
        yaml_node_t *next = NULL;
        for (yaml_node_pair_t *p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top;
             p++) {
            yaml_node_t *k = yaml_document_get_node(doc, p->key);
            if (k && k->type == YAML_SCALAR_NODE &&
                strcmp((const char *)k->data.scalar.value, path[i]) == 0)
                next = yaml_document_get_node(doc, p->value);
        }
        node = next;
    }
    return node;
}

static void expect_scalar(yaml_document_t *doc, const char *const *path, size_t n,
                          const char *value, bool quoted)
{
    yaml_node_t *node = lookup(doc, path, n);
    assert_non_null(node);
    assert_int_equal(node->type, YAML_SCALAR_NODE);
    assert_string_equal((const char *)node->data.scalar.value, value);
    if (quoted)
        assert_true(node->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE ||
                    node->data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE);
}

static void test_render(void **state)
{
    (void)state;
    struct wd_compose_spec s = spec();
    struct wd_buf b = {0};
    struct wd_error *err = NULL;
    assert_int_equal(wd_compose_render(&s, &b, &err), 0);
    assert_null(err);

    yaml_parser_t parser;
    yaml_document_t doc;
    assert_true(yaml_parser_initialize(&parser));
    yaml_parser_set_input_string(&parser, b.data, b.len);
    assert_true(yaml_parser_load(&parser, &doc));

    expect_scalar(&doc, (const char *[]){"version"}, 1, "3.8", true);
    const char *img[] = {"services", "shop-cart", "image"};
    expect_scalar(&doc, img, 3, s.image, false);
    const char *rep[] = {"services", "shop-cart", "deploy", "replicas"};
    expect_scalar(&doc, rep, 4, "3", false);
    const char *mode[] = {"services", "weaver-main", "deploy", "endpoint_mode"};
    expect_scalar(&doc, mode, 4, "dnsrr", false);
    const char *grp[] = {"services", "shop-cart", "environment", "WEAVER_SHIM_GROUP"};
    expect_scalar(&doc, grp, 4, "example.com/shop/Cart", false);
    const char *mgr[] = {"services", "shop-cart", "environment", "WEAVER_SHIM_MANAGER"};
    expect_scalar(&doc, mgr, 4, "manager:7070", true);
    /* YAML 1.1 would read these as a bool and a number: they must stay strings */
    const char *on[] = {"services", "shop-cart", "environment", "GREETING"};
    expect_scalar(&doc, on, 4, "on", true);
    const char *num[] = {"services", "shop-cart", "environment", "N"};
    expect_scalar(&doc, num, 4, "12", true);
    /* compose interpolates $: doubled */
    const char *price[] = {"services", "shop-cart", "environment", "PRICE"};
    expect_scalar(&doc, price, 4, "$$5", true);
    const char *cfg[] = {"services", "manager", "environment", "WEAVER_COMPOSE_CONFIG"};
    expect_scalar(&doc, cfg, 4, "[serviceweaver]\nname = \"shop\"\n[\"x/Cart\"]\nPrice = \"$$3\"\n",
                  false);
    const char *ro[] = {"services", "manager", "read_only"};
    expect_scalar(&doc, ro, 3, "true", false);
    const char *lab[] = {"services", "manager", "labels", "org.weaver-docker.test"};
    expect_scalar(&doc, lab, 4, "t1", false);
    const char *nl[] = {"networks", "weaver", "labels", "org.weaver-docker.app"};
    expect_scalar(&doc, nl, 4, "shop", false);
    const char *drv[] = {"networks", "weaver", "driver"};
    assert_null(lookup(&doc, drv, 3)); /* compose: bridge, swarm: overlay */
    const char *cn[] = {"services", "shop-cart", "container_name"};
    assert_null(lookup(&doc, cn, 3)); /* breaks replicas; stack ignores it */
    yaml_node_t *ports = lookup(&doc, (const char *[]){"services", "manager", "ports"}, 3);
    assert_non_null(ports);
    assert_int_equal(ports->type, YAML_SEQUENCE_NODE);
    assert_int_equal(ports->data.sequence.items.top - ports->data.sequence.items.start, 1);
    yaml_node_t *ep = lookup(&doc, (const char *[]){"services", "manager", "entrypoint"}, 3);
    assert_non_null(ep);
    assert_int_equal(ep->type, YAML_SEQUENCE_NODE);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    wd_buf_free(&b);
}

static void test_render_rejects(void **state)
{
    (void)state;
    struct wd_compose_spec s = spec();
    struct wd_compose_group dup[] = {{"a/X", "x", 1}, {"b/X", "x", 1}};
    s.groups = dup;
    struct wd_buf b = {0};
    struct wd_error *err = NULL;
    assert_int_equal(wd_compose_render(&s, &b, &err), -EINVAL);
    assert_non_null(strstr(err->msg, "share service name x"));
    wd_err_free(&err);
    struct wd_compose_group mgr[] = {{"a/Manager", "manager", 1}};
    s.groups = mgr;
    s.ngroups = 1;
    assert_int_equal(wd_compose_render(&s, &b, &err), -EINVAL);
    wd_err_free(&err);
    s = spec();
    s.image = NULL;
    assert_int_equal(wd_compose_render(&s, &b, &err), -EINVAL);
    wd_err_free(&err);
    wd_buf_free(&b);
}

static void test_escape(void **state)
{
    (void)state;
    char *e = wd_compose_escape("a$b$$c");
    assert_string_equal(e, "a$$b$$$$c");
    free(e);
}

static size_t hello(uint8_t *b, char chan, const char *name, const char *ip)
{
    memcpy(b, "WDL1", 4);
    b[4] = (uint8_t)chan;
    b[5] = b[6] = b[7] = 0;
    memset(b + 8, 0xab, 32);
    size_t n = 40, l = strlen(name);
    b[n++] = (uint8_t)(l >> 8);
    b[n++] = (uint8_t)l;
    memcpy(b + n, name, l);
    n += l;
    if (ip) {
        l = strlen(ip);
        b[n++] = (uint8_t)(l >> 8);
        b[n++] = (uint8_t)l;
        memcpy(b + n, ip, l);
        n += l;
    }
    return n;
}

static void test_hello(void **state)
{
    (void)state;
    uint8_t b[400];
    struct wd_compose_hello h;
    size_t need = 0;
    size_t n = hello(b, 'A', "example.com/shop/Cart", "10.0.1.7");
    for (size_t i = 0; i < n; i++) { /* every prefix: more needed, never an error */
        assert_int_equal(wd_compose_hello_parse(b, i, &h, &need), 0);
        assert_true(need > i && need <= n);
    }
    assert_int_equal(wd_compose_hello_parse(b, n + 5, &h, &need), (int)n); /* bytes after it */
    assert_int_equal(h.chan, 'A');
    assert_string_equal(h.name, "example.com/shop/Cart");
    assert_string_equal(h.ip, "10.0.1.7");
    assert_ptr_equal(h.token, b + 8);

    n = hello(b, 'D', "0f1e2d3c-aaaa-4bbb-8ccc-000011112222", NULL);
    assert_int_equal(wd_compose_hello_parse(b, n, &h, &need), (int)n);
    assert_int_equal(h.chan, 'D');
    assert_string_equal(h.ip, "");

    n = hello(b, 'H', "x", NULL); /* health pushes go to shims, not to the manager */
    assert_int_equal(wd_compose_hello_parse(b, n, &h, &need), -EPROTO);
    n = hello(b, 'W', "has space", NULL);
    assert_int_equal(wd_compose_hello_parse(b, n, &h, &need), -EPROTO);
    n = hello(b, 'W', "", NULL);
    assert_int_equal(wd_compose_hello_parse(b, n, &h, &need), -EPROTO);
    n = hello(b, 'A', "g", "0123456789012345678901234567890123456789012345678");
    assert_int_equal(wd_compose_hello_parse(b, n, &h, &need), -EPROTO); /* ip too long */
    memcpy(b, "HTTP", 4);
    assert_int_equal(wd_compose_hello_parse(b, 4, &h, &need), -EPROTO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render),
        cmocka_unit_test(test_render_rejects),
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_hello),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
