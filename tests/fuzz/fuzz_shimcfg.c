/* Fuzz target for the shim's argv/environment parser (images/shim/shimcfg.c). The shim is
 * built apart from libwd.a, so its parser is compiled into this target by inclusion.
 *
 * Input: NUL-separated strings. Those before the first empty string are argv (argv[0]
 * included), those after it are the environment ("KEY=VALUE"). */
#include "images/shim/shimcfg.c"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_STRS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 8192)
        return 0;
    char *buf = malloc(size + 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';

    char *argv[MAX_STRS + 1], *envp[MAX_STRS + 1];
    int argc = 0, envc = 0;
    bool in_env = false;
    for (char *p = buf; p < buf + size; p += strlen(p) + 1) {
        if (!*p && !in_env) {
            in_env = true;
            continue;
        }
        if (!in_env && argc < MAX_STRS)
            argv[argc++] = p;
        else if (in_env && envc < MAX_STRS)
            envp[envc++] = p;
    }
    argv[argc] = NULL;
    envp[envc] = NULL;

    struct shim_cfg cfg;
    if (shim_cfg_parse(&cfg, argc, argv, envp) == 0) {
        /* invariants the shim relies on */
        if (memchr(cfg.err, 0, sizeof cfg.err) == NULL)
            abort();
        size_t dlen = strnlen(cfg.dir, sizeof cfg.dir);
        if (dlen == sizeof cfg.dir || dlen < 2 || dlen > SHIM_DIR_MAX || cfg.dir[0] != '/' ||
            cfg.dir[dlen - 1] == '/')
            abort();
        if (cfg.port == 0 || cfg.orphan_secs > SHIM_MAX_ORPHAN_SECS ||
            cfg.log_level > SHIM_LOG_WARN)
            abort();
        if (cfg.mode == SHIM_RUN && (cfg.prog < 1 || cfg.prog >= argc || !argv[cfg.prog][0]))
            abort();
        if (cfg.mode != SHIM_RUN && argc != 2)
            abort();
        if (cfg.link != (cfg_env(envp, "WEAVER_SHIM_TOKEN") != NULL))
            abort();
    } else if (!cfg.err[0] || memchr(cfg.err, 0, sizeof cfg.err) == NULL) {
        abort(); /* every failure explains itself */
    }
    free(buf);
    return 0;
}
