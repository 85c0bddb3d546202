#include "engine/docker/json.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "engine/base/util.h"

void wd_json_freep(struct cJSON **p)
{
    if (*p)
        cJSON_Delete(*p);
    *p = NULL;
}

static void *must(void *p)
{
    if (p == NULL) {
        static const char msg[] = "weaver-docker: out of memory\n";
        (void)!write(2, msg, sizeof msg - 1);
        abort();
    }
    return p;
}

int wd_json_parse(const void *buf, size_t len, const char *what, struct cJSON **out,
                  struct wd_error **err)
{
    cJSON *doc = cJSON_ParseWithLength(buf, len);
    if (doc == NULL)
        return wd_err(err, EPROTO, "%s: invalid JSON", what);
    *out = doc;
    return 0;
}

static bool exact_i64(double d, int64_t *out)
{
    if (!(d >= -0x1p53 && d <= 0x1p53))
        return false;
    int64_t v = (int64_t)d;
    if ((double)v != d)
        return false;
    *out = v;
    return true;
}

int wd_json_get_i64(const struct cJSON *obj, const char *key, int64_t *out, struct wd_error **err)
{
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsNumber(n))
        return wd_err(err, EPROTO, "field %s: not a number", key);
    int64_t v;
    if (!exact_i64(n->valuedouble, &v))
        return wd_err(err, ERANGE, "field %s: %g is not an exact integer", key, n->valuedouble);
    *out = v;
    return 0;
}

int64_t wd_json_i64_or(const struct cJSON *obj, const char *key, int64_t dflt)
{
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(obj, key);
    int64_t v;
    if (!cJSON_IsNumber(n) || !exact_i64(n->valuedouble, &v))
        return dflt;
    return v;
}

const char *wd_json_str(const struct cJSON *obj, const char *key)
{
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(s) && s->valuestring ? s->valuestring : NULL;
}

bool wd_json_bool(const struct cJSON *obj, const char *key, bool dflt)
{
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsBool(b) ? cJSON_IsTrue(b) : dflt;
}

const struct cJSON *wd_json_obj(const struct cJSON *obj, const char *key)
{
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsObject(o) ? o : NULL;
}

const struct cJSON *wd_json_arr(const struct cJSON *obj, const char *key)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsArray(a) ? a : NULL;
}

struct cJSON *wd_json_new_object(void)
{
    return must(cJSON_CreateObject());
}
struct cJSON *wd_json_new_array(void)
{
    return must(cJSON_CreateArray());
}

struct cJSON *wd_json_add_str(struct cJSON *obj, const char *key, const char *val)
{
    return must(cJSON_AddStringToObject(obj, key, val ? val : ""));
}

struct cJSON *wd_json_add_i64(struct cJSON *obj, const char *key, int64_t val)
{
    char num[32];
    snprintf(num, sizeof num, "%" PRId64, val);
    return must(cJSON_AddRawToObject(obj, key, num));
}

struct cJSON *wd_json_add_bool(struct cJSON *obj, const char *key, bool val)
{
    return must(cJSON_AddBoolToObject(obj, key, val));
}

struct cJSON *wd_json_add_object(struct cJSON *obj, const char *key)
{
    return must(cJSON_AddObjectToObject(obj, key));
}

struct cJSON *wd_json_add_array(struct cJSON *obj, const char *key)
{
    return must(cJSON_AddArrayToObject(obj, key));
}

void wd_json_arr_add_str(struct cJSON *arr, const char *val)
{
    cJSON_AddItemToArray(arr, must(cJSON_CreateString(val ? val : "")));
}

void wd_json_arr_add_strv(struct cJSON *arr, const char *const *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        wd_json_arr_add_str(arr, v[i]);
}

char *wd_json_print(const struct cJSON *obj)
{
    return must(cJSON_PrintUnformatted(obj));
}
