/* compose/compose.c rendering and the manager's hello parser (engine/deploy/rt_compose.c). */
#include "compose/compose.h"
#include "engine/base/error.h"
#include "engine/deploy/rt_compose.h"
#include "engine/base/util.h"
#include "tests/unit/wd_test.h"

#include <errno.h>
#include <string.h>

#include <yaml.h>

static const struct wd_compose_group groups[] = {
    {.name = "github.com/ServiceWeaver/weaver/Main", .service = "weaver-main", .replicas = 2},
    {.name = "example.com/shop/Cart", .service = "shop-cart", .replicas = 3},
};
static const struct wd_compose_listener listeners[] = {{"shop", 12080, "127.0.0.1"}};
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
    s.swarm = true;
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

/* Without --swarm: no endpoint_mode (docker-compose 1.29 warns about it) and a localhost
 * listener published on 127.0.0.1 only, in the short form. */
static void test_render_compose_flavour(void **state)
{
    (void)state;
    struct wd_compose_spec s = spec();
    struct wd_buf b = {0};
    struct wd_error *err = NULL;
    assert_int_equal(wd_compose_render(&s, &b, &err), 0);
    yaml_parser_t parser;
    yaml_document_t doc;
    assert_true(yaml_parser_initialize(&parser));
    yaml_parser_set_input_string(&parser, b.data, b.len);
    assert_true(yaml_parser_load(&parser, &doc));
    const char *mode[] = {"services", "weaver-main", "deploy", "endpoint_mode"};
    assert_null(lookup(&doc, mode, 4));
    /* the Go Compose CLI warns on every command that `version` is obsolete */
    assert_null(lookup(&doc, (const char *[]){"version"}, 1));
    yaml_node_t *ports = lookup(&doc, (const char *[]){"services", "manager", "ports"}, 3);
    assert_non_null(ports);
    assert_int_equal(ports->type, YAML_SEQUENCE_NODE);
    yaml_node_t *p0 = yaml_document_get_node(&doc, ports->data.sequence.items.start[0]);
    assert_int_equal(p0->type, YAML_SCALAR_NODE);
    assert_string_equal((const char *)p0->data.scalar.value, "127.0.0.1:12080:12080/tcp");
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    wd_buf_free(&b);
}

static yaml_node_t *seq_at(yaml_document_t *doc, yaml_node_t *seq, size_t i)
{
    assert_non_null(seq);
    assert_int_equal(seq->type, YAML_SEQUENCE_NODE);
    assert_true(i < (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start));
    return yaml_document_get_node(doc, seq->data.sequence.items.start[i]);
}

static size_t seq_len(yaml_node_t *seq)
{
    assert_non_null(seq);
    assert_int_equal(seq->type, YAML_SEQUENCE_NODE);
    return (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start);
}

/* The scalar at path below node (a mapping). */
static const char *scalar_in(yaml_document_t *doc, yaml_node_t *node, const char *key)
{
    assert_non_null(node);
    assert_int_equal(node->type, YAML_MAPPING_NODE);
    for (yaml_node_pair_t *p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key);
        yaml_node_t *v = yaml_document_get_node(doc, p->value);
        if (strcmp((const char *)k->data.scalar.value, key) == 0 && v->type == YAML_SCALAR_NODE)
            return (const char *)v->data.scalar.value;
    }
    return NULL;
}

/* Parses b into doc (and parser): both to be deleted by the caller. */
static void load(yaml_parser_t *parser, yaml_document_t *doc, const struct wd_buf *b)
{
    assert_true(yaml_parser_initialize(parser));
    yaml_parser_set_input_string(parser, (const unsigned char *)b->data, b->len);
    assert_true(yaml_parser_load(parser, doc));
}

/* Every service sets nofile and nproc as up does (Podman's own defaults may not be settable);
 * the Podman file has no host-gateway (podman 4.3 refuses it) and no extra_hosts at all when
 * weaver.toml names none; its manager relays host_ports to host.containers.internal. */
static void test_render_podman(void **state)
{
    (void)state;
    struct wd_compose_spec s = spec();
    struct wd_buf b = {0};
    struct wd_error *err = NULL;
    yaml_parser_t parser;
    yaml_document_t doc;
    assert_int_equal(wd_compose_render(&s, &b, &err), 0);
    load(&parser, &doc, &b);
    const char *svc[] = {"manager", "weaver-main", "shop-cart"};
    for (size_t i = 0; i < WD_ARRAY_LEN(svc); i++) {
        expect_scalar(&doc, (const char *[]){"services", svc[i], "ulimits", "nofile"}, 4, "4096",
                      false);
        expect_scalar(&doc, (const char *[]){"services", svc[i], "ulimits", "nproc"}, 4, "4096",
                      false);
        assert_non_null(lookup(&doc, (const char *[]){"services", svc[i], "extra_hosts"}, 3));
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    wd_buf_free(&b);

    s.podman = true;
    assert_int_equal(wd_compose_render(&s, &b, &err), 0);
    assert_null(memmem(b.data, b.len, "host-gateway", 12));
    assert_null(memmem(b.data, b.len, "--host-name", 11)); /* no host_ports */
    load(&parser, &doc, &b);
    for (size_t i = 0; i < WD_ARRAY_LEN(svc); i++) {
        assert_null(lookup(&doc, (const char *[]){"services", svc[i], "extra_hosts"}, 3));
        expect_scalar(&doc, (const char *[]){"services", svc[i], "ulimits", "nofile"}, 4, "4096",
                      false);
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    wd_buf_free(&b);

    static const char *const hosts[] = {"db.local:10.1.2.3"};
    static const uint16_t hp[] = {5432};
    s.extra_hosts = hosts;
    s.nextra_hosts = 1;
    s.host_ports = hp;
    s.nhost_ports = 1;
    assert_int_equal(wd_compose_render(&s, &b, &err), 0);
    assert_null(memmem(b.data, b.len, "host-gateway", 12));
    load(&parser, &doc, &b);
    yaml_node_t *h = lookup(&doc, (const char *[]){"services", "shop-cart", "extra_hosts"}, 3);
    assert_int_equal(seq_len(h), 1);
    assert_string_equal((const char *)seq_at(&doc, h, 0)->data.scalar.value, "db.local:10.1.2.3");
    yaml_node_t *ep = lookup(&doc, (const char *[]){"services", "manager", "entrypoint"}, 3);
    bool relay = false;
    for (size_t i = 0; i + 1 < seq_len(ep); i++)
        relay = relay ||
                (strcmp((const char *)seq_at(&doc, ep, i)->data.scalar.value, "--host-name") == 0 &&
                 strcmp((const char *)seq_at(&doc, ep, i + 1)->data.scalar.value,
                        WD_COMPOSE_PODMAN_HOST) == 0);
    assert_true(relay);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    wd_buf_free(&b);
}

/* Every [docker] world key: env (with repeats), limits, volumes, secrets, networks, extra
 * hosts, host ports. */
static void test_render_world(void **state)
{
    (void)state;
    static const char *const cart_env[] = {"GREETING=hi", "FROM_FILE=f", "HOME=/home/x", "COST=$1",
                                           "WEAVER_SHIM_GROUP=spoofed"};
    struct wd_compose_group g[] = {
        {.name = "github.com/ServiceWeaver/weaver/Main", .service = "weaver-main", .replicas = 1},
        {.name = "example.com/shop/Cart",
         .service = "shop-cart",
         .replicas = 2,
         .env = cart_env,
         .nenv = WD_ARRAY_LEN(cart_env),
         .memory_bytes = 48LL << 20,
         .nano_cpus = 500000000,
         .pids = 300},
        {.name = "example.com/shop/Big",
         .service = "shop-big",
         .replicas = 1,
         .memory_bytes = 1536LL << 20,
         .nano_cpus = 2000000000},
        {.name = "example.com/shop/Odd",
         .service = "shop-odd",
         .replicas = 1,
         .memory_bytes = 10000000,
         .nano_cpus = 10000000},
    };
    static const struct wd_compose_volume vols[] = {
        {.bind = true, .source = "/srv/keys", .target = "/keys", .read_only = true},
        {.source = "data", .target = "/var/lib/app"},
        {.bind = true, .source = "/srv/$cache", .target = "/cache"},
        {.source = "data", .target = "/var/lib/again"},
    };
    static const struct wd_compose_secret secs[] = {
        {"db_password", "./shop.yml.secrets/db_password"}};
    static const char *const nets[] = {"dbnet", "weaver", "dbnet"};
    static const char *const hosts[] = {"db.local:10.1.2.3", "v6:::1"};
    static const uint16_t ports[] = {5432, 3306};
    struct wd_compose_spec s = spec();
    s.groups = g;
    s.ngroups = WD_ARRAY_LEN(g);
    s.volumes = vols;
    s.nvolumes = WD_ARRAY_LEN(vols);
    s.secrets = secs;
    s.nsecrets = 1;
    s.networks = nets;
    s.nnetworks = WD_ARRAY_LEN(nets);
    s.extra_hosts = hosts;
    s.nextra_hosts = WD_ARRAY_LEN(hosts);
    s.host_ports = ports;
    s.nhost_ports = 2;
    struct wd_buf b = {0};
    struct wd_error *err = NULL;
    assert_int_equal(wd_compose_render(&s, &b, &err), 0);
    assert_null(err);
    yaml_parser_t parser;
    yaml_document_t doc;
    assert_true(yaml_parser_initialize(&parser));
    yaml_parser_set_input_string(&parser, b.data, b.len);
    assert_true(yaml_parser_load(&parser, &doc));

    /* environment: [serviceweaver] env, then the group's, then ours; a repeated name keeps
     * the last value */
    const char *e_greet[] = {"services", "shop-cart", "environment", "GREETING"};
    expect_scalar(&doc, e_greet, 4, "hi", false);
    const char *e_price[] = {"services", "shop-cart", "environment", "PRICE"};
    expect_scalar(&doc, e_price, 4, "$$5", true);
    const char *e_cost[] = {"services", "shop-cart", "environment", "COST"};
    expect_scalar(&doc, e_cost, 4, "$$1", true);
    const char *e_home[] = {"services", "shop-cart", "environment", "HOME"};
    expect_scalar(&doc, e_home, 4, "/tmp", false);
    const char *e_grp[] = {"services", "shop-cart", "environment", "WEAVER_SHIM_GROUP"};
    expect_scalar(&doc, e_grp, 4, "example.com/shop/Cart", false);
    const char *e_hp[] = {"services", "shop-cart", "environment", "WEAVER_SHIM_HOST_PORTS"};
    expect_scalar(&doc, e_hp, 4, "5432,3306", true);
    const char *e_ff[] = {"services", "weaver-main", "environment", "FROM_FILE"};
    assert_null(lookup(&doc, e_ff, 4)); /* another group's env */
    const char *m_hp[] = {"services", "manager", "environment", "WEAVER_SHIM_HOST_PORTS"};
    assert_null(lookup(&doc, m_hp, 4));
    yaml_node_t *ce = lookup(&doc, (const char *[]){"services", "shop-cart", "environment"}, 3);
    assert_int_equal(ce->data.mapping.pairs.top - ce->data.mapping.pairs.start, 10);

    /* limits; a group with pids_limit has them as service keys: the Go Compose CLI refuses
     * pids_limit next to deploy.resources.limits without the same pids */
    const char *pids[] = {"services", "shop-cart", "pids_limit"};
    expect_scalar(&doc, pids, 3, "300", false);
    const char *cmem[] = {"services", "shop-cart", "mem_limit"};
    expect_scalar(&doc, cmem, 3, "48M", true);
    const char *ccpus[] = {"services", "shop-cart", "cpus"};
    expect_scalar(&doc, ccpus, 3, "0.5", true);
    const char *cres[] = {"services", "shop-cart", "deploy", "resources"};
    assert_null(lookup(&doc, cres, 4));
    const char *crep[] = {"services", "shop-cart", "deploy", "replicas"};
    expect_scalar(&doc, crep, 4, "2", false);
    const char *mem[] = {"services", "shop-big", "deploy", "resources", "limits", "memory"};
    const char *cpus[] = {"services", "shop-big", "deploy", "resources", "limits", "cpus"};
    expect_scalar(&doc, mem, 6, "1536M", true);
    expect_scalar(&doc, cpus, 6, "2", true);
    mem[1] = cpus[1] = "shop-odd";
    expect_scalar(&doc, mem, 6, "10000000", true);
    expect_scalar(&doc, cpus, 6, "0.01", true);
    const char *nores[] = {"services", "weaver-main", "deploy", "resources"};
    assert_null(lookup(&doc, nores, 4));
    pids[1] = "weaver-main";
    assert_null(lookup(&doc, pids, 3));
    nores[1] = "manager";
    assert_null(lookup(&doc, nores, 4));

    /* volumes: tmpfs, then the [docker] ones in order; named volumes declared once */
    yaml_node_t *v = lookup(&doc, (const char *[]){"services", "shop-cart", "volumes"}, 3);
    assert_int_equal(seq_len(v), 5);
    yaml_node_t *bind = seq_at(&doc, v, 1);
    assert_string_equal(scalar_in(&doc, bind, "type"), "bind");
    assert_string_equal(scalar_in(&doc, bind, "source"), "/srv/keys");
    assert_string_equal(scalar_in(&doc, bind, "target"), "/keys");
    assert_string_equal(scalar_in(&doc, bind, "read_only"), "true");
    yaml_node_t *named = seq_at(&doc, v, 2);
    assert_string_equal(scalar_in(&doc, named, "type"), "volume");
    assert_string_equal(scalar_in(&doc, named, "source"), "data");
    assert_string_equal(scalar_in(&doc, named, "target"), "/var/lib/app");
    assert_null(scalar_in(&doc, named, "read_only"));
    bind = seq_at(&doc, v, 3);
    assert_string_equal(scalar_in(&doc, bind, "source"), "/srv/$$cache");
    assert_string_equal(scalar_in(&doc, bind, "read_only"), "false");
    assert_int_equal(seq_len(lookup(&doc, (const char *[]){"services", "manager", "volumes"}, 3)),
                     1);
    const char *vname[] = {"volumes", "data", "name"};
    expect_scalar(&doc, vname, 3, "shop_data", false); /* the engine volume of `up` */
    const char *vrole[] = {"volumes", "data", "labels", "org.weaver-docker.role"};
    expect_scalar(&doc, vrole, 4, "volume", false);
    const char *vapp[] = {"volumes", "data", "labels", "org.weaver-docker.app"};
    expect_scalar(&doc, vapp, 4, "shop", false);
    yaml_node_t *tv = lookup(&doc, (const char *[]){"volumes"}, 1);
    assert_int_equal(tv->data.mapping.pairs.top - tv->data.mapping.pairs.start, 1);

    /* secrets */
    yaml_node_t *sec =
        seq_at(&doc, lookup(&doc, (const char *[]){"services", "shop-cart", "secrets"}, 3), 0);
    assert_string_equal(scalar_in(&doc, sec, "source"), "db_password");
    assert_string_equal(scalar_in(&doc, sec, "target"), "db_password");
    /* the copy is already 65532, 0400; only swarm applies these (below), compose warns */
    assert_null(scalar_in(&doc, sec, "uid"));
    assert_null(scalar_in(&doc, sec, "mode"));
    const char *sfile[] = {"secrets", "db_password", "file"};
    expect_scalar(&doc, sfile, 3, "./shop.yml.secrets/db_password", false);
    assert_null(lookup(&doc, (const char *[]){"services", "manager", "secrets"}, 3));

    /* networks: ours, then the external ones (each once; "weaver" under another key) */
    yaml_node_t *n = lookup(&doc, (const char *[]){"services", "shop-cart", "networks"}, 3);
    assert_int_equal(seq_len(n), 3);
    assert_string_equal((const char *)seq_at(&doc, n, 0)->data.scalar.value, "weaver");
    assert_string_equal((const char *)seq_at(&doc, n, 1)->data.scalar.value, "dbnet");
    assert_string_equal((const char *)seq_at(&doc, n, 2)->data.scalar.value, "external-weaver");
    assert_int_equal(seq_len(lookup(&doc, (const char *[]){"services", "manager", "networks"}, 3)),
                     1);
    const char *next[] = {"networks", "dbnet", "external"};
    expect_scalar(&doc, next, 3, "true", false);
    const char *nname[] = {"networks", "external-weaver", "name"};
    expect_scalar(&doc, nname, 3, "weaver", false);
    const char *own[] = {"networks", "weaver", "attachable"};
    expect_scalar(&doc, own, 3, "true", false);

    /* extra hosts: the host first, on every service */
    const char *svc[] = {"manager", "shop-cart"};
    for (size_t i = 0; i < WD_ARRAY_LEN(svc); i++) {
        yaml_node_t *h = lookup(&doc, (const char *[]){"services", svc[i], "extra_hosts"}, 3);
        assert_int_equal(seq_len(h), 3);
        assert_string_equal((const char *)seq_at(&doc, h, 0)->data.scalar.value,
                            "host.docker.internal:host-gateway");
        assert_string_equal((const char *)seq_at(&doc, h, 2)->data.scalar.value, "v6:::1");
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    wd_buf_free(&b);

    /* under swarm the secret gets its owner and mode */
    s.swarm = true;
    assert_int_equal(wd_compose_render(&s, &b, &err), 0);
    assert_true(yaml_parser_initialize(&parser));
    yaml_parser_set_input_string(&parser, b.data, b.len);
    assert_true(yaml_parser_load(&parser, &doc));
    sec = seq_at(&doc, lookup(&doc, (const char *[]){"services", "shop-cart", "secrets"}, 3), 0);
    assert_string_equal(scalar_in(&doc, sec, "uid"), "65532");
    assert_string_equal(scalar_in(&doc, sec, "gid"), "65532");
    assert_string_equal(scalar_in(&doc, sec, "mode"), "0400");
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    wd_buf_free(&b);
    s.swarm = false;

    /* what the renderer refuses */
    struct wd_compose_volume rel[] = {{.bind = true, .source = "keys", .target = "/keys"}};
    s.volumes = rel;
    s.nvolumes = 1;
    assert_int_equal(wd_compose_render(&s, &b, &err), -EINVAL);
    wd_err_free(&err);
    s.volumes = vols;
    s.nvolumes = WD_ARRAY_LEN(vols);
    static const char *const clash[] = {"weaver", "external-weaver"};
    s.networks = clash;
    s.nnetworks = 2;
    assert_int_equal(wd_compose_render(&s, &b, &err), -EINVAL);
    assert_non_null(strstr(err->msg, "share a key"));
    wd_err_free(&err);
    wd_buf_free(&b);
}

static void test_render_rejects(void **state)
{
    (void)state;
    struct wd_compose_spec s = spec();
    struct wd_compose_group dup[] = {{.name = "a/X", .service = "x", .replicas = 1},
                                     {.name = "b/X", .service = "x", .replicas = 1}};
    s.groups = dup;
    struct wd_buf b = {0};
    struct wd_error *err = NULL;
    assert_int_equal(wd_compose_render(&s, &b, &err), -EINVAL);
    assert_non_null(strstr(err->msg, "share service name x"));
    wd_err_free(&err);
    struct wd_compose_group mgr[] = {{.name = "a/Manager", .service = "manager", .replicas = 1}};
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
    n = hello(b, 'S', "status", NULL); /* the front's status question: parsed, no token needed */
    assert_int_equal(wd_compose_hello_parse(b, n, &h, &need), (int)n);
    assert_int_equal(h.chan, 'S');
}

/* --swarm with a front (issue 12 item 4): the front publishes the ports and nothing in it
 * depends on the version or the token; the manager publishes nothing, carries the stamp and
 * the drain; the manager and groups update start-first; the groups drain too. */
static void test_render_front(void **state)
{
    (void)state;
    struct wd_compose_spec s = spec();
    s.swarm = true;
    s.front_image = "sha256:fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";
    s.front_bin = "/app/weaver-docker-manager";
    s.stamp = 1796582324506;
    struct wd_buf b = {0}, b2 = {0};
    struct wd_error *err = NULL;
    assert_int_equal(wd_compose_render(&s, &b, &err), 0);
    yaml_parser_t parser;
    yaml_document_t doc;
    assert_true(yaml_parser_initialize(&parser));
    yaml_parser_set_input_string(&parser, b.data, b.len);
    assert_true(yaml_parser_load(&parser, &doc));
    expect_scalar(&doc, (const char *[]){"services", "front", "image"}, 3, s.front_image, false);
    yaml_node_t *ports = lookup(&doc, (const char *[]){"services", "front", "ports"}, 3);
    assert_non_null(ports);
    assert_int_equal(ports->data.sequence.items.top - ports->data.sequence.items.start, 1);
    assert_null(lookup(&doc, (const char *[]){"services", "manager", "ports"}, 3));
    assert_null(lookup(&doc, (const char *[]){"services", "front", "environment"}, 3));
    expect_scalar(&doc, (const char *[]){"services", "manager", "environment", "WEAVER_COMPOSE_STAMP"},
                  4, "1796582324506", true);
    expect_scalar(&doc,
                  (const char *[]){"services", "manager", "environment", "WEAVER_COMPOSE_DRAIN_MS"},
                  4, "3000", true);
    expect_scalar(&doc,
                  (const char *[]){"services", "shop-cart", "environment", "WEAVER_SHIM_DRAIN_MS"},
                  4, "3000", true);
    expect_scalar(&doc,
                  (const char *[]){"services", "manager", "deploy", "update_config", "order"}, 5,
                  "start-first", false);
    expect_scalar(&doc,
                  (const char *[]){"services", "shop-cart", "deploy", "update_config", "order"}, 5,
                  "start-first", false);
    assert_null(lookup(&doc, (const char *[]){"services", "front", "deploy", "update_config"}, 4));
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    /* the next version's file: another token and stamp, the same front service */
    s.token_hex = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";
    s.stamp++;
    s.image = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    assert_int_equal(wd_compose_render(&s, &b2, &err), 0);
    const char *f1 = strstr((const char *)b.data, "\n  front:\n");
    const char *f2 = strstr((const char *)b2.data, "\n  front:\n");
    assert_non_null(f1);
    assert_non_null(f2);
    const char *e1 = strstr(f1 + 1, "\n  manager:\n"), *e2 = strstr(f2 + 1, "\n  manager:\n");
    assert_non_null(e1);
    assert_non_null(e2);
    assert_int_equal(e1 - f1, e2 - f2);
    assert_memory_equal(f1, f2, (size_t)(e1 - f1));
    /* a front is for swarm files only */
    s.swarm = false;
    struct wd_buf b3 = {0};
    assert_int_equal(wd_compose_render(&s, &b3, &err), -EINVAL);
    wd_err_free(&err);
    wd_buf_free(&b);
    wd_buf_free(&b2);
    wd_buf_free(&b3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render),
        cmocka_unit_test(test_render_world),
        cmocka_unit_test(test_render_compose_flavour),
        cmocka_unit_test(test_render_podman),
        cmocka_unit_test(test_render_rejects),
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_hello),
        cmocka_unit_test(test_render_front),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
