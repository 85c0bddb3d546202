/* engine/deploy/groups.c - names and colocation groups of a deployment: the short and slug
 * names `ps`, logs and containers use, the components of the binary and the groups the config's
 * colocate lists make of them (every other component alone, as weaver multi does). */
#include "engine/base/util.h"
#include "engine/deploy/deploy.h"
#include "engine/deploy/deploy_internal.h"
#include "engine/deploy/plan.h"

#include <string.h>


char *wd_component_short(const char *full)
{
    const char *last = strrchr(full, '/');
    if (last == NULL)
        return xstrdup(full);
    const char *start = last;
    while (start > full && start[-1] != '/')
        start--;
    if (start == last) /* "/x" or "a//x": nothing before the last element */
        return xstrdup(last + 1);
    return xasprintf("%.*s.%s", (int)(last - start), start, last + 1);
}

/* "shop-cart": lower case, [a-z0-9-] only, from the short name. */
static char *slugify(const char *s)
{
    char *out = xstrdup(s);
    for (char *p = out; *p; p++) {
        char ch = *p;
        if (ch >= 'A' && ch <= 'Z')
            *p = (char)(ch - 'A' + 'a');
        else if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-'))
            *p = '-';
    }
    return out;
}

char *wd_component_slug(const char *full)
{
    autofree char *s = wd_component_short(full);
    return slugify(s);
}

struct wd_component *wd_deploy_comp(struct wd_deploy *d, const char *name)
{
    for (size_t i = 0; i < d->ncomps; i++)
        if (strcmp(d->comps[i]->name, name) == 0)
            return d->comps[i];
    return NULL;
}

static struct wd_component *add_comp(struct wd_deploy *d, const char *name)
{
    struct wd_component *c = xzalloc(sizeof *c);
    c->name = xstrdup(name);
    d->comps = xrealloc(d->comps, (d->ncomps + 1) * sizeof *d->comps);
    d->comps[d->ncomps++] = c;
    return c;
}

static struct wd_group *add_group(struct wd_deploy *d)
{
    struct wd_group *g = xzalloc(sizeof *g);
    g->d = d;
    g->idx = d->ngroups;
    d->groups = xrealloc(d->groups, (d->ngroups + 1) * sizeof *d->groups);
    d->groups[d->ngroups++] = g;
    return g;
}

static void group_add_comp(struct wd_group *g, struct wd_component *c)
{
    c->group = g;
    g->comps = xrealloc(g->comps, (g->ncomps + 1) * sizeof *g->comps);
    g->comps[g->ncomps++] = c;
    if (strcmp(c->name, WD_MAIN_COMPONENT) == 0)
        g->has_main = true;
    if (g->name == NULL) {
        g->name = xstrdup(c->name);
        g->short_name = wd_component_short(c->name);
        g->slug = slugify(g->short_name);
    }
}

static void group_finish(struct wd_group *g, int replicas)
{
    g->nreplicas = replicas > 0 ? replicas : 1;
    g->want = g->nreplicas;
    g->replicas = xcalloc((size_t)g->nreplicas, sizeof *g->replicas);
}

/* The groups up and compose both form (engine/deploy/plan.h). */
void wd_deploy_build_groups(struct wd_deploy *d)
{
    for (size_t i = 0; i < d->bin->ncomponents; i++)
        add_comp(d, d->bin->components[i]);
    if (wd_deploy_comp(d, WD_MAIN_COMPONENT) == NULL)
        add_comp(d, WD_MAIN_COMPONENT);
    size_t n = 0;
    struct wd_group_plan *plan = wd_groups_plan(d->cfg, d->bin, &n);
    for (size_t i = 0; i < n; i++) {
        struct wd_group *g = add_group(d);
        for (size_t j = 0; j < plan[i].ncomps; j++) {
            struct wd_component *c = wd_deploy_comp(d, plan[i].comps[j]);
            group_add_comp(g, c ? c : add_comp(d, plan[i].comps[j]));
        }
        free(g->slug); /* the plan's: unique among the groups */
        g->slug = xstrdup(plan[i].slug);
        group_finish(g, plan[i].replicas);
    }
    wd_groups_plan_free(plan, n);
}

struct wd_component *wd_deploy_comp_alone(struct wd_deploy *d, const char *name)
{
    struct wd_component *c = add_comp(d, name);
    struct wd_group *g = add_group(d);
    group_add_comp(g, c);
    group_finish(g, d->cfg->replicas);
    return c;
}

struct wd_group *wd_deploy_find_group(struct wd_deploy *d, const char *name)
{
    for (size_t i = 0; i < d->ngroups; i++) {
        struct wd_group *g = d->groups[i];
        if (strcmp(g->name, name) == 0 || strcmp(g->short_name, name) == 0 ||
            strcmp(g->slug, name) == 0)
            return g;
    }
    return NULL;
}
