#include "tests/unit/wd_test.h"
#include "engine/weaver/config.h"
#include "engine/base/error.h"
#include "engine/weaver/toml.h"
#include "engine/base/util.h"

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

/* Parsing s as the file path must fail with -errnum and message want; a trailing '*' in want
 * matches a prefix. */
static void expect_err_in(const char *path, const char *s, int errnum, const char *want)
{
    struct wd_config *c = NULL;
    struct wd_error *err = NULL;
    int r = wd_config_parse(s, strlen(s), path, &c, &err);
    if (r == 0)
        fail_msg("config succeeded, want error %s\ninput:\n%s", want, s);
    assert_null(c);
    assert_null(strchr(err->msg, '\n'));
    size_t n = strlen(want);
    if (want[n - 1] == '*' ? strncmp(err->msg, want, n - 1) != 0 : strcmp(err->msg, want) != 0)
        fail_msg("got  %s\nwant %s", err->msg, want);
    if (r != -errnum)
        fail_msg("got errno %d, want %d (%s)", -r, errnum, err->msg);
    assert_int_equal(err->errnum, errnum);
    wd_err_free(&err);
}

/* Must fail with EINVAL and message want ("weaver.toml:..."); a trailing '*' matches a prefix. */
static void expect_err(const char *s, const char *want)
{
    expect_err_in("weaver.toml", s, EINVAL, want);
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
               "listeners, groups, env, env_file, host_ports, volumes, secrets, networks, "
               "extra_hosts, memory, cpus, pids, mtls, metrics, drain, rollout_timeout)");
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
               "replicas, env, env_file, memory, cpus, pids)");
    expect_err(APP "[docker]\nreplicas = 1\nREPLICAS = 2\n",
               "weaver.toml:5: [docker] key \"REPLICAS\" repeats \"replicas\" (line 4); keep one");
    expect_err(APP "[docker]\nlisteners.\"a\\nb\" = {address = \"x\\ty\"}\n",
               "weaver.toml:4: [docker] listeners.\"a\\u000ab\".address \"x\\u0009y\" is not "
               "host:port (port 0-65535); write e.g. \"localhost:9000\" or \":9000\"");
    expect_err(APP "[docker]\n\"a\\nb\" = 1\n",
               "weaver.toml:4: [docker] unknown key \"a\\u000ab\" (valid keys: replicas, "
               "listeners, groups, env, env_file, host_ports, volumes, secrets, networks, "
               "extra_hosts, memory, cpus, pids, mtls, metrics, drain, rollout_timeout)");
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


/* [docker] drain and rollout_timeout: durations of a rollout, with their defaults. */
static void test_rollout_keys(void **state)
{
    (void)state;
    struct wd_config *c = parse_ok("[serviceweaver]\nbinary = \"x\"\n");
    assert_int_equal(c->drain_ms, WD_CONFIG_DEFAULT_DRAIN_MS);
    assert_int_equal(c->rollout_timeout_ms, WD_CONFIG_DEFAULT_ROLLOUT_TIMEOUT_MS);
    wd_config_free(c);
    c = parse_ok("[serviceweaver]\nbinary = \"x\"\nrollout = \"4s\"\n[docker]\n"
                 "drain = \"1m30s\"\nrollout_timeout = \"45s\"\n");
    assert_int_equal(c->drain_ms, 90000);
    assert_int_equal(c->rollout_timeout_ms, 45000);
    assert_int_equal(c->rollout_nanos, 4000000000LL);
    wd_config_free(c);
    c = parse_ok("[serviceweaver]\nbinary = \"x\"\n[docker]\ndrain = \"0s\"\n");
    assert_int_equal(c->drain_ms, 0);
    wd_config_free(c);
    expect_err("[serviceweaver]\nbinary = \"x\"\n[docker]\ndrain = 10\n",
               "weaver.toml:4: [docker] drain must be a duration string like \"10s\", not an "
               "integer");
    expect_err("[serviceweaver]\nbinary = \"x\"\n[docker]\ndrain = \"10 s\"\n",
               "weaver.toml:4: [docker] drain \"10 s\" is not a valid duration; write e.g. "
               "\"10s\"");
    expect_err("[serviceweaver]\nbinary = \"x\"\n[docker]\nrollout_timeout = \"500ms\"\n",
               "weaver.toml:4: [docker] rollout_timeout: at least \"1s\"");
    expect_err("[serviceweaver]\nbinary = \"x\"\n[docker]\ndrain = \"25h\"\n",
               "weaver.toml:4: [docker] drain: at most \"24h\"");
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
    assert_true(c->res.pids == WD_CONFIG_DEFAULT_PIDS);
    assert_true(c->res.memory_bytes == 0 && c->res.nano_cpus == 0);
    assert_int_equal(c->docker_env.n, 0);
    assert_ptr_equal(wd_config_group_env(c, "x/Y"), &c->docker_env);
    assert_true(wd_config_group_res(c, "x/Y").pids == WD_CONFIG_DEFAULT_PIDS);
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

/* ---------- [docker] env, env_file, host_ports, volumes, secrets, networks, extra_hosts,
 * memory, cpus, pids ---------- */

/* A scratch directory for env files, bind sources and secrets; removed by rm_tree. */
static char *make_tmp_dir(void)
{
    char tmpl[] = "/tmp/wd-test-config.XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    return xstrdup(tmpl);
}

static void put_file(const char *dir, const char *name, const char *text)
{
    free(write_tmp(dir, name, text, strlen(text)));
}

static void rm_tree(char *dir)
{
    char *cmd = xasprintf("rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    free(dir);
}

static struct wd_config *parse_in(const char *dir, const char *s)
{
    char *path = xasprintf("%s/weaver.toml", dir);
    struct wd_config *c = NULL;
    struct wd_error *err = NULL;
    int r = wd_config_parse(s, strlen(s), path, &c, &err);
    if (r != 0)
        fail_msg("config failed: %s\ninput:\n%s", err ? err->msg : "?", s);
    free(path);
    return c;
}

/* want with the scratch directory in place of every {D}. */
static void expect_err_dir(const char *dir, const char *s, int errnum, const char *want)
{
    char *path = xasprintf("%s/weaver.toml", dir);
    struct wd_buf b = {0};
    for (const char *p = want; *p;) {
        const char *d = strstr(p, "{D}");
        size_t n = d ? (size_t)(d - p) : strlen(p);
        wd_buf_append(&b, p, n);
        if (d == NULL)
            break;
        wd_buf_append(&b, dir, strlen(dir));
        p = d + 3;
    }
    char *w = wd_buf_steal_str(&b);
    expect_err_in(path, s, errnum, w);
    free(w);
    free(path);
}

static void assert_strv(const struct wd_strv *v, const char *const *want, size_t n)
{
    if (v->n != n)
        fail_msg("got %zu entries, want %zu", v->n, n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(v->v[i], want[i]);
    if (n > 0)
        assert_null(v->v[n]);
    else
        assert_null(v->v);
}

#define APP "[serviceweaver]\nbinary = \"x\"\n"

static void test_docker_new_keys(void **state)
{
    (void)state;
    char *dir = make_tmp_dir();
    char *sub = xasprintf("%s/keys", dir);
    assert_int_equal(mkdir(sub, 0755), 0);
    put_file(dir, "db.password", "hunter2\n");
    put_file(dir, "app.env", "# defaults\nA=from-file\nB=b\n");
    struct wd_config *c = parse_in(dir, APP "[docker]\n"
                                            "env_file = \"app.env\"\n"
                                            "env = {A = \"from-toml\", C = \"x=y z\"}\n"
                                            "host_ports = [5432, 3306]\n"
                                            "volumes = [\"./keys/:/keys:ro\", "
                                            "\"data:/var/lib/app\", "
                                            "\"/tmp/../tmp/:/scratch//host-tmp/:rw\"]\n"
                                            "secrets = {db_password = \"./sub/../db.password\"}\n"
                                            "networks = [\"dbnet\", \"other.net-1\"]\n"
                                            "extra_hosts = {\"db.local\" = \"10.1.2.3\", v6 = "
                                            "\"::1\", gw = \"host-gateway\"}\n"
                                            "memory = \"256m\"\n"
                                            "cpus = 0.5\n"
                                            "pids = 512\n");
    const char *env[] = {"A=from-toml", "B=b", "C=x=y z"};
    assert_strv(&c->docker_env, env, WD_ARRAY_LEN(env));
    assert_int_equal(c->nhost_ports, 2);
    assert_int_equal(c->host_ports[0], 5432);
    assert_int_equal(c->host_ports[1], 3306);
    assert_int_equal(c->nvolumes, 3);
    assert_true(c->volumes[0].bind);
    assert_string_equal(c->volumes[0].source, sub);
    assert_string_equal(c->volumes[0].target, "/keys");
    assert_true(c->volumes[0].read_only);
    assert_int_equal(c->volumes[0].line, 7);
    assert_false(c->volumes[1].bind);
    assert_string_equal(c->volumes[1].source, "data");
    assert_string_equal(c->volumes[1].target, "/var/lib/app");
    assert_false(c->volumes[1].read_only);
    assert_true(c->volumes[2].bind);
    assert_string_equal(c->volumes[2].source, "/tmp");
    assert_string_equal(c->volumes[2].target, "/scratch/host-tmp");
    assert_false(c->volumes[2].read_only);
    assert_int_equal(c->nsecrets, 1);
    assert_string_equal(c->secrets[0].name, "db_password");
    char *secret = xasprintf("%s/db.password", dir);
    assert_string_equal(c->secrets[0].path, secret);
    assert_int_equal(c->secrets[0].line, 8);
    const char *nets[] = {"dbnet", "other.net-1"};
    assert_strv(&c->networks, nets, 2);
    const char *hosts[] = {"db.local:10.1.2.3", "v6:::1", "gw:host-gateway"};
    assert_strv(&c->extra_hosts, hosts, 3);
    assert_true(c->res.memory_bytes == 256LL << 20);
    assert_true(c->res.nano_cpus == 500000000);
    assert_true(c->res.pids == 512);
    wd_config_free(c);

    /* volumes' targets may not name "..", but ".." in a bind source is resolved */
    expect_err_dir(dir, APP "[docker]\nvolumes = [\"/tmp:/scratch/../host-tmp:rw\"]\n", EINVAL,
                   "{D}/weaver.toml:4: [docker] volumes: target \"/scratch/../host-tmp\" must "
                   "not contain \"..\"; write the path without it");

    /* defaults: no [docker] section, and one without the new keys */
    c = parse_in(dir, APP);
    assert_int_equal(c->docker_env.n, 0);
    assert_null(c->docker_env.v);
    assert_int_equal(c->nhost_ports, 0);
    assert_int_equal(c->nvolumes, 0);
    assert_int_equal(c->nsecrets, 0);
    assert_int_equal(c->networks.n, 0);
    assert_int_equal(c->extra_hosts.n, 0);
    assert_true(c->res.memory_bytes == 0 && c->res.nano_cpus == 0);
    assert_true(c->res.pids == WD_CONFIG_DEFAULT_PIDS);
    wd_config_free(c);
    c = parse_in(dir, APP "[docker]\nreplicas = 2\nhost_ports = []\nenv = {}\n");
    assert_true(c->res.pids == WD_CONFIG_DEFAULT_PIDS);
    assert_int_equal(c->nhost_ports, 0);
    assert_int_equal(c->docker_env.n, 0);
    wd_config_free(c);

    /* the long section name, mixed-case keys, ~ for $HOME */
    char *home = getenv("HOME") ? xstrdup(getenv("HOME")) : NULL;
    setenv("HOME", dir, 1);
    c = parse_in(dir, APP "[\"github.com/ServiceWeaver/weaver/docker\"]\n"
                          "Volumes = [\"~/keys:/k\", \"~:/home-dir\"]\n"
                          "SECRETS.s1 = \"~/db.password\"\n"
                          "ENV_FILE = [\"~/app.env\"]\n");
    assert_string_equal(c->volumes[0].source, sub);
    assert_string_equal(c->volumes[1].source, dir);
    assert_string_equal(c->secrets[0].path, secret);
    assert_int_equal(c->docker_env.n, 2);
    wd_config_free(c);
    setenv("HOME", "relative", 1);
    expect_err_dir(dir, APP "[docker]\nvolumes = [\"~/keys:/k\"]\n", EINVAL,
                   "{D}/weaver.toml:4: [docker] volumes: bind source \"~/keys\": ~ stands for "
                   "$HOME, which is not set to an absolute path; write the full path");
    unsetenv("HOME");
    expect_err_dir(dir, APP "[docker]\nenv_file = \"~/app.env\"\n", EINVAL,
                   "{D}/weaver.toml:4: [docker] env_file \"~/app.env\": ~ stands for $HOME, "
                   "which is not set to an absolute path; write the full path");
    if (home != NULL)
        setenv("HOME", home, 1);
    free(home);

    free(secret);
    free(sub);
    rm_tree(dir);
}

static void test_docker_env_merge(void **state)
{
    (void)state;
    char *dir = make_tmp_dir();
    put_file(dir, "a.env", "A=a1\nB=b1\nA=a2\n");
    put_file(dir, "b.env", "B=b2\nD=d2\n");
    put_file(dir, "g.env", "G=g1\nE=g-file\n");
    /* groups come first in the document, and env before env_file: the order of keys does not
     * matter, the order of the merge is fixed */
    struct wd_config *c = parse_in(
        dir, APP "colocate = [[\"x/One\", \"x/Two\"]]\n"
                 "[docker]\n"
                 "groups.\"x/Two\" = {replicas = 3, env = {E = \"g-toml\", A = \"ga\"}, "
                 "env_file = \"g.env\", memory = 100000000, pids = 64}\n"
                 "groups.\"x/Lone\" = {cpus = 4}\n"
                 "groups.\"x/Bare\" = {}\n"
                 "env = {B = \"toml\", E = \"e\"}\n"
                 "env_file = [\"a.env\", \"b.env\"]\n"
                 "memory = \"1g\"\n"
                 "cpus = 2\n");
    const char *sec[] = {"A=a2", "B=toml", "D=d2", "E=e"};
    assert_strv(&c->docker_env, sec, WD_ARRAY_LEN(sec));
    assert_int_equal(c->ngroups, 3);
    const char *two[] = {"A=ga", "B=toml", "D=d2", "E=g-toml", "G=g1"};
    assert_strv(&c->groups[0].env, two, WD_ARRAY_LEN(two));
    assert_int_equal(c->groups[0].replicas, 3);
    assert_true(c->groups[0].res.memory_bytes == 100000000);
    assert_true(c->groups[0].res.nano_cpus == 2000000000);
    assert_true(c->groups[0].res.pids == 64);
    assert_strv(&c->groups[1].env, sec, WD_ARRAY_LEN(sec));
    assert_true(c->groups[1].res.memory_bytes == 1LL << 30);
    assert_true(c->groups[1].res.nano_cpus == 4000000000LL);
    assert_true(c->groups[1].res.pids == WD_CONFIG_DEFAULT_PIDS);
    assert_strv(&c->groups[2].env, sec, WD_ARRAY_LEN(sec));
    assert_int_equal(c->groups[2].replicas, 1);

    /* lookups: by the component named, by a component colocated with it, else the section */
    assert_ptr_equal(wd_config_group_env(c, "x/Two"), &c->groups[0].env);
    assert_ptr_equal(wd_config_group_env(c, "x/One"), &c->groups[0].env);
    assert_ptr_equal(wd_config_group_env(c, "x/Lone"), &c->groups[1].env);
    assert_ptr_equal(wd_config_group_env(c, "x/Other"), &c->docker_env);
    assert_ptr_equal(wd_config_group_env(c, NULL), &c->docker_env);
    struct wd_resources r = wd_config_group_res(c, "x/One");
    assert_true(r.memory_bytes == 100000000 && r.nano_cpus == 2000000000 && r.pids == 64);
    r = wd_config_group_res(c, "x/Other");
    assert_true(r.memory_bytes == 1LL << 30 && r.nano_cpus == 2000000000 &&
                r.pids == WD_CONFIG_DEFAULT_PIDS);
    r = wd_config_group_res(c, NULL);
    assert_true(r.memory_bytes == 1LL << 30);
    wd_config_free(c);

    /* a group's own env_file and env without any in the section */
    c = parse_in(dir, APP "[docker.groups.\"x/A\"]\nenv_file = [\"b.env\", \"a.env\"]\n"
                          "env.Z = \"z\"\n");
    assert_int_equal(c->docker_env.n, 0);
    const char *own[] = {"B=b1", "D=d2", "A=a2", "Z=z"};
    assert_strv(&c->groups[0].env, own, WD_ARRAY_LEN(own));
    wd_config_free(c);
    rm_tree(dir);
}

static void test_env_file_format(void **state)
{
    (void)state;
    setenv("WD_TEST_FROM_ENV", "inherited value", 1);
    unsetenv("WD_TEST_UNSET");
    const char text[] = "\xef\xbb\xbf# comment\n"
                        "\n"
                        "   \t\n"
                        "A=1\r\n"
                        "  B=with spaces  \n"
                        "\t# indented comment\n"
                        "C=\"quoted\" $NOT_EXPANDED\n"
                        "D=\n"
                        "E=x=y\r\n"
                        "WD_TEST_FROM_ENV\n"
                        "WD_TEST_UNSET\r\n"
                        "#F=2\n"
                        "G=last";
    struct wd_strv out = {0};
    struct wd_error *err = NULL;
    assert_int_equal(wd_parse_env_file(text, sizeof text - 1, "/x/app.env", &out, &err), 0);
    const char *want[] = {"A=1",         "B=with spaces  ", "C=\"quoted\" $NOT_EXPANDED",
                          "D=",          "E=x=y",           "WD_TEST_FROM_ENV=inherited value",
                          "G=last"};
    assert_strv(&out, want, WD_ARRAY_LEN(want));
    /* appends, no merging */
    assert_int_equal(wd_parse_env_file("A=2\n", 4, "/x/b.env", &out, &err), 0);
    assert_int_equal(out.n, WD_ARRAY_LEN(want) + 1);
    assert_string_equal(out.v[out.n - 1], "A=2");
    assert_int_equal(wd_parse_env_file("", 0, "/x/empty.env", &out, &err), 0);
    assert_int_equal(out.n, WD_ARRAY_LEN(want) + 1);

    static const struct {
        const char *text;
        size_t len;
        const char *want;
    } bad[] = {
        {"A=1\n=x\n", 7, "/x/e.env:2: \"=x\" is not KEY=VALUE (the name is empty)"},
        {"A B=1\n", 6, "/x/e.env:1: \"A B=1\" is not KEY=VALUE (the name has white space)"},
        {"A =1\n", 5, "/x/e.env:1: \"A =1\" is not KEY=VALUE (the name has white space)"},
        {"\n\nA \n", 5, "/x/e.env:3: \"A \" is not KEY=VALUE (the name has white space)"},
        {"A\r\r\n", 4, "/x/e.env:1: \"A\\u000d\" is not KEY=VALUE (the name has white space)"},
        {"A=1\nB=\0x\n", 8, "/x/e.env:2: the line has a NUL character; an env file is text"},
        {"  =\n", 4, "/x/e.env:1: \"=\" is not KEY=VALUE (the name is empty)"},
    };
    for (size_t i = 0; i < WD_ARRAY_LEN(bad); i++) {
        size_t before = out.n;
        assert_int_equal(wd_parse_env_file(bad[i].text, bad[i].len, "/x/e.env", &out, &err),
                         -EINVAL);
        assert_string_equal(err->msg, bad[i].want);
        assert_int_equal(err->errnum, EINVAL);
        assert_int_equal(out.n, before); /* untouched on error */
        wd_err_free(&err);
    }
    for (size_t i = 0; i < out.n; i++)
        free(out.v[i]);
    free(out.v);
    unsetenv("WD_TEST_FROM_ENV");
}

static void test_docker_file_errors(void **state)
{
    (void)state;
    char *dir = make_tmp_dir();
    char *sub = xasprintf("%s/adir", dir);
    assert_int_equal(mkdir(sub, 0755), 0);
    put_file(dir, "bad.env", "# ok\nA=1\nA B=1\n");
    put_file(dir, "g.env", "=x\n");
    put_file(dir, "s.txt", "secret");

    expect_err_dir(dir, APP "[docker]\nenv_file = \"x.env\"\n", ENOENT,
                   "{D}/weaver.toml:4: [docker] env_file \"x.env\": cannot read {D}/x.env: No "
                   "such file or directory; create it or fix the path (relative to "
                   "{D}/weaver.toml)");
    expect_err_dir(dir, APP "[docker]\nenv_file = [\"bad.env\",\n \"missing.env\"]\n", EINVAL,
                   "{D}/bad.env:3: [docker] env_file: \"A B=1\" is not KEY=VALUE (the name has "
                   "white space)");
    expect_err_dir(dir, APP "[docker]\nenv_file = [\"g.env\",\n \"missing.env\"]\n", EINVAL,
                   "{D}/g.env:1: [docker] env_file: \"=x\" is not KEY=VALUE (the name is "
                   "empty)");
    expect_err_dir(dir, APP "[docker]\nenv_file = [\"s.txt\",\n \"missing.env\"]\n", ENOENT,
                   "{D}/weaver.toml:5: [docker] env_file \"missing.env\": cannot read "
                   "{D}/missing.env: No such file or directory; create it or fix the path "
                   "(relative to {D}/weaver.toml)");
    expect_err_dir(dir, APP "[docker]\ngroups.\"a/B\" = {env_file = \"g.env\"}\n", EINVAL,
                   "{D}/g.env:1: [docker] groups.\"a/B\".env_file: \"=x\" is not KEY=VALUE (the "
                   "name is empty)");
    expect_err_dir(dir, APP "[docker]\nenv_file = \"adir\"\n", EISDIR,
                   "{D}/weaver.toml:4: [docker] env_file \"adir\": cannot read {D}/adir: Is a "
                   "directory; give a readable file");
    expect_err_dir(dir, APP "[docker]\nenv_file = \"s.txt/x\"\n", ENOTDIR,
                   "{D}/weaver.toml:4: [docker] env_file \"s.txt/x\": cannot read "
                   "{D}/s.txt/x: Not a directory; create it or fix the path (relative to "
                   "{D}/weaver.toml)");

    expect_err_dir(dir, APP "[docker]\nvolumes = [\"./keys:/keys\"]\n", ENOENT,
                   "{D}/weaver.toml:4: [docker] volumes: bind source ./keys ({D}/keys) does not "
                   "exist; create it or fix the path (relative to {D}/weaver.toml)");
    expect_err_dir(dir, APP "[docker]\nvolumes = [\"/nonexistent/wd-test:/keys\"]\n", ENOENT,
                   "{D}/weaver.toml:4: [docker] volumes: bind source /nonexistent/wd-test "
                   "(/nonexistent/wd-test) does not exist; create it or fix the path (relative "
                   "to {D}/weaver.toml)");
    expect_err_dir(dir, APP "[docker]\nvolumes = [\"./a dir:/keys\"]\n", ENOENT,
                   "{D}/weaver.toml:4: [docker] volumes: bind source \"./a dir\" (\"{D}/a "
                   "dir\") does not exist; create it or fix the path (relative to "
                   "{D}/weaver.toml)");

    expect_err_dir(dir, APP "[docker]\nsecrets = {db = \"adir\"}\n", EISDIR,
                   "{D}/weaver.toml:4: [docker] secrets.db: {D}/adir is a directory; a secret "
                   "must be a file");
    expect_err_dir(dir, APP "[docker]\nsecrets.db = \"nope\"\n", ENOENT,
                   "{D}/weaver.toml:4: [docker] secrets.db: {D}/nope does not exist; create it "
                   "or fix the path (relative to {D}/weaver.toml)");
    expect_err_dir(dir, APP "[docker]\nsecrets.db = \"/dev/null\"\n", EINVAL,
                   "{D}/weaver.toml:4: [docker] secrets.db: /dev/null is not a regular file; a "
                   "secret must be a file");
    expect_err_dir(dir, APP "[docker]\nsecrets = {db = \"s.txt\"}\nvolumes = "
                        "[\"/tmp:/run/secrets/db\"]\n",
                   EINVAL,
                   "{D}/weaver.toml:5: [docker] volumes: target /run/secrets/db is where the "
                   "secret db is mounted; choose another path");
    if (geteuid() != 0) { /* root reads anything */
        char *locked = xasprintf("%s/s.txt", dir);
        assert_int_equal(chmod(locked, 0), 0);
        expect_err_dir(dir, APP "[docker]\nsecrets = {db = \"s.txt\"}\n", EACCES,
                       "{D}/weaver.toml:4: [docker] secrets.db: cannot read {D}/s.txt: "
                       "Permission denied; make it readable by this user");
        expect_err_dir(dir, APP "[docker]\nenv_file = \"s.txt\"\n", EACCES,
                       "{D}/weaver.toml:4: [docker] env_file \"s.txt\": cannot read "
                       "{D}/s.txt: Permission denied; give a readable file");
        free(locked);
    }

    /* an env file over 1 MiB */
    size_t big = (1u << 20) + 1;
    char *text = xmalloc(big + 1);
    memset(text, '#', big);
    text[big] = 0;
    put_file(dir, "big.env", text);
    free(text);
    expect_err_dir(dir, APP "[docker]\nenv_file = \"big.env\"\n", EMSGSIZE,
                   "{D}/weaver.toml:4: [docker] env_file \"big.env\": {D}/big.env is larger "
                   "than 1 MiB; an env file is a short list of KEY=VALUE lines");
    free(sub);
    rm_tree(dir);
}

static void test_docker_new_errors(void **state)
{
    (void)state;
    /* env */
    expect_err(APP "[docker]\nenv = [\"A=1\"]\n",
               "weaver.toml:4: [docker] env must be a table like {KEY = \"value\"}, not an "
               "array");
    expect_err(APP "[docker]\nenv = {A = 1}\n",
               "weaver.toml:4: [docker] env.A must be a string, not an integer; quote the value");
    expect_err(APP "[docker]\nenv.\"A B\" = \"1\"\n",
               "weaver.toml:4: [docker] env: \"A B\" is not a variable name (the name has white "
               "space); use a name without '=' or white space");
    expect_err(APP "[docker]\nenv = {\"A=B\" = \"1\"}\n",
               "weaver.toml:4: [docker] env: \"A=B\" is not a variable name (the name has '='); "
               "use a name without '=' or white space");
    expect_err(APP "[docker]\nenv = {\"\" = \"1\"}\n",
               "weaver.toml:4: [docker] env: \"\" is not a variable name (the name is empty); "
               "use a name without '=' or white space");
    expect_err(APP "[docker]\nenv = {\"A\\u0000\" = \"1\"}\n",
               "weaver.toml:4: [docker] env: \"A\" is not a variable name (the name has a NUL "
               "character); use a name without '=' or white space");
    expect_err(APP "[docker]\nenv = {A = \"x\\u0000\"}\n",
               "weaver.toml:4: [docker] env.A must not contain NUL characters");
    expect_err(APP "[docker]\ngroups.\"a/B\".env.X = true\n",
               "weaver.toml:4: [docker] groups.\"a/B\".env.X must be a string, not a boolean; "
               "quote the value");
    expect_err(APP "[docker]\nenv_file = 1\n",
               "weaver.toml:4: [docker] env_file must be a path or an array of paths, not an "
               "integer");
    expect_err(APP "[docker]\nenv_file = [\"a.env\", 2]\n",
               "weaver.toml:4: [docker] env_file must be an array of strings (item 2 is an "
               "integer)");
    expect_err(APP "[docker]\nenv_file = \"\"\n",
               "weaver.toml:4: [docker] env_file is empty; give the path of a file of KEY=VALUE "
               "lines");
    expect_err(APP "[docker]\nenv_file = [\"\"]\n",
               "weaver.toml:4: [docker] env_file item 1 is empty; give the path of a file of "
               "KEY=VALUE lines");
    expect_err(APP "[docker]\nenv_file = \"a\\u0000\"\n",
               "weaver.toml:4: [docker] env_file must not contain NUL characters");

    /* host_ports */
    expect_err(APP "[docker]\nhost_ports = 5432\n",
               "weaver.toml:4: [docker] host_ports must be an array of port numbers, not an "
               "integer");
    expect_err(APP "[docker]\nhost_ports = [5432, \"3306\"]\n",
               "weaver.toml:4: [docker] host_ports must be an array of port numbers (item 2 is "
               "a string)");
    expect_err(APP "[docker]\nhost_ports = [0]\n",
               "weaver.toml:4: [docker] host_ports item 1 must be between 1 and 65535, not 0");
    expect_err(APP "[docker]\nhost_ports = [1, 65536]\n",
               "weaver.toml:4: [docker] host_ports item 2 must be between 1 and 65535, not "
               "65536");
    expect_err(APP "[docker]\nhost_ports = [5432, 80,\n 5432]\n",
               "weaver.toml:5: [docker] host_ports: port 5432 is listed twice; list each port "
               "once");
    expect_err(APP "[docker]\nhost_ports = [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17]\n",
               "weaver.toml:4: [docker] host_ports lists 17 ports; at most 16 are supported");

    /* volumes (no files involved: named volumes and targets) */
    expect_err(APP "[docker]\nvolumes = \"data:/data\"\n",
               "weaver.toml:4: [docker] volumes must be an array of strings, not a string");
    const char *fmt_bad[] = {"data", "data:", ":/data", "data::ro", "a:/b:ro:x", ""};
    for (size_t i = 0; i < WD_ARRAY_LEN(fmt_bad); i++) {
        char *in = xasprintf(APP "[docker]\nvolumes = [\"%s\"]\n", fmt_bad[i]);
        char *want = xasprintf("weaver.toml:4: [docker] volumes: \"%s\" is not "
                               "SOURCE:TARGET[:ro]; write e.g. \"./data:/data\" or "
                               "\"cache:/var/cache:ro\"",
                               fmt_bad[i]);
        expect_err(in, want);
        free(in);
        free(want);
    }
    expect_err(APP "[docker]\nvolumes = [\"data:/data:rx\"]\n",
               "weaver.toml:4: [docker] volumes: \"data:/data:rx\" has the mode \"rx\"; write :ro "
               "(read-only), :rw or nothing (rw)");
    expect_err(APP "[docker]\nvolumes = [\"data:data\"]\n",
               "weaver.toml:4: [docker] volumes: target \"data\" in \"data:data\" must be an "
               "absolute path in the container, like \"/data\"");
    expect_err(APP "[docker]\nvolumes = [\"data:/a/..\"]\n",
               "weaver.toml:4: [docker] volumes: target \"/a/..\" must not contain \"..\"; write "
               "the path without it");
    expect_err(APP "[docker]\nvolumes = [\"data://./\"]\n",
               "weaver.toml:4: [docker] volumes: target \"/\" would cover the whole container; "
               "mount at a directory such as /data");
    const char *ours[][2] = {{"/app", "/app"},
                             {"/app/", "/app"},
                             {"/tmp/x", "/tmp"},
                             {"/weaver-docker-shim", "/weaver-docker-shim"}};
    for (size_t i = 0; i < WD_ARRAY_LEN(ours); i++) {
        char *in = xasprintf(APP "[docker]\nvolumes = [\"data:%s\"]\n", ours[i][0]);
        char *clean = xstrdup(ours[i][0]);
        size_t n = strlen(clean);
        if (n > 1 && clean[n - 1] == '/')
            clean[n - 1] = 0;
        char *want = xasprintf("weaver.toml:4: [docker] volumes: target %s is inside %s, which "
                               "weaver-docker uses (so are /app, /weaver-docker-shim and /tmp); "
                               "choose another path",
                               clean, ours[i][1]);
        expect_err(in, want);
        free(in);
        free(clean);
        free(want);
    }
    /* near misses are fine */
    struct wd_config *c = parse_ok(APP "[docker]\nvolumes = [\"d1:/apps\", \"d2:/tmpx\", "
                                       "\"d3:/srv/app\"]\n");
    assert_int_equal(c->nvolumes, 3);
    wd_config_free(c);
    const char *names_bad[] = {"-data", "_x", "a b", "a/b"};
    for (size_t i = 0; i < WD_ARRAY_LEN(names_bad); i++) {
        char *in = xasprintf(APP "[docker]\nvolumes = [\"%s:/data\"]\n", names_bad[i]);
        char *q = strchr(names_bad[i], ' ') ? xasprintf("\"%s\"", names_bad[i])
                                            : xstrdup(names_bad[i]);
        char *want = xasprintf("weaver.toml:4: [docker] volumes: %s is not a volume name "
                               "(letters, digits, '_', '.', '-', starting with a letter or digit, "
                               "at most 64); start a host path with ./ or /",
                               q);
        expect_err(in, want);
        free(in);
        free(q);
        free(want);
    }
    expect_err(APP "[docker]\nvolumes = [\"~user/x:/data\"]\n",
               "weaver.toml:4: [docker] volumes: bind source ~user/x: only ~ and ~/ (your home "
               "directory) are understood; write the full path");
    char long_name[66];
    memset(long_name, 'v', 65);
    long_name[65] = 0;
    char *in = xasprintf(APP "[docker]\nvolumes = [\"%s:/data\"]\n", long_name);
    char *want = xasprintf("weaver.toml:4: [docker] volumes: %s is not a volume name*", long_name);
    expect_err(in, want);
    free(want);
    free(in);
    long_name[64] = 0;
    in = xasprintf(APP "[docker]\nvolumes = [\"%s:/data\"]\n", long_name);
    c = parse_ok(in);
    assert_string_equal(c->volumes[0].source, long_name);
    wd_config_free(c);
    free(in);
    expect_err(APP "[docker]\nvolumes = [\"a:/data\",\n \"b:/x\",\n \"c:/data/\"]\n",
               "weaver.toml:6: [docker] volumes: target /data is used twice (items 1 and 3); "
               "give each volume its own target");

    /* secrets (names; files are in test_docker_file_errors) */
    expect_err(APP "[docker]\nsecrets = [\"a\"]\n",
               "weaver.toml:4: [docker] secrets must be a table like {NAME = \"path\"}, not an "
               "array");
    expect_err(APP "[docker]\nsecrets.db = 1\n",
               "weaver.toml:4: [docker] secrets.db must be a string (the path of a file), not an "
               "integer");
    expect_err(APP "[docker]\nsecrets.db = \"\"\n",
               "weaver.toml:4: [docker] secrets.db is empty; give the path of the file");
    const char *sec_bad[] = {".", "..", "a/b", "a b", ""};
    for (size_t i = 0; i < WD_ARRAY_LEN(sec_bad); i++) {
        in = xasprintf(APP "[docker]\nsecrets = {\"%s\" = \"x\"}\n", sec_bad[i]);
        want = xasprintf("weaver.toml:4: [docker] secrets: \"%s\" is not a secret name "
                               "(letters, digits, '_', '.', '-'; not \".\" or \"..\"); rename it",
                               sec_bad[i]);
        expect_err(in, want);
        free(in);
        free(want);
    }

    /* networks */
    expect_err(APP "[docker]\nnetworks = \"dbnet\"\n",
               "weaver.toml:4: [docker] networks must be an array of strings, not a string");
    expect_err(APP "[docker]\nnetworks = [\"ok\", \"-bad\"]\n",
               "weaver.toml:4: [docker] networks: \"-bad\" is not a network name (letters, "
               "digits, '_', '.', '-', starting with a letter or digit); use a name from docker "
               "network ls");
    expect_err(APP "[docker]\nnetworks = [\"a\",\n \"b\",\n \"a\"]\n",
               "weaver.toml:6: [docker] networks: \"a\" is listed twice; list each network once");
    expect_err(APP "[docker]\nnetworks = [\"host\"]\n",
               "weaver.toml:4: [docker] networks: \"host\" cannot be joined besides the app's own "
               "network; use a user-defined network (docker network create)");

    /* extra_hosts */
    expect_err(APP "[docker]\nextra_hosts = [\"a:1.2.3.4\"]\n",
               "weaver.toml:4: [docker] extra_hosts must be a table like {\"db.local\" = "
               "\"10.1.2.3\"}, not an array");
    expect_err(APP "[docker]\nextra_hosts.db.local = \"10.1.2.3\"\n",
               "weaver.toml:4: [docker] extra_hosts.db must be a string (an IP address), not a "
               "table; quote host names with dots: extra_hosts = {\"db.local\" = \"10.1.2.3\"}");
    expect_err(APP "[docker]\nextra_hosts = {\"db_local\" = \"10.1.2.3\"}\n",
               "weaver.toml:4: [docker] extra_hosts: \"db_local\" is not a host name (letters, "
               "digits, '.', '-', at most 253); fix the name");
    expect_err(APP "[docker]\nextra_hosts = {\"\" = \"10.1.2.3\"}\n",
               "weaver.toml:4: [docker] extra_hosts: \"\" is not a host name*");
    const char *addr_bad[] = {"10.1.2", "10.1.2.256", "db", "::g", "fe80::1%eth0", "",
                              "Host-Gateway"};
    for (size_t i = 0; i < WD_ARRAY_LEN(addr_bad); i++) {
        in = xasprintf(APP "[docker]\nextra_hosts = {\"db.local\" = \"%s\"}\n", addr_bad[i]);
        want = xasprintf("weaver.toml:4: [docker] extra_hosts.\"db.local\" = \"%s\" is not "
                               "an IP address; write an IPv4 or IPv6 address, or \"host-gateway\" "
                               "for the host",
                               addr_bad[i]);
        expect_err(in, want);
        free(in);
        free(want);
    }
    char long_host[256];
    memset(long_host, 'h', 254);
    long_host[254] = 0;
    in = xasprintf(APP "[docker]\nextra_hosts = {\"%s\" = \"1.2.3.4\"}\n", long_host);
    want = xasprintf("weaver.toml:4: [docker] extra_hosts: \"%.200s...\" is not a host name*",
                     long_host); /* quoted user text is cut after 200 bytes */
    expect_err(in, want);
    free(want);
    free(in);
    long_host[253] = 0;
    in = xasprintf(APP "[docker]\nextra_hosts = {\"%s\" = \"1.2.3.4\"}\n", long_host);
    c = parse_ok(in);
    assert_int_equal(strlen(c->extra_hosts.v[0]), 253 + 8);
    wd_config_free(c);
    free(in);

    /* memory */
    static const struct {
        const char *val;
        int64_t bytes;
    } mem_ok[] = {
        {"\"256m\"", 256LL << 20}, {"\"256M\"", 256LL << 20},  {"\"1g\"", 1LL << 30},
        {"\"6m\"", 6LL << 20},     {"\"7000k\"", 7000LL << 10}, {"\"7000000b\"", 7000000},
        {"\"7000000\"", 7000000},  {"6291456", 6291456},        {"\"1024G\"", 1LL << 40},
    };
    for (size_t i = 0; i < WD_ARRAY_LEN(mem_ok); i++) {
        in = xasprintf(APP "[docker]\nmemory = %s\n", mem_ok[i].val);
        c = parse_ok(in);
        if (c->res.memory_bytes != mem_ok[i].bytes)
            fail_msg("memory %s: got %lld", mem_ok[i].val, (long long)c->res.memory_bytes);
        wd_config_free(c);
        free(in);
    }
    const char *mem_syntax[] = {"256mb", "1.5g", "", "-5m", "m", "5 m", "5t", "0x10m", "1e9"};
    for (size_t i = 0; i < WD_ARRAY_LEN(mem_syntax); i++) {
        in = xasprintf(APP "[docker]\nmemory = \"%s\"\n", mem_syntax[i]);
        want = xasprintf("weaver.toml:4: [docker] memory \"%s\" is not a size; write e.g. "
                               "\"512m\" or \"2g\" (units b, k, m, g) or an integer of bytes",
                               mem_syntax[i]);
        expect_err(in, want);
        free(in);
        free(want);
    }
    expect_err(APP "[docker]\nmemory = \"5m\"\n",
               "weaver.toml:4: [docker] memory \"5m\" is below docker's minimum of 6 MiB; give at "
               "least \"6m\"");
    expect_err(APP "[docker]\nmemory = 6291455\n",
               "weaver.toml:4: [docker] memory 6291455 is below docker's minimum of 6 MiB; give "
               "at least \"6m\"");
    expect_err(APP "[docker]\nmemory = -1\n",
               "weaver.toml:4: [docker] memory -1 is below docker's minimum*");
    expect_err(APP "[docker]\nmemory = \"1025g\"\n",
               "weaver.toml:4: [docker] memory \"1025g\" is above 1 TiB; give at most \"1024g\"");
    expect_err(APP "[docker]\nmemory = \"99999999999999999999999g\"\n",
               "weaver.toml:4: [docker] memory \"99999999999999999999999g\" is above 1 TiB*");
    expect_err(APP "[docker]\nmemory = \"9999999999999999k\"\n",
               "weaver.toml:4: [docker] memory \"9999999999999999k\" is above 1 TiB*");
    expect_err(APP "[docker]\nmemory = 1.5\n",
               "weaver.toml:4: [docker] memory must be a size like \"512m\" or an integer of "
               "bytes, not a float");
    expect_err(APP "[docker]\ngroups.\"a/B\" = {memory = \"1m\"}\n",
               "weaver.toml:4: [docker] groups.\"a/B\".memory \"1m\" is below docker's minimum*");

    /* cpus */
    static const struct {
        const char *val;
        int64_t nano;
    } cpu_ok[] = {
        {"0.5", 500000000},        {"2", 2000000000},  {"1024", 1024000000000LL},
        {"0.000000001", 1},        {"0.01", 10000000}, {"1.0000000004", 1000000000},
        {"1.0000000006", 1000000001},
    };
    for (size_t i = 0; i < WD_ARRAY_LEN(cpu_ok); i++) {
        in = xasprintf(APP "[docker]\ncpus = %s\n", cpu_ok[i].val);
        c = parse_ok(in);
        if (c->res.nano_cpus != cpu_ok[i].nano)
            fail_msg("cpus %s: got %lld", cpu_ok[i].val, (long long)c->res.nano_cpus);
        wd_config_free(c);
        free(in);
    }
    const char *cpu_bad[][2] = {{"0", "0"},         {"-1", "-1"},         {"0.0", "0"},
                                {"1025", "1025"},   {"1024.5", "1024.5"}, {"1e-10", "1e-10"},
                                {"nan", "nan"},     {"inf", "inf"},       {"-0.5", "-0.5"}};
    for (size_t i = 0; i < WD_ARRAY_LEN(cpu_bad); i++) {
        in = xasprintf(APP "[docker]\ncpus = %s\n", cpu_bad[i][0]);
        want = xasprintf("weaver.toml:4: [docker] cpus must be more than 0 and at most "
                               "1024, not %s",
                               cpu_bad[i][1]);
        expect_err(in, want);
        free(in);
        free(want);
    }
    expect_err(APP "[docker]\ncpus = \"0.5\"\n",
               "weaver.toml:4: [docker] cpus must be a number of CPUs like 0.5 or 2, not a "
               "string");
    expect_err(APP "[docker]\ngroups.\"a/B\".cpus = 0\n",
               "weaver.toml:4: [docker] groups.\"a/B\".cpus must be more than 0 and at most "
               "1024, not 0");

    /* pids */
    c = parse_ok(APP "[docker]\npids = 16\ngroups.\"a/B\".pids = 4194304\n");
    assert_true(c->res.pids == 16);
    assert_true(c->groups[0].res.pids == 4194304);
    wd_config_free(c);
    expect_err(APP "[docker]\npids = 15\n",
               "weaver.toml:4: [docker] pids must be between 16 and 4194304, not 15");
    expect_err(APP "[docker]\npids = 4194305\n",
               "weaver.toml:4: [docker] pids must be between 16 and 4194304, not 4194305");
    expect_err(APP "[docker]\npids = \"512\"\n",
               "weaver.toml:4: [docker] pids must be an integer, not a string");
    expect_err(APP "[docker]\ngroups.\"a/B\" = {pids = 0}\n",
               "weaver.toml:4: [docker] groups.\"a/B\".pids must be between 16 and 4194304, not "
               "0");
    expect_err(APP "[docker]\nmemory = \"6m\"\nMemory = \"7m\"\n",
               "weaver.toml:5: [docker] key \"Memory\" repeats \"memory\" (line 4); keep one");

    /* mtls */
    c = parse_ok(APP "[docker]\nmtls = true\n");
    assert_true(c->mtls);
    wd_config_free(c);
    c = parse_ok(APP "[docker]\nmtls = false\n");
    assert_false(c->mtls);
    wd_config_free(c);
    c = parse_ok(APP "[docker]\nreplicas = 2\n");
    assert_false(c->mtls); /* off unless asked for */
    wd_config_free(c);
    expect_err(APP "[docker]\nmtls = \"true\"\n",
               "weaver.toml:4: [docker] mtls must be true or false, not a string");
    expect_err(APP "[docker]\nmtls = 1\n",
               "weaver.toml:4: [docker] mtls must be true or false, not an integer");
    expect_err(APP "[docker]\ngroups.\"a/B\" = {mtls = true}\n",
               "weaver.toml:4: [docker] unknown key \"mtls\" in groups.\"a/B\"*");
}

/* WD_CONFIG_NO_FILES (the compose manager): the files named in [docker] are not there; their
 * syntax is still checked, nothing is opened. */
static void test_parse_no_files(void **state)
{
    (void)state;
    char *dir = make_tmp_dir(); /* empty: none of the files below exist */
    char *path = xasprintf("%s/weaver.toml", dir);
    const char *text =
        APP "[docker]\n"
            "env_file = [\"app.env\", \"/nope/b.env\"]\n"
            "env = {A = \"a\"}\n"
            "host_ports = [5432]\n"
            "volumes = [\"./keys:/keys:ro\", \"data:/var/lib/app\"]\n"
            "secrets = {pw = \"db_password\"}\n"
            "groups.\"x/G\" = {env_file = \"g.env\", env = {B = \"b\"}, pids = 64}\n";
    struct wd_config *c = NULL;
    struct wd_error *err = NULL;
    /* the ordinary mode needs the files */
    assert_int_equal(wd_config_parse(text, strlen(text), path, &c, &err), -ENOENT);
    assert_non_null(strstr(err->msg, "env_file \"app.env\""));
    wd_err_free(&err);
    assert_int_equal(wd_config_parse_ex(text, strlen(text), path, WD_CONFIG_NO_FILES, &c, &err), 0);
    assert_null(err);
    const char *env[] = {"A=a"};
    assert_strv(&c->docker_env, env, WD_ARRAY_LEN(env));
    const char *genv[] = {"A=a", "B=b"};
    assert_strv(&c->groups[0].env, genv, WD_ARRAY_LEN(genv));
    assert_true(c->groups[0].res.pids == 64);
    assert_int_equal(c->nhost_ports, 1);
    assert_int_equal(c->nvolumes, 2);
    assert_true(c->volumes[0].bind);
    assert_true(c->volumes[0].read_only);
    char *keys = xasprintf("%s/keys", dir);
    assert_string_equal(c->volumes[0].source, keys);
    assert_string_equal(c->volumes[0].target, "/keys");
    assert_false(c->volumes[1].bind);
    assert_string_equal(c->volumes[1].source, "data");
    assert_int_equal(c->nsecrets, 1);
    assert_string_equal(c->secrets[0].name, "pw");
    char *pw = xasprintf("%s/db_password", dir);
    assert_string_equal(c->secrets[0].path, pw);
    wd_config_free(c);
    c = NULL;

    /* syntax and range checks stay; {P} is the config's path, a final '*' matches a prefix */
    static const struct {
        const char *docker, *want;
    } bad[] = {
        {"env_file = \"\"\n", "{P}:4: [docker] env_file is empty; give the path of a file of "
                              "KEY=VALUE lines"},
        {"env_file = 5\n", "{P}:4: [docker] env_file must be a path or an array of paths, not an "
                           "integer"},
        {"volumes = [\"./k\"]\n", "{P}:4: [docker] volumes: \"./k\" is not SOURCE:TARGET[:ro]; "
                                  "write e.g. \"./data:/data\" or \"cache:/var/cache:ro\""},
        {"volumes = [\"./k:/tmp/x\"]\n", "{P}:4: [docker] volumes: target /tmp/x is inside /tmp*"},
        {"secrets = {\"a b\" = \"x\"}\n", "{P}:4: [docker] secrets: \"a b\" is not a secret name*"},
        {"secrets = {s = \"\"}\n", "{P}:4: [docker] secrets.s is empty; give the path of the file"},
        {"pids = 1\n", "{P}:4: [docker] pids must be between 16 and 4194304, not 1"},
    };
    for (size_t i = 0; i < WD_ARRAY_LEN(bad); i++) {
        char *t = xasprintf(APP "[docker]\n%s", bad[i].docker);
        char *want = xasprintf("%s%s", path, bad[i].want + 3);
        int r = wd_config_parse_ex(t, strlen(t), path, WD_CONFIG_NO_FILES, &c, &err);
        if (r != -EINVAL || err == NULL)
            fail_msg("want EINVAL for %s, got %d", bad[i].docker, r);
        assert_null(c);
        size_t n = strlen(want);
        if (want[n - 1] == '*' ? strncmp(err->msg, want, n - 1) != 0 : strcmp(err->msg, want) != 0)
            fail_msg("got  %s\nwant %s", err->msg, want);
        wd_err_free(&err);
        free(want);
        free(t);
    }
    assert_int_equal(wd_config_parse_ex(APP, strlen(APP), path, 0x80, &c, &err), -EINVAL);
    assert_null(c);
    wd_err_free(&err);
    free(pw);
    free(keys);
    free(path);
    rm_tree(dir);
}

#undef APP

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full),         cmocka_unit_test(test_defaults_and_long_forms),
        cmocka_unit_test(test_app_errors),   cmocka_unit_test(test_docker_errors),
        cmocka_unit_test(test_duration),
        cmocka_unit_test(test_rollout_keys),     cmocka_unit_test(test_load_files),
        cmocka_unit_test(test_docker_new_keys), cmocka_unit_test(test_docker_env_merge),
        cmocka_unit_test(test_env_file_format), cmocka_unit_test(test_docker_file_errors),
        cmocka_unit_test(test_docker_new_errors), cmocka_unit_test(test_parse_no_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
