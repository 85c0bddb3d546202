/* Unit tests for engine/deploy/plan.c: the colocation groups and input checks `up` and `compose`
 * share (issue 13). The deployer's own groups (engine/deploy/groups.c) are formed from the same
 * plan, checked here to match it name for name; compose renders the plan's groups as services. */
#include "engine/base/error.h"
#include "engine/base/util.h"
#include "engine/deploy/deploy_internal.h"
#include "engine/deploy/plan.h"
#include "engine/weaver/config.h"
#include "tests/unit/wd_test.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MAIN "github.com/ServiceWeaver/weaver/Main"

/* A binary's components (sorted, as binary.c keeps them) and one listener "web" on Main. */
static char c0[] = "a/x/Foo", c1[] = "b/x/Foo", c2[] = "example.com/shop/Cart",
            c3[] = "example.com/shop/Inventory", c4[] = "example.com/shop/Pricer", c5[] = MAIN;
static char *comps[] = {c0, c1, c2, c3, c4, c5};
static char web[] = "web";
static char *lnames[] = {web};
static char main_name[] = MAIN;
static struct wd_binary_listeners lis = {.component = main_name, .names = {lnames, 1}};
static struct wd_binary_info bin = {
    .components = comps, .ncomponents = 6, .listeners = &lis, .nlisteners = 1};

static struct wd_config *parse(const char *extra)
{
    autofree char *text = xasprintf("[serviceweaver]\nbinary = \"x\"\n%s", extra);
    struct wd_config *c = NULL;
    struct wd_error *err = NULL;
    if (wd_config_parse(text, strlen(text), "weaver.toml", &c, &err) < 0)
        fail_msg("parse: %s", err->msg);
    return c;
}

static void expect_plan(const char *extra, const char *want)
{
    struct wd_config *c = parse(extra);
    struct wd_error *err = NULL;
    int r = wd_plan_check(c, &bin, &err);
    if (want == NULL) {
        if (r != 0)
            fail_msg("refused: %s", err->msg);
    } else {
        assert_int_equal(r, -EINVAL);
        assert_string_equal(err->msg, want);
        wd_err_free(&err);
    }
    wd_config_free(c);
}

/* The deployer's groups, formed by groups.c, are the plan's: same order, names, slugs,
 * components and replicas. */
static void assert_deploy_matches(struct wd_config *c, const struct wd_group_plan *p, size_t n)
{
    struct wd_deploy d = {.cfg = c, .bin = &bin};
    wd_deploy_build_groups(&d);
    assert_int_equal(d.ngroups, n);
    for (size_t i = 0; i < n; i++) {
        struct wd_group *g = d.groups[i];
        assert_string_equal(g->name, p[i].name);
        assert_string_equal(g->slug, p[i].slug);
        assert_string_equal(g->short_name, p[i].short_name);
        assert_int_equal(g->nreplicas, p[i].replicas);
        assert_int_equal(g->ncomps, p[i].ncomps);
        for (size_t j = 0; j < g->ncomps; j++)
            assert_string_equal(g->comps[j]->name, p[i].comps[j]);
    }
    for (size_t i = 0; i < d.ngroups; i++) {
        free(d.groups[i]->replicas);
        free(d.groups[i]->comps);
        free(d.groups[i]->name);
        free(d.groups[i]->short_name);
        free(d.groups[i]->slug);
        free(d.groups[i]);
    }
    free(d.groups);
    for (size_t i = 0; i < d.ncomps; i++) {
        free(d.comps[i]->name);
        free(d.comps[i]);
    }
    free(d.comps);
}

static void test_groups(void **state)
{
    (void)state;
    struct wd_config *c = parse(
        "colocate = [[\"" MAIN "\", \"example.com/shop/Pricer\"], [\"example.com/shop/Cart\", "
        "\"example.com/shop/Gone\"]]\n"
        "[docker]\nreplicas = 2\ngroups.\"example.com/shop/Gone\" = {replicas = 1}\n");
    /* groups naming a component the binary lacks: refused by the check, as up does */
    struct wd_error *err = NULL;
    assert_int_equal(wd_plan_check(c, &bin, &err), -EINVAL);
    static const char want[] = "weaver.toml:6: [docker] groups.\"example.com/shop/Gone\": the app "
                               "has no such component (see 'weaver-docker inspect ";
    assert_int_equal(strncmp(err->msg, want, sizeof want - 1), 0);
    wd_err_free(&err);
    wd_config_free(c);

    c = parse("colocate = [[\"" MAIN "\", \"example.com/shop/Pricer\"], [\"example.com/shop/Cart\", "
              "\"example.com/shop/Gone\"]]\n"
              "[docker]\nreplicas = 2\ngroups.\"example.com/shop/Cart\" = {replicas = 3}\n");
    assert_int_equal(wd_plan_check(c, &bin, &err), 0); /* Gone: a warning only */
    size_t n = 0;
    struct wd_group_plan *p = wd_groups_plan(c, &bin, &n);
    /* Main+Pricer; Cart+Gone (a name the binary lacks still counts); then a/x/Foo, b/x/Foo
     * and Inventory alone, in the binary's order */
    assert_int_equal(n, 5);
    assert_string_equal(p[0].name, MAIN);
    assert_int_equal(p[0].ncomps, 2);
    assert_string_equal(p[0].comps[1], "example.com/shop/Pricer");
    assert_int_equal(p[0].replicas, 2);
    assert_string_equal(p[1].name, "example.com/shop/Cart");
    assert_int_equal(p[1].ncomps, 2);
    assert_string_equal(p[1].comps[1], "example.com/shop/Gone");
    assert_int_equal(p[1].replicas, 3);
    assert_string_equal(p[1].slug, "shop-cart");
    assert_string_equal(p[1].short_name, "shop.Cart");
    /* two groups whose short names collide get distinct slugs */
    assert_string_equal(p[2].slug, "x-foo");
    assert_string_equal(p[3].slug, "x-foo-2");
    assert_string_equal(p[4].name, "example.com/shop/Inventory");
    assert_deploy_matches(c, p, n);
    wd_groups_plan_free(p, n);
    wd_config_free(c);
}

/* Two [docker] groups entries for one colocation group: which would win? Refused, the same
 * line for up and compose (before, up took the first and compose the last). */
static void test_two_entries_one_group(void **state)
{
    (void)state;
    expect_plan("colocate = [[\"example.com/shop/Cart\", \"example.com/shop/Inventory\"]]\n"
                 "[docker]\ngroups.\"example.com/shop/Cart\" = {replicas = 2}\n"
                 "groups.\"example.com/shop/Inventory\" = {replicas = 3}\n",
                 "weaver.toml:6: [docker] groups.\"example.com/shop/Inventory\" and "
                 "groups.\"example.com/shop/Cart\" (line 5) name one colocation group (colocate "
                 "puts them together); keep one entry for the group");
    /* entries for components in different groups are fine */
    expect_plan("[docker]\ngroups.\"example.com/shop/Cart\" = {replicas = 2}\n"
                 "groups.\"example.com/shop/Inventory\" = {replicas = 3}\n",
                 NULL);
}

static void test_listeners(void **state)
{
    (void)state;
    expect_plan("[docker]\nlisteners.web = {address = \"localhost:0\"}\n", NULL);
    expect_plan("[docker]\nlisteners.wbe = {address = \"localhost:0\"}\n",
                 "weaver.toml:4: [docker] listener \"wbe\" is not declared by the app (it "
                 "declares: web)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_groups),
        cmocka_unit_test(test_two_entries_one_group),
        cmocka_unit_test(test_listeners),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
