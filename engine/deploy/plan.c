/* engine/deploy/plan.c - the checks and the colocation groups `up` and `compose` share
 * (plan.h has the rules). */
#include "engine/deploy/plan.h"
#include "engine/base/log.h"
#include "engine/base/util.h"
#include "engine/deploy/deploy.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const char *shown(const struct wd_config *cfg)
{
    return cfg->path_shown ? cfg->path_shown : "config";
}

static int check_listeners(const struct wd_config *cfg, const struct wd_binary_info *bin,
                           struct wd_error **err)
{
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        if (wd_binary_has_listener(bin, cfg->listeners[i].name))
            continue;
        struct wd_buf known = {0};
        for (size_t j = 0; j < bin->nlisteners; j++)
            for (size_t k = 0; k < bin->listeners[j].names.n && known.len < 900; k++)
                wd_buf_printf(&known, "%s%s", known.len ? ", " : "", bin->listeners[j].names.v[k]);
        int r = wd_err(err, EINVAL,
                       "%s:%d: [docker] listener \"%s\" is not declared by the app (it declares: "
                       "%s)",
                       shown(cfg), cfg->listeners[i].line, cfg->listeners[i].name,
                       known.len ? (const char *)known.data : "no listeners");
        wd_buf_free(&known);
        return r;
    }
    return 0;
}

/* The colocate list holding @comp first (its index), or -1: alone. */
static long colocated_in(const struct wd_config *cfg, const char *comp)
{
    for (size_t i = 0; i < cfg->ncolocate; i++)
        for (size_t j = 0; j < cfg->colocate[i].n; j++)
            if (strcmp(cfg->colocate[i].v[j], comp) == 0)
                return (long)i;
    return -1;
}

static int check_groups(const struct wd_config *cfg, const struct wd_binary_info *bin,
                        struct wd_error **err)
{
    for (size_t i = 0; i < cfg->ngroups; i++) {
        const struct wd_group_cfg *g = &cfg->groups[i];
        if (!wd_binary_has_component(bin, g->component))
            return wd_err(err, EINVAL,
                          "%s:%d: [docker] groups.\"%s\": the app has no such component (see "
                          "'weaver-docker inspect %s')",
                          shown(cfg), g->line, g->component, cfg->binary);
        long li = colocated_in(cfg, g->component);
        for (size_t k = 0; k < i; k++) {
            const struct wd_group_cfg *o = &cfg->groups[k];
            bool same = strcmp(o->component, g->component) == 0 ||
                        (li >= 0 && colocated_in(cfg, o->component) == li);
            if (same)
                return wd_err(err, EINVAL,
                              "%s:%d: [docker] groups.\"%s\" and groups.\"%s\" (line %d) name "
                              "one colocation group (colocate puts them together); keep one "
                              "entry for the group",
                              shown(cfg), g->line, g->component, o->component, o->line);
        }
    }
    for (size_t i = 0; i < cfg->ncolocate; i++)
        for (size_t j = 0; j < cfg->colocate[i].n; j++)
            if (!wd_binary_has_component(bin, cfg->colocate[i].v[j]))
                wd_warn("colocate names \"%s\", which the app does not have (a typo?)",
                        cfg->colocate[i].v[j]);
    return 0;
}

/* What a weaver release cannot do, said before anything starts. */
static int check_release(const struct wd_config *cfg, const struct wd_binary_info *bin,
                         struct wd_error **err)
{
    /* v0.20-v0.22 build their mTLS client configs in a loop whose closures share one
     * variable (Go < 1.22 loop semantics, no copy): every VerifyServerCertificate names the
     * last registered component, so no server of another group would ever be accepted */
    if (cfg->mtls && wd_binary_pipes(bin))
        return wd_err(err, ENOTSUP,
                      "%s: [docker] mtls = true does not work with weaver %s: its weavelets name "
                      "the wrong component when they check a server's certificate (fixed in "
                      "weaver v0.23.0); remove mtls or rebuild the app with "
                      "github.com/ServiceWeaver/weaver v0.24.6",
                      shown(cfg), bin->module_version ? bin->module_version : "v0.20-v0.22");
    return 0;
}

int wd_plan_check(const struct wd_config *cfg, const struct wd_binary_info *bin,
                  struct wd_error **err)
{
    int r = check_release(cfg, bin, err);
    if (r == 0)
        r = check_listeners(cfg, bin, err);
    return r < 0 ? r : check_groups(cfg, bin, err);
}

static bool grouped(const struct wd_group_plan *g, size_t n, const char *c)
{
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < g[i].ncomps; j++)
            if (strcmp(g[i].comps[j], c) == 0)
                return true;
    return false;
}

static void add(struct wd_group_plan *g, const char *c)
{
    if (g->name == NULL) {
        g->name = xstrdup(c);
        g->short_name = wd_component_short(c);
        g->slug = wd_component_slug(c);
    }
    g->comps = xrealloc(g->comps, (g->ncomps + 1) * sizeof *g->comps);
    g->comps[g->ncomps++] = c;
}

struct wd_group_plan *wd_groups_plan(const struct wd_config *cfg, const struct wd_binary_info *bin,
                                     size_t *n)
{
    size_t cap = cfg->ncolocate + bin->ncomponents + 1;
    struct wd_group_plan *g = xcalloc(cap, sizeof *g);
    size_t ng = 0;
    for (size_t i = 0; i < cfg->ncolocate; i++) {
        for (size_t j = 0; j < cfg->colocate[i].n; j++) {
            const char *c = cfg->colocate[i].v[j];
            if (!grouped(g, ng + 1, c))
                add(&g[ng], c);
        }
        if (g[ng].ncomps)
            ng++;
    }
    for (size_t i = 0; i <= bin->ncomponents; i++) {
        const char *c = i < bin->ncomponents ? bin->components[i] : WD_MAIN_COMPONENT;
        if (!grouped(g, ng, c))
            add(&g[ng++], c);
    }
    char **slugs = xcalloc(ng + 1, sizeof *slugs); /* one container/service name per group */
    for (size_t i = 0; i < ng; i++)
        slugs[i] = g[i].slug;
    wd_unique_names(slugs, ng);
    for (size_t i = 0; i < ng; i++)
        g[i].slug = slugs[i];
    free(slugs);
    for (size_t i = 0; i < ng; i++) {
        g[i].replicas = cfg->replicas > 0 ? cfg->replicas : 1;
        for (size_t k = 0; k < cfg->ngroups && g[i].cfg == NULL; k++) /* the first entry */
            for (size_t j = 0; j < g[i].ncomps; j++)
                if (strcmp(cfg->groups[k].component, g[i].comps[j]) == 0) {
                    g[i].cfg = &cfg->groups[k];
                    g[i].replicas = cfg->groups[k].replicas;
                    break;
                }
    }
    *n = ng;
    return g;
}

void wd_groups_plan_free(struct wd_group_plan *p, size_t n)
{
    for (size_t i = 0; p && i < n; i++) {
        free(p[i].name);
        free(p[i].short_name);
        free(p[i].slug);
        free((void *)p[i].comps);
    }
    free(p);
}
