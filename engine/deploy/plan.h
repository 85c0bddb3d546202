/* engine/deploy/plan.h - what `up` and `compose` both take from a weaver.toml and a binary, in
 * one place: the checks of [docker] listeners and groups against the app, and the colocation
 * groups (issue 13: the two used to form them apart, and disagreed).
 *
 * The groups: each [serviceweaver] colocate list, in order, is a group of its components (a
 * component a list names again stays in the first; names the binary lacks count, as weaver
 * runs them); every other component of the binary, then main, is a group of its own. A group's
 * replicas: the [docker] groups entry naming one of its components, else [docker] replicas.
 * Two entries naming components of one group are refused (which one would win?). */
#ifndef WD_ENGINE_PLAN_H
#define WD_ENGINE_PLAN_H

#include "engine/base/error.h"
#include "engine/weaver/binary.h"
#include "engine/weaver/config.h"

#include <stddef.h>

struct wd_group_plan {
    char *name;       /* the first component's full name */
    char *short_name; /* "shop.Cart" */
    char *slug;       /* "shop-cart", unique among the app's groups (wd_unique_names) */
    const char **comps; /* full names, borrowed from the config and the binary */
    size_t ncomps;
    int replicas;
    const struct wd_group_cfg *cfg; /* its [docker] groups entry, or NULL */
};

/* wd_plan_check - [docker] listeners must be ones the app declares, [docker] groups must name
 * its components and no two of them one group; one line each, naming the file and line
 * (-EINVAL). Colocate names the app lacks are only warned of (weaver accepts them). */
int wd_plan_check(const struct wd_config *cfg, const struct wd_binary_info *bin,
                  struct wd_error **err);

/* wd_groups_plan - the app's groups, in the order above; *n of them. Free with
 * wd_groups_plan_free. Call after wd_plan_check. */
struct wd_group_plan *wd_groups_plan(const struct wd_config *cfg, const struct wd_binary_info *bin,
                                     size_t *n);
void wd_groups_plan_free(struct wd_group_plan *p, size_t n);

#endif
