/* engine/weaver/toml.h - a TOML 1.0 reader and a re-encoder, written for weaver.toml
 * (protocol §6).
 *
 * The whole document is parsed into a tree of struct wd_toml_node. Every node records the line
 * it starts on. Parse errors are one line, "FILE:LINE: what is wrong" (EINVAL); a document over
 * WD_TOML_MAX_FILE bytes fails with EMSGSIZE; nesting deeper than WD_TOML_MAX_DEPTH fails with
 * EINVAL. All of TOML 1.0 is supported, including every redefinition rule (no key defined twice,
 * no table defined twice, inline tables and static arrays are immutable, dotted keys cannot
 * extend a table defined by a header, ...). Integers are 64-bit signed; larger values are errors.
 *
 * Ownership: wd_toml_parse() returns a struct wd_toml the caller frees with wd_toml_free(). All
 * nodes, keys and strings belong to it; pointers into the tree are valid until then. The tree is
 * read-only for callers. wd_toml_to_json() and wd_toml_emit_table() return strings the caller
 * frees with free().
 */
#ifndef WD_ENGINE_TOML_H
#define WD_ENGINE_TOML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct wd_error;

#define WD_TOML_MAX_FILE (4u << 20) /* bytes */
#define WD_TOML_MAX_DEPTH 128       /* nested tables and arrays, counted from the root */

enum wd_toml_type {
    WD_TOML_TABLE,
    WD_TOML_ARRAY,
    WD_TOML_STRING,
    WD_TOML_INTEGER,
    WD_TOML_FLOAT,
    WD_TOML_BOOL,
    WD_TOML_DATETIME,       /* offset date-time: 1979-05-27T07:32:00Z */
    WD_TOML_DATETIME_LOCAL, /* 1979-05-27T07:32:00 */
    WD_TOML_DATE_LOCAL,     /* 1979-05-27 */
    WD_TOML_TIME_LOCAL,     /* 07:32:00 */
};

struct wd_toml_datetime {
    int year, month, day;     /* unset (0) for WD_TOML_TIME_LOCAL */
    int hour, minute, second; /* unset (0) for WD_TOML_DATE_LOCAL */
    int nanos;                /* fractional second, truncated to nanoseconds */
    int frac_digits;          /* fraction digits as written, at most 9 (for re-encoding) */
    int offset_minutes;       /* WD_TOML_DATETIME only; "Z" is 0 */
};

struct wd_toml_node;

/* One key of a table, in document order. key may contain NUL bytes ("\u0000"); key_len is
 * authoritative, key is NUL-terminated. line is where the key was written. */
struct wd_toml_kv {
    char *key;
    size_t key_len;
    int line;
    struct wd_toml_node *val;
};

struct wd_toml_node {
    enum wd_toml_type type;
    int line;       /* line where the value, header or first implicit mention starts (1-based) */
    int depth;      /* root table 0; private to the parser */
    unsigned flags; /* private to the parser */
    union {
        struct {
            char *s; /* NUL-terminated; may contain NUL bytes, len is authoritative */
            size_t len;
        } str;
        int64_t i;
        double f;
        bool b;
        struct wd_toml_datetime dt;
        struct {
            struct wd_toml_kv *kv;
            size_t n, cap;
            size_t *index; /* private: hash index, built for large tables */
            size_t index_cap;
        } table;
        struct {
            struct wd_toml_node **v;
            size_t n, cap;
        } array;
    } u;
};

struct wd_toml; /* a parsed document */

/* wd_toml_parse - parse len bytes of text (need not be NUL-terminated). filename is used only in
 * error messages. On success *out is set; the caller owns it (wd_toml_free). */
int wd_toml_parse(const char *text, size_t len, const char *filename, struct wd_toml **out,
                  struct wd_error **err);
void wd_toml_free(struct wd_toml *t); /* NULL-safe */

/* The root table of a document. */
const struct wd_toml_node *wd_toml_root(const struct wd_toml *t);

/* Lookups. Each returns NULL when n is NULL, of the wrong type, or has no such entry. */
const struct wd_toml_kv *wd_toml_find(const struct wd_toml_node *table, const char *key);
const struct wd_toml_node *wd_toml_get(const struct wd_toml_node *table, const char *key);
/* Entries of a table or items of an array (0 for scalars). */
size_t wd_toml_len(const struct wd_toml_node *n);
const struct wd_toml_kv *wd_toml_table_at(const struct wd_toml_node *table, size_t i);
const struct wd_toml_node *wd_toml_array_at(const struct wd_toml_node *array, size_t i);
/* "table", "array", "string", "integer", "float", "boolean", "offset date-time",
 * "local date-time", "local date", "local time". */
const char *wd_toml_type_name(enum wd_toml_type t);

/* wd_toml_to_json - the value as JSON in toml-test's typed form: tables are objects, arrays are
 * arrays, scalars are {"type": T, "value": "text"} with T one of string, integer, float, bool,
 * datetime, datetime-local, date-local, time-local. Floats are shortest round-trip text or
 * inf/-inf/nan. Caller frees. */
char *wd_toml_to_json(const struct wd_toml_node *n);

/* wd_toml_emit_table - re-encode the body of a table as a standalone TOML document: plain keys
 * first, then sub-tables as [headers] relative to the table (a sub-table "limits" becomes
 * [limits]), arrays of tables as [[headers]]. Keys are quoted when they are not bare keys. The
 * result parses back to an equal tree. Caller frees. */
char *wd_toml_emit_table(const struct wd_toml_node *table);

#endif
