/* engine/docker/json.h - strict cJSON helpers: case-sensitive lookups, exact int64, bounded parse.
 * cJSON stores numbers as doubles (style.md §3): read integers only with wd_json_get_i64 and
 * write values above 2^53 with wd_json_add_i64. */
#ifndef WD_ENGINE_JSON_H
#define WD_ENGINE_JSON_H

#include "engine/base/error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cJSON;

/* wd_json_freep - cleanup helper for autojson (NULL-safe). */
void wd_json_freep(struct cJSON **p);
#define autojson __attribute__((cleanup(wd_json_freep)))

/* wd_json_parse - parse len bytes (need not be NUL-terminated). @what names the document in
 * the error. On success *out is a new tree owned by the caller (cJSON_Delete).
 * Returns 0 or -EPROTO (not JSON). */
int wd_json_parse(const void *buf, size_t len, const char *what, struct cJSON **out,
                  struct wd_error **err);

/* wd_json_get_i64 - read obj[key] as an exact integer.
 * Returns 0, -EPROTO (missing / not a number) or -ERANGE (not an exact integer in ±2^53). */
int wd_json_get_i64(const struct cJSON *obj, const char *key, int64_t *out, struct wd_error **err);
/* wd_json_i64_or - obj[key] as an exact integer, or dflt when absent or not exact. */
int64_t wd_json_i64_or(const struct cJSON *obj, const char *key, int64_t dflt);
/* wd_json_str - obj[key] if it is a string (borrowed from the tree), else NULL. */
const char *wd_json_str(const struct cJSON *obj, const char *key);
/* wd_json_bool - obj[key] if it is a boolean, else dflt. */
bool wd_json_bool(const struct cJSON *obj, const char *key, bool dflt);
/* wd_json_obj - obj[key] if it is an object, else NULL (borrowed). */
const struct cJSON *wd_json_obj(const struct cJSON *obj, const char *key);
/* wd_json_arr - obj[key] if it is an array, else NULL (borrowed). */
const struct cJSON *wd_json_arr(const struct cJSON *obj, const char *key);

/* Builders. They abort on allocation failure (cJSON returns NULL only on OOM here). */
struct cJSON *wd_json_new_object(void);
struct cJSON *wd_json_new_array(void);
/* Add key: string; returns the new item (owned by obj). */
struct cJSON *wd_json_add_str(struct cJSON *obj, const char *key, const char *val);
/* Add key: exact integer, printed with PRId64 (never in exponent form). */
struct cJSON *wd_json_add_i64(struct cJSON *obj, const char *key, int64_t val);
struct cJSON *wd_json_add_bool(struct cJSON *obj, const char *key, bool val);
struct cJSON *wd_json_add_object(struct cJSON *obj, const char *key);
struct cJSON *wd_json_add_array(struct cJSON *obj, const char *key);
/* Append strings to an array. */
void wd_json_arr_add_str(struct cJSON *arr, const char *val);
void wd_json_arr_add_strv(struct cJSON *arr, const char *const *v, size_t n);
/* wd_json_print - compact text of the tree; caller frees with free(). */
char *wd_json_print(const struct cJSON *obj);

#endif
