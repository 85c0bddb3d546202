/* Fuzz target for engine/weaver/toml.c (and engine/weaver/config.c on the same input). Besides not
 * crashing, it checks the re-encoder: whatever parses must emit text that parses back to the same
 * tree, (checked as emit(parse(emit(t))) == emit(t)), and every error must be one "FILE:LINE: ..."
 * line. */
#include "engine/weaver/config.h"
#include "engine/base/error.h"
#include "engine/weaver/toml.h"
#include "engine/base/util.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_error(const struct wd_error *err)
{
    if (err == NULL || err->msg == NULL || strchr(err->msg, '\n') != NULL)
        abort();
    /* an EINVAL names the file it is about: the toml, or a file it names (env_file) */
    if (err->errnum == EINVAL && strncmp(err->msg, "fuzz.toml:", 10) != 0 &&
        !(err->msg[0] == '/' && strstr(err->msg, ": [docker] env_file") != NULL))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct wd_toml *t = NULL;
    struct wd_error *err = NULL;
    if (wd_toml_parse((const char *)data, size, "fuzz.toml", &t, &err) < 0) {
        check_error(err);
        wd_err_free(&err);
        return 0;
    }
    const struct wd_toml_node *root = wd_toml_root(t);
    char *json = wd_toml_to_json(root);
    char *text = wd_toml_emit_table(root);
    struct wd_toml *t2 = NULL;
    if (wd_toml_parse(text, strlen(text), "emitted.toml", &t2, &err) < 0)
        abort(); /* the emitter wrote something the parser rejects */
    /* Key order may change (plain keys are emitted before sub-tables), so compare the
     * re-emitted text, which is canonical: emit(parse(emit(t))) == emit(t). */
    char *text2 = wd_toml_emit_table(wd_toml_root(t2));
    if (strcmp(text, text2) != 0)
        abort(); /* the round trip changed the document */
    for (size_t i = 0; i < wd_toml_len(root); i++) {
        char *sec = wd_toml_emit_table(wd_toml_table_at(root, i)->val);
        free(sec);
    }
    free(text2);
    free(json);
    free(text);
    wd_toml_free(t2);
    wd_toml_free(t);

    struct wd_config *c = NULL;
    if (wd_config_parse((const char *)data, size, "fuzz.toml", &c, &err) < 0) {
        check_error(err);
        wd_err_free(&err);
    }
    wd_config_free(c);
    return 0;
}
