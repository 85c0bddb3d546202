#include "tests/unit/wd_test.h"
#include "engine/config.h"
#include "engine/error.h"
#include "engine/toml.h"
#include "engine/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static struct wd_config *parse_ok(const char *s)
{
    struct wd_config *c = NULL;
    struct wd_error *err = NULL;
    int r = wd_config_parse(s, strlen(s), "/etc/app/weaver.toml", &c, &err);
    if (r != 0)
        fail_msg("config failed: %s\ninput:\n%s", err ? err->msg : "?", s);
    return c;
}

/* Must fail with EINVAL and message want ("weaver.toml:..."); a trailing '*' matches a prefix. */
static void expect_err(const char *s, const char *want)
{
    struct wd_config *c = NULL;
    struct wd_error *err = NULL;
    int r = wd_config_parse(s, strlen(s), "weaver.toml", &c, &err);
    if (r == 0)
        fail_msg("config succeeded, want error %s\ninput:\n%s", want, s);
    assert_int_equal(r, -EINVAL);
    assert_null(c);
    assert_null(strchr(err->msg, '\n'));
    size_t n = strlen(want);
    if (want[n - 1] == '*' ? strncmp(err->msg, want, n - 1) != 0 : strcmp(err->msg, want) != 0)
        fail_msg("got  %s\nwant %s", err->msg, want);
    wd_err_free(&err);
}

static const char *section(const struct wd_config *c, const char *name)
{
    for (size_t i = 0; i < c->nsections; i++)
        if (strcmp(c->sections[i].name, name) == 0)
            return c->sections[i].text;
    return NULL;
}

static void test_full(void **state)
{
    (void)state;
    struct wd_config *c = parse_ok("[serviceweaver]\n"
                                   "name = \"shop\"\n"
                                   "binary = \"./bin/../shop\"\n"
                                   "args = [\"--a\", \"b\"]\n"
                                   "env = [\"A=1\", \"B=x=y\", \"C=\"]\n"
                                   "colocate = [[\"github.com/ServiceWeaver/weaver/Main\", "
                                   "\"example.com/shop/Cart\"], [\"x/Y\"]]\n"
                                   "rollout = \"1h30m\"\n"
                                   "\n"
                                   "[docker]\n"
                                   "replicas = 3\n"
                                   "listeners.shop = {address = \"localhost:9000\"}\n"
                                   "listeners.admin = {address = \":0\"}\n"
                                   "groups.\"example.com/shop/Cart\" = {replicas = 5}\n"
                                   "groups.\"x/Y\" = {}\n"
                                   "\n"
                                   "[multi]\n"
                                   "mtls = false\n"
                                   "\n"
                                   "[\"example.com/shop/Cart\"]\n"
                                   "Max = 10\n"
                                   "[\"example.com/shop/Cart\".limits]\n"
                                   "Items = 3\n");
    assert_string_equal(c->path, "/etc/app/weaver.toml");
    assert_string_equal(c->name, "shop");
    assert_string_equal(c->binary, "/etc/app/shop");
    assert_int_equal(c->args.n, 2);
    assert_string_equal(c->args.v[0], "--a");
    assert_string_equal(c->args.v[1], "b");
    assert_null(c->args.v[2]); /* NULL-terminated for execv */
    assert_int_equal(c->env.n, 3);
    assert_string_equal(c->env.v[1], "B=x=y");
    assert_int_equal(c->ncolocate, 2);
    assert_int_equal(c->colocate[0].n, 2);
    assert_string_equal(c->colocate[0].v[1], "example.com/shop/Cart");
    assert_string_equal(c->colocate[1].v[0], "x/Y");
    assert_true(c->rollout_nanos == 5400LL * 1000000000LL);
    assert_int_equal(c->replicas, 3);
    assert_int_equal(c->nlisteners, 2);
    assert_string_equal(c->listeners[0].name, "shop");
    assert_string_equal(c->listeners[0].address, "localhost:9000");
    assert_int_equal(c->listeners[0].line, 11);
    assert_string_equal(c->listeners[1].name, "admin");
    assert_string_equal(c->listeners[1].address, ":0");
    assert_int_equal(c->ngroups, 2);
    assert_string_equal(c->groups[0].component, "example.com/shop/Cart");
    assert_int_equal(c->groups[0].replicas, 5);
    assert_int_equal(c->groups[0].line, 13);
    assert_int_equal(c->groups[1].replicas, 3); /* defaults to [docker] replicas */
    assert_int_equal(c->nsections, 4);
    assert_string_equal(c->sections[0].name, "serviceweaver");
    assert_string_equal(c->sections[1].name, "docker");
    assert_string_equal(c->sections[2].name, "multi");
    assert_string_equal(c->sections[3].name, "example.com/shop/Cart");
    assert_string_equal(section(c, "example.com/shop/Cart"), "Max = 10\n\n[limits]\n  Items = 3\n");
    assert_string_equal(section(c, "multi"), "mtls = false\n");
    assert_string_equal(section(c, "docker"),
                        "replicas = 3\n\n  [listeners.shop]\n    address = \"localhost:9000\"\n\n"
                        "  [listeners.admin]\n    address = \":0\"\n\n"
                        "  [groups.\"example.com/shop/Cart\"]\n    replicas = 5\n\n"
                        "  [groups.\"x/Y\"]\n");
    wd_config_free(c);
    wd_config_free(NULL);
}

static void test_defaults_and_long_forms(void **state)
{
    (void)state;
    struct wd_config *c = parse_ok("[\"github.com/ServiceWeaver/weaver\"]\n"
                                   "binary = \"/opt/x/app\"\n"
                                   "[\"github.com/ServiceWeaver/weaver/docker\"]\n"
                                   "groups.\"a/B\".replicas = 2\n");
    assert_string_equal(c->name, "app");
    assert_string_equal(c->binary, "/opt/x/app");
    assert_int_equal(c->args.n, 0);
    assert_int_equal(c->env.n, 0);
    assert_int_equal(c->ncolocate, 0);
    assert_true(c->rollout_nanos == 0);
    assert_int_equal(c->replicas, 1);
    assert_int_equal(c->nlisteners, 0);
    assert_int_equal(c->ngroups, 1);
    assert_int_equal(c->groups[0].replicas, 2);
    assert_int_equal(c->nsections, 2);
    assert_string_equal(c->sections[0].name, "github.com/ServiceWeaver/weaver");
    wd_config_free(c);

    /* keys are matched case-insensitively; empty name falls back to the binary */
    c = parse_ok("[serviceweaver]\nBINARY = \"app\"\nName = \"\"\nRollOut = 250\n"
                 "[docker]\nReplicas = 64\nListeners.x.Address = \"[::1]:65535\"\n");
    assert_string_equal(c->binary, "/etc/app/app");
    assert_string_equal(c->name, "app");
    assert_true(c->rollout_nanos == 250);
    assert_int_equal(c->replicas, 64);
    assert_string_equal(c->listeners[0].address, "[::1]:65535");
    wd_config_free(c);
}

static void test_app_errors(void **state)
{
    (void)state;
    expect_err("", "weaver.toml: no [serviceweaver] section; add one with binary = "
                   "\"./path/to/app\"");
    expect_err("[serviceweaver]\nname = \"x\"\n",
               "weaver.toml:1: [serviceweaver] has no binary; add binary = \"./path/to/app\" "
               "(relative to weaver.toml)");
    expect_err("[serviceweaver]\nbinary = \"\"\n",
               "weaver.toml:2: [serviceweaver] binary is empty; set it to the path of the "
               "application binary");
    expect_err("[serviceweaver]\nbinary = \"x\"\n[\"github.com/ServiceWeaver/weaver\"]\n",
               "weaver.toml:3: conflicting sections \"serviceweaver\" and "
               "\"github.com/ServiceWeaver/weaver\"; keep only one of them");
    expect_err("[serviceweaver]\nbinary = \"x\"\nbinarie = 1\nfoo = 2\n",
               "weaver.toml:3: [serviceweaver] unknown keys \"binarie\", \"foo\" (valid keys: "
               "name, binary, args, env, colocate, rollout)");
    expect_err("[\"github.com/ServiceWeaver/weaver\"]\nbinary = \"x\"\nmtls = true\n",
               "weaver.toml:3: [\"github.com/ServiceWeaver/weaver\"] unknown key \"mtls\" "
               "(valid keys: name, binary, args, env, colocate, rollout)");
    expect_err("[serviceweaver]\nbinary = \"x\"\nBinary = \"y\"\n",
               "weaver.toml:3: [serviceweaver] key \"Binary\" repeats \"binary\" (line 2); keep "
               "one");
    expect_err("[serviceweaver]\nbinary = 1\n",
               "weaver.toml:2: [serviceweaver] binary must be a string, not an integer");
    expect_err("[serviceweaver]\nbinary = \"x\"\nname = [\"a\"]\n",
               "weaver.toml:3: [serviceweaver] name must be a string, not an array");
    expect_err("[serviceweaver]\nbinary = \"x\"\nname = \"a\\u0000b\"\n",
               "weaver.toml:3: [serviceweaver] name must not contain NUL characters");
    expect_err("[serviceweaver]\nbinary = \"x\"\nargs = \"--a\"\n",
               "weaver.toml:3: [serviceweaver] args must be an array of strings, not a string");
    expect_err("[serviceweaver]\nbinary = \"x\"\nargs = [\"a\",\n 2]\n",
               "weaver.toml:4: [serviceweaver] args must be an array of strings (item 2 is an "
               "integer)");
    expect_err("[serviceweaver]\nbinary = \"x\"\nenv = [\"A=1\", \"B\"]\n",
               "weaver.toml:3: [serviceweaver] env entry \"B\" is not of form KEY=VALUE");
    expect_err("[serviceweaver]\nbinary = \"x\"\nenv = [\"=1\"]\n",
               "weaver.toml:3: [serviceweaver] env entry \"=1\" is not of form KEY=VALUE");
    expect_err("[serviceweaver]\nbinary = \"x\"\ncolocate = \"a\"\n",
               "weaver.toml:3: [serviceweaver] colocate must be an array of arrays of component "
               "names, not a string");
    expect_err("[serviceweaver]\nbinary = \"x\"\ncolocate = [\"a\"]\n",
               "weaver.toml:3: [serviceweaver] colocate must be an array of arrays of component "
               "names (item 1 is a string)");
    expect_err("[serviceweaver]\nbinary = \"x\"\ncolocate = [[\"a\"], [1]]\n",
               "weaver.toml:3: [serviceweaver] colocate must be an array of strings (item 1 is "
               "an integer)");
    expect_err("[serviceweaver]\nbinary = \"x\"\ncolocate = [[\"a\", \"b\"],\n [\"c\", \"a\"]]\n",
               "weaver.toml:4: [serviceweaver] colocate: component \"a\" placed multiple times; "
               "list each component in at most one group");
    expect_err("[serviceweaver]\nbinary = \"x\"\ncolocate = [[\"a\", \"a\"]]\n",
               "weaver.toml:3: [serviceweaver] colocate: component \"a\" placed multiple times*");
    expect_err("[serviceweaver]\nbinary = \"x\"\nrollout = \"5 minutes\"\n",
               "weaver.toml:3: [serviceweaver] rollout \"5 minutes\" is not a valid duration; "
               "write e.g. \"30s\", \"5m\" or \"1h30m\"");
    expect_err("[serviceweaver]\nbinary = \"x\"\nrollout = -5\n",
               "weaver.toml:3: [serviceweaver] rollout must not be negative");
    expect_err("[serviceweaver]\nbinary = \"x\"\nrollout = 1.5\n",
               "weaver.toml:3: [serviceweaver] rollout must be a duration string like \"5m\" or "
               "an integer of nanoseconds, not a float");
    expect_err("title = \"x\"\n[serviceweaver]\nbinary = \"x\"\n",
               "weaver.toml:1: top-level key \"title\" is not in a section; move it under a "
               "[section] header such as [serviceweaver]");
    expect_err("[serviceweaver]\nbinary = \"x\"\nargs = [\"a\\u0000\"]\n",
               "weaver.toml:3: [serviceweaver] args item 1 must not contain NUL characters");
    expect_err("[docker]\n[serviceweaver]\nbinary = \"x\"\n[docker.listeners.\"a\\u0000\"]\n",
               "weaver.toml:4: [docker] listeners: names must not contain NUL characters");
    expect_err("[serviceweaver]\nbinary = \"x\"\nbinary = \"y\"\n",
               "weaver.toml:3: duplicate key binary (first defined on line 2)");
}

static void test_docker_errors(void **state)
{
    (void)state;
#define APP "[serviceweaver]\nbinary = \"x\"\n"
    expect_err(APP "[docker]\nreplica = 2\n",
               "weaver.toml:4: [docker] unknown key \"replica\" (valid keys: replicas, "
               "listeners, groups)");
    expect_err(APP "[docker]\n[\"github.com/ServiceWeaver/weaver/docker\"]\n",
               "weaver.toml:4: conflicting sections \"docker\" and "
               "\"github.com/ServiceWeaver/weaver/docker\"; keep only one of them");
    expect_err(APP "[docker]\nreplicas = \"2\"\n",
               "weaver.toml:4: [docker] replicas must be an integer, not a string");
    expect_err(APP "[docker]\nreplicas = 0\n",
               "weaver.toml:4: [docker] replicas must be between 1 and 64, not 0");
    expect_err(APP "[docker]\nreplicas = 65\n",
               "weaver.toml:4: [docker] replicas must be between 1 and 64, not 65");
    expect_err(APP "[\"github.com/ServiceWeaver/weaver/docker\"]\nreplicas = -1\n",
               "weaver.toml:4: [\"github.com/ServiceWeaver/weaver/docker\"] replicas must be "
               "between 1 and 64, not -1");
    expect_err(APP "[docker]\nlisteners = [\"a\"]\n",
               "weaver.toml:4: [docker] listeners must be a table, not an array");
    expect_err(APP "[docker]\nlisteners.a = \"localhost:1\"\n",
               "weaver.toml:4: [docker] listeners.a must be a table like {address = "
               "\"host:port\"}, not a string");
    expect_err(APP "[docker]\nlisteners.a = {}\n",
               "weaver.toml:4: [docker] listeners.a has no address; write listeners.a = "
               "{address = \"host:port\"}");
    expect_err(APP "[docker]\nlisteners.a = {address = \"x:1\", port = 2}\n",
               "weaver.toml:4: [docker] unknown key \"port\" in listeners.a (valid keys: address)");
    expect_err(APP "[docker]\nlisteners.a = {address = 80}\n",
               "weaver.toml:4: [docker] listeners.a.address must be a string, not an integer");
    const char *bad[] = {"localhost", "localhost:", "localhost:65536", "localhost:http",
                         "::1:80",    "[::1]80",    "[]:80",           "a b:1",
                         ":123456",   "",           "host:-1"};
    for (size_t i = 0; i < WD_ARRAY_LEN(bad); i++) {
        char *in = xasprintf(APP "[docker.listeners.web]\naddress = \"%s\"\n", bad[i]);
        char *want = xasprintf("weaver.toml:4: [docker] listeners.web.address \"%s\" is not "
                               "host:port (port 0-65535); write e.g. \"localhost:9000\" or "
                               "\":9000\"",
                               bad[i]);
        expect_err(in, want);
        free(in);
        free(want);
    }
    expect_err(APP "[docker]\ngroups = 1\n",
               "weaver.toml:4: [docker] groups must be a table, not an integer");
    expect_err(APP "[docker]\ngroups.\"a/B\" = 3\n",
               "weaver.toml:4: [docker] groups.\"a/B\" must be a table like {replicas = N}, not an "
               "integer");
    expect_err(APP "[docker]\ngroups.\"a/B\" = {replicas = 100}\n",
               "weaver.toml:4: [docker] groups.\"a/B\".replicas must be between 1 and 64, not 100");
    expect_err(APP "[docker]\ngroups.\"a/B\" = {replica = 1}\n",
               "weaver.toml:4: [docker] unknown key \"replica\" in groups.\"a/B\" (valid keys: "
               "replicas)");
    expect_err(APP "[docker]\nreplicas = 1\nREPLICAS = 2\n",
               "weaver.toml:5: [docker] key \"REPLICAS\" repeats \"replicas\" (line 4); keep one");
    expect_err(APP "[docker]\nlisteners.\"a\\nb\" = {address = \"x\\ty\"}\n",
               "weaver.toml:4: [docker] listeners.\"a\\u000ab\".address \"x\\u0009y\" is not "
               "host:port (port 0-65535); write e.g. \"localhost:9000\" or \":9000\"");
    expect_err(APP "[docker]\n\"a\\nb\" = 1\n",
               "weaver.toml:4: [docker] unknown key \"a\\u000ab\" (valid keys: replicas, "
               "listeners, groups)");
    expect_err(APP "[docker]\nlisteners.\"a.b\" = {}\n",
               "weaver.toml:4: [docker] listeners.\"a.b\" has no address; write "
               "listeners.\"a.b\" = {address = \"host:port\"}");
    expect_err(APP "docker = 1\n", "weaver.toml:3: [serviceweaver] unknown key \"docker\"*");
#undef APP
}

static void test_duration(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int64_t ns;
    } ok[] = {
        {"0", 0},
        {"5m", 300000000000LL},
        {"1h30m", 5400000000000LL},
        {"300ms", 300000000LL},
        {"1.5s", 1500000000LL},
        {".5s", 500000000LL},
        {"1.s", 1000000000LL},
        {"+2s", 2000000000LL},
        {"1us", 1000},
        {"1\xc2\xb5s", 1000},
        {"1\xce\xbcs", 1000},
        {"7ns", 7},
        {"1h1m1s1ms1us1ns", 3661001001001LL},
        {"0.000000001s", 1},
        {"0.1234567891234567891234s", 123456789},
        {"2562047h", 2562047LL * 3600 * 1000000000LL},
    };
    for (size_t i = 0; i < WD_ARRAY_LEN(ok); i++) {
        int64_t v = -1;
        if (wd_config_parse_duration(ok[i].in, &v) != 0 || v != ok[i].ns)
            fail_msg("duration %s: got %lld", ok[i].in, (long long)v);
    }
    const char *bad[] = {"", "5", "-1s", "1x", "m", "1.5", "s1", ".s", "1hh", "3000000h",
                         "99999999999999999999ns", "1 s", "1h-1m"};
    for (size_t i = 0; i < WD_ARRAY_LEN(bad); i++) {
        int64_t v = 42;
        if (wd_config_parse_duration(bad[i], &v) != -EINVAL || v != 42)
            fail_msg("duration %s: accepted", bad[i]);
    }
    assert_int_equal(wd_config_parse_duration(NULL, &(int64_t){0}), -EINVAL);
}

static char *write_tmp(const char *dir, const char *name, const void *data, size_t len)
{
    char *p = xasprintf("%s/%s", dir, name);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
    return p;
}

static void test_load_files(void **state)
{
    (void)state;
    char dir[] = "/tmp/wd-test-config.XXXXXX";
    assert_non_null(mkdtemp(dir));
    struct wd_config *c = NULL;
    struct wd_error *err = NULL;

    const char *toml = "[serviceweaver]\nbinary = \"../bin/app\"\n";
    char *cfg = write_tmp(dir, "weaver.toml", toml, strlen(toml));
    assert_int_equal(wd_config_load(cfg, &c, &err), 0);
    assert_string_equal(c->path, cfg);
    assert_string_equal(c->binary, "/tmp/bin/app"); /* dir is /tmp/wd-test-config.XXXXXX */
    wd_config_free(c);

    /* relative config path: path and binary become absolute */
    char *cwd = getcwd(NULL, 0);
    assert_int_equal(chdir(dir), 0);
    assert_int_equal(wd_config_load("./weaver.toml", &c, &err), 0);
    assert_string_equal(c->path, cfg);
    wd_config_free(c);

    /* an ELF binary gives a default config */
    const char elf[] = "\x7f" "ELF\x02\x01\x01";
    char *bin = write_tmp(dir, "myapp", elf, sizeof elf - 1);
    assert_int_equal(wd_config_load("myapp", &c, &err), 0);
    assert_null(c->path);
    assert_string_equal(c->binary, bin);
    assert_string_equal(c->name, "myapp");
    assert_int_equal(c->replicas, 1);
    assert_int_equal(c->nsections, 0);
    wd_config_free(c);
    assert_int_equal(chdir(cwd), 0);
    free(cwd);

    /* errors carry the path as given */
    char *missing = xasprintf("%s/nope.toml", dir);
    assert_int_equal(wd_config_load(missing, &c, &err), -ENOENT);
    char *msg = xasprintf("%s: cannot open config file: No such file or directory", missing);
    assert_string_equal(err->msg, msg);
    free(msg);
    wd_err_free(&err);

    const char *broken = "[serviceweaver]\nbinary = x\n";
    char *bad = write_tmp(dir, "bad.toml", broken, strlen(broken));
    assert_int_equal(wd_config_load(bad, &c, &err), -EINVAL);
    msg = xasprintf("%s:2: invalid value 'x' (strings must be quoted)", bad);
    assert_string_equal(err->msg, msg);
    free(msg);
    wd_err_free(&err);

    size_t big = WD_TOML_MAX_FILE + 10;
    char *text = xmalloc(big);
    memset(text, '#', big);
    char *huge = write_tmp(dir, "huge.toml", text, big);
    free(text);
    assert_int_equal(wd_config_load(huge, &c, &err), -EMSGSIZE);
    msg = xasprintf("%s: config file is larger than the 4 MiB limit", huge);
    assert_string_equal(err->msg, msg);
    free(msg);
    wd_err_free(&err);

    assert_int_equal(wd_config_load(dir, &c, &err), -EISDIR);
    wd_err_free(&err);

    const char *tiny = "[a]";
    char *small = write_tmp(dir, "s.toml", tiny, 3); /* shorter than the ELF magic */
    assert_int_equal(wd_config_load(small, &c, &err), -EINVAL);
    wd_err_free(&err);

    char *files[] = {cfg, bin, bad, huge, small};
    for (size_t i = 0; i < WD_ARRAY_LEN(files); i++) {
        unlink(files[i]);
        free(files[i]);
    }
    free(missing);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full),         cmocka_unit_test(test_defaults_and_long_forms),
        cmocka_unit_test(test_app_errors),   cmocka_unit_test(test_docker_errors),
        cmocka_unit_test(test_duration),     cmocka_unit_test(test_load_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
