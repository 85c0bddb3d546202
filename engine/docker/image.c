/* engine/docker/image.c - FROM-scratch images with libarchive (docs/docker-engine.md §3). */
#include "engine/docker/image.h"

#include <errno.h>
#include <unistd.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <sys/utsname.h>

#include <archive.h>
#include <archive_entry.h>
#include <cjson/cJSON.h>
#include <openssl/evp.h>

#include "engine/docker/json.h"
#include "engine/base/log.h"

/* ---- plan --------------------------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void wd_image_plan_free(struct wd_image_plan *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->nowned_dirs; i++)
        free(p->owned_dirs[i]);
    free(p->owned_dirs);
    for (size_t i = 0; i < p->nfiles; i++) {
        free(p->files[i].path);
        free(p->files[i].data);
    }
    free(p->files);
    free(p->tag);
    free(p->settings);
    memset(p, 0, sizeof *p);
}

void wd_image_result_free(struct wd_image_result *r)
{
    if (r == NULL)
        return;
    free(r->tag);
    free(r->id);
    memset(r, 0, sizeof *r);
}

static bool app_name_ok(const char *a)
{
    size_t n = a ? strlen(a) : 0;
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = a[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-')))
            return false;
    }
    return true;
}

static bool file_name_ok(const char *s)
{
    return s && *s && strchr(s, '/') == NULL && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

static int read_input(const char *what, const char *path, uint8_t **data, size_t *len,
                      struct wd_error **err)
{
    char *buf = NULL;
    int rc = wd_read_file(path, WD_MAX_IMAGE_FILE, &buf, len);
    if (rc == -EMSGSIZE)
        return wd_err(err, EMSGSIZE, "%s %s is larger than %u MiB", what, path,
                      (unsigned)(WD_MAX_IMAGE_FILE >> 20));
    if (rc < 0)
        return wd_err_sys(err, -rc, "read %s %s", what, path);
    *data = (uint8_t *)buf;
    return 0;
}

static void add_file(struct wd_image_plan *p, const char *path, uint32_t mode, uint8_t *data,
                     size_t len)
{
    p->files = xrealloc(p->files, (p->nfiles + 1) * sizeof *p->files);
    p->files[p->nfiles++] = (struct wd_image_file){xstrdup(path), mode, data, len};
}

static bool have_file(const struct wd_image_plan *p, const char *path)
{
    for (size_t i = 0; i < p->nfiles; i++)
        if (strcmp(p->files[i].path, path) == 0)
            return true;
    return false;
}

static const char *const *lib_dirs(uint16_t machine)
{
    static const char *const x86_64[] = {"/lib/x86_64-linux-gnu",
                                         "/usr/lib/x86_64-linux-gnu",
                                         "/lib64",
                                         "/usr/lib64",
                                         "/lib",
                                         "/usr/lib",
                                         "/usr/local/lib",
                                         NULL};
    static const char *const arm64[] = {"/lib/aarch64-linux-gnu",
                                        "/usr/lib/aarch64-linux-gnu",
                                        "/lib64",
                                        "/usr/lib64",
                                        "/lib",
                                        "/usr/lib",
                                        "/usr/local/lib",
                                        NULL};
    static const char *const other[] = {"/lib64",   "/usr/lib64",     "/lib",
                                        "/usr/lib", "/usr/local/lib", NULL};
    return machine == 62 ? x86_64 : machine == 183 ? arm64 : other;
}

/* Read @path (following symlinks) if it is an ELF object for our machine and class. */
static bool try_lib(const char *path, uint16_t machine, uint8_t cls, uint8_t **data, size_t *len,
                    struct wd_elf_info *info)
{
    struct stat st;
    if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
        return false;
    autoerr struct wd_error *e = NULL;
    if (read_input("library", path, data, len, &e) < 0)
        return false;
    if (wd_elf_inspect(*data, *len, path, info, &e) < 0 || info->machine != machine ||
        info->elf_class != cls) {
        wd_elf_info_free(info);
        free(*data);
        *data = NULL;
        return false;
    }
    return true;
}

/* `ldconfig -p` lines: "\tlibfoo.so.1 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libfoo.so.1" */
static char *ldconfig_lookup(const char *name)
{
    FILE *f = popen("/sbin/ldconfig -p 2>/dev/null", "re");
    if (f == NULL)
        return NULL;
    char line[1024];
    char *found = NULL;
    size_t nl = strlen(name);
    while (fgets(line, sizeof line, f)) {
        const char *s = line;
        while (*s == ' ' || *s == '\t')
            s++;
        const char *arrow = strstr(s, "=> ");
        if (found == NULL && arrow && strncmp(s, name, nl) == 0 && s[nl] == ' ') {
            found = xstrndup(arrow + 3, strcspn(arrow + 3, "\r\n"));
        }
    }
    pclose(f);
    return found;
}

static int add_libs(struct wd_image_plan *p, const char *binary, const struct wd_elf_info *bin,
                    const char *interp, const char *const *needed, size_t nneeded,
                    struct wd_error **err)
{
    const char *cgo = "build it statically (CGO_ENABLED=0 go build) or install the library";
    if (interp) {
        if (interp[0] != '/')
            return wd_err(err, ENOEXEC, "%s: ELF interpreter %s is not an absolute path", binary,
                          interp);
        uint8_t *data = NULL;
        size_t len = 0;
        struct wd_elf_info li = {0};
        if (!try_lib(interp, bin->machine, bin->elf_class, &data, &len, &li))
            return wd_err(err, ELIBACC,
                          "%s is dynamically linked and its interpreter %s is not on this host; "
                          "%s",
                          binary, interp, cgo);
        wd_elf_info_free(&li);
        add_file(p, interp, 0755, data, len);
        p->nlibs++;
    }
    /* breadth-first over DT_NEEDED, deduplicated by name */
    char **queue = NULL;
    size_t nq = 0;
    for (size_t i = 0; i < nneeded; i++) {
        queue = xrealloc(queue, (nq + 1) * sizeof *queue);
        queue[nq++] = xstrdup(needed[i]);
    }
    int rc = 0;
    for (size_t qi = 0; rc == 0 && qi < nq; qi++) {
        const char *name = queue[qi];
        bool dup = false;
        for (size_t j = 0; j < qi; j++)
            dup = dup || strcmp(queue[j], name) == 0;
        /* libc names the interpreter by its soname: it is already in the image */
        const char *ib = interp ? strrchr(interp, '/') : NULL;
        dup = dup || (ib && strcmp(ib + 1, name) == 0);
        if (dup)
            continue;
        if (p->nlibs >= WD_MAX_IMAGE_LIBS) {
            rc = wd_err(err, EMSGSIZE, "%s needs more than %d shared libraries", binary,
                        WD_MAX_IMAGE_LIBS);
            break;
        }
        uint8_t *data = NULL;
        size_t len = 0;
        struct wd_elf_info li = {0};
        char *where = NULL;
        if (strchr(name, '/')) {
            if (try_lib(name, bin->machine, bin->elf_class, &data, &len, &li))
                where = xstrdup(name);
        } else {
            for (const char *const *dir = lib_dirs(bin->machine); *dir && !where; dir++) {
                char *cand = xasprintf("%s/%s", *dir, name);
                if (try_lib(cand, bin->machine, bin->elf_class, &data, &len, &li))
                    where = cand;
                else
                    free(cand);
            }
            if (where == NULL) {
                char *cand = ldconfig_lookup(name);
                if (cand && try_lib(cand, bin->machine, bin->elf_class, &data, &len, &li))
                    where = cand;
                else
                    free(cand);
            }
        }
        if (where == NULL) {
            rc = wd_err(err, ELIBACC,
                        "%s is dynamically linked and needs %s, which is not on this host; %s",
                        binary, name, cgo);
            break;
        }
        if (have_file(p, where)) { /* e.g. the interpreter itself */
            free(data);
        } else {
            add_file(p, where, 0755, data, len);
            p->nlibs++;
        }
        free(where);
        for (size_t j = 0; j < li.nneeded; j++) {
            queue = xrealloc(queue, (nq + 1) * sizeof *queue);
            queue[nq++] = xstrdup(li.needed[j]);
        }
        wd_elf_info_free(&li);
    }
    for (size_t i = 0; i < nq; i++)
        free(queue[i]);
    free(queue);
    return rc;
}

/* wd_image_spec.extra: each file, plus the library closure of the dynamic ones. */
static int add_extra(struct wd_image_plan *p, const struct wd_image_spec *s, uint16_t host,
                     struct wd_error **err)
{
    for (size_t i = 0; i < s->nextra; i++) {
        const struct wd_image_extra *x = &s->extra[i];
        if (x->image_path == NULL || x->image_path[0] != '/' || have_file(p, x->image_path))
            return wd_err(err, EINVAL, "extra file %s: bad or duplicate image path",
                          x->image_path ? x->image_path : "(null)");
        uint8_t *data = NULL;
        size_t len = 0;
        int rc = read_input("file", x->host_path, &data, &len, err);
        if (rc < 0)
            return rc;
        struct wd_elf_info ei = {0};
        bool elf = len >= 4 && memcmp(data, "\177ELF", 4) == 0;
        if (elf && wd_elf_inspect(data, len, x->host_path, &ei, err) < 0) {
            free(data);
            return wd_err_wrap(err, "%s", x->host_path);
        }
        if (elf && ei.machine != host) {
            wd_elf_info_free(&ei);
            free(data);
            return wd_err(err, ENOEXEC, "%s is not built for this host", x->host_path);
        }
        add_file(p, x->image_path, elf ? 0755 : 0644, data, len);
        if (elf && !ei.is_static)
            rc = add_libs(p, x->host_path, &ei,
                          ei.interp && !have_file(p, ei.interp) ? ei.interp : NULL,
                          (const char *const *)ei.needed, ei.nneeded, err);
        wd_elf_info_free(&ei);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int cmp_files(const void *a, const void *b)
{
    return strcmp(((const struct wd_image_file *)a)->path, ((const struct wd_image_file *)b)->path);
}

int wd_image_plan_make(const struct wd_image_spec *s, const struct wd_label *extra, size_t nextra,
                       struct wd_image_plan *out, struct wd_error **err)
{
    if (!app_name_ok(s->app))
        return wd_err(err, EINVAL,
                      "image: app name '%s' is not usable in a tag (lowercase letters, digits, "
                      "'.', '_', '-'; at most 64)",
                      s->app ? s->app : "");
    if (s->binary_path == NULL)
        return wd_err(err, EINVAL, "image %s: no binary given", s->app);
    const char *base = strrchr(s->binary_path, '/');
    base = base ? base + 1 : s->binary_path;
    const char *name = s->binary_name ? s->binary_name : base;
    if (!file_name_ok(name))
        return wd_err(err, EINVAL, "image %s: bad binary name '%s'", s->app, name);

    struct wd_image_plan p = {0};
    uint8_t *bin = NULL;
    size_t binlen = 0;
    int rc = read_input("app binary", s->binary_path, &bin, &binlen, err);
    if (rc < 0)
        return wd_err_wrap(err, "image %s", s->app);
    struct wd_elf_info info = {0};
    if (wd_elf_inspect(bin, binlen, s->binary_path, &info, err) < 0) {
        free(bin);
        return wd_err_wrap(err, "image %s: app binary %s", s->app, s->binary_path);
    }
    uint16_t host = wd_elf_host_machine();
    const char *arch = info.goarch, *ha = wd_host_goarch();
    if (info.machine != host || arch == NULL) {
        wd_elf_info_free(&info);
        free(bin);
        return wd_err(err, ENOEXEC,
                      "image %s: app binary %s is built for %s but this host runs %s (build with "
                      "GOARCH=%s)",
                      s->app, s->binary_path, arch ? arch : "an unknown CPU", ha, ha);
    }
    p.arch = arch;
    struct stat bst;
    p.created = stat(s->binary_path, &bst) == 0 ? (int64_t)bst.st_mtime : 0;
    autofree char *binpath = xasprintf("/app/%s", name);
    add_file(&p, binpath, 0755, bin, binlen);

    if (s->shim_path) {
        uint8_t *shim = NULL;
        size_t shimlen = 0;
        struct wd_elf_info si = {0};
        rc = read_input("shim", s->shim_path, &shim, &shimlen, err);
        if (rc == 0 && wd_elf_inspect(shim, shimlen, s->shim_path, &si, err) < 0)
            rc = -(*err)->errnum;
        if (rc == 0 && (!si.is_static || si.machine != host)) {
            rc = wd_err(err, ENOEXEC, "shim %s is not a static executable for this host",
                        s->shim_path);
        }
        wd_elf_info_free(&si);
        if (rc < 0) {
            free(shim);
            wd_elf_info_free(&info);
            wd_image_plan_free(&p);
            return wd_err_wrap(err, "image %s", s->app);
        }
        add_file(&p, WD_IMAGE_SHIM_PATH, 0755, shim, shimlen);
    }

    const char *interp = info.interp;
    const char *const *needed = (const char *const *)info.needed;
    size_t nneeded = info.nneeded;
    if (s->interp || s->nneeded) {
        interp = s->interp;
        needed = s->needed;
        nneeded = s->nneeded;
    }
    if (interp || nneeded) {
        rc = add_libs(&p, s->binary_path, &info, interp, needed, nneeded, err);
        if (rc < 0) {
            wd_elf_info_free(&info);
            wd_image_plan_free(&p);
            return wd_err_wrap(err, "image %s", s->app);
        }
    }
    wd_elf_info_free(&info);
    if ((rc = add_extra(&p, s, host, err)) < 0) {
        wd_image_plan_free(&p);
        return wd_err_wrap(err, "image %s", s->app);
    }

    p.owned_dirs = xcalloc(s->nowned_dirs + 1, sizeof *p.owned_dirs);
    for (size_t i = 0; i < s->nowned_dirs; i++)
        p.owned_dirs[p.nowned_dirs++] = xstrdup(s->owned_dirs[i]);
    qsort(p.owned_dirs, p.nowned_dirs, sizeof *p.owned_dirs, cmp_str);

    /* settings: the image config minus rootfs (fixed key order => stable hash and ID) */
    autojson cJSON *cfg = wd_json_new_object();
    wd_json_add_str(cfg, "User", s->user ? s->user : WD_IMAGE_USER);
    cJSON *env = wd_json_add_array(cfg, "Env");
    wd_json_arr_add_strv(env, s->env, s->nenv);
    cJSON *ep = wd_json_add_array(cfg, "Entrypoint");
    wd_json_arr_add_str(ep, s->shim_path ? WD_IMAGE_SHIM_PATH : binpath);
    cJSON *cmd = wd_json_add_array(cfg, "Cmd");
    if (s->ncmd)
        wd_json_arr_add_strv(cmd, s->cmd, s->ncmd);
    else if (s->shim_path)
        wd_json_arr_add_str(cmd, binpath);
    wd_json_add_str(cfg, "WorkingDir", "/");
    cJSON *labels = wd_json_add_object(cfg, "Labels");
    wd_json_add_str(labels, WD_LABEL_APP, s->app);
    for (size_t i = 0; i < s->nlabels; i++) {
        cJSON_DeleteItemFromObjectCaseSensitive(labels, s->labels[i].key);
        wd_json_add_str(labels, s->labels[i].key, s->labels[i].value);
    }
    for (size_t i = 0; i < nextra; i++) {
        cJSON_DeleteItemFromObjectCaseSensitive(labels, extra[i].key);
        wd_json_add_str(labels, extra[i].key, extra[i].value);
    }
    autojson cJSON *settings = wd_json_new_object();
    wd_json_add_str(settings, "architecture", p.arch);
    cJSON_AddItemToObject(settings, "config", WD_STEAL(cfg));
    p.settings = wd_json_print(settings);

    qsort(p.files, p.nfiles, sizeof *p.files, cmp_files);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (md == NULL)
        abort();
    unsigned char dig[32];
    unsigned dlen = 0;
    EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    EVP_DigestUpdate(md, "weaver-docker image v1\n", 23);
    EVP_DigestUpdate(md, p.settings, strlen(p.settings) + 1);
    for (size_t i = 0; i < p.nfiles; i++) {
        char hdr[64];
        int hn = snprintf(hdr, sizeof hdr, "%o %zu", (unsigned)p.files[i].mode, p.files[i].len);
        EVP_DigestUpdate(md, p.files[i].path, strlen(p.files[i].path) + 1);
        EVP_DigestUpdate(md, hdr, (size_t)hn + 1);
        EVP_DigestUpdate(md, p.files[i].data, p.files[i].len);
    }
    for (size_t i = 0; i < p.nowned_dirs; i++) {
        EVP_DigestUpdate(md, "owned-dir ", 10);
        EVP_DigestUpdate(md, p.owned_dirs[i], strlen(p.owned_dirs[i]) + 1);
    }
    EVP_DigestFinal_ex(md, dig, &dlen);
    EVP_MD_CTX_free(md);
    wd_hex(dig, sizeof dig, p.hash);
    p.tag = xasprintf(WD_IMAGE_REPO_PREFIX "%s:%.12s", s->app, p.hash);
    *out = p;
    return 0;
}

/* ---- tar writing -------------------------------------------------------------------------- */

static la_ssize_t buf_write(struct archive *a, void *arg, const void *data, size_t n)
{
    (void)a;
    return wd_buf_append(arg, data, n) < 0 ? -1 : (la_ssize_t)n;
}

static void archive_freep(struct archive **a)
{
    if (*a)
        archive_write_free(*a);
}
#define autoarchive __attribute__((cleanup(archive_freep)))

static struct archive *tar_open(struct wd_buf *out)
{
    struct archive *a = archive_write_new();
    if (a == NULL)
        abort();
    archive_write_set_format_pax_restricted(a);
    archive_write_add_filter_none(a);
    archive_write_set_bytes_in_last_block(a, 1);
    if (archive_write_open(a, out, NULL, buf_write, NULL) != ARCHIVE_OK)
        abort(); /* only fails on allocation with these callbacks */
    return a;
}

static int tar_entry_owned(struct archive *a, const char *path, bool dir, uint32_t mode,
                           const void *data, size_t len, int64_t uid, struct wd_error **err);

static int tar_entry(struct archive *a, const char *path, bool dir, uint32_t mode, const void *data,
                     size_t len, struct wd_error **err)
{
    return tar_entry_owned(a, path, dir, mode, data, len, 0, err);
}

static int tar_entry_owned(struct archive *a, const char *path, bool dir, uint32_t mode,
                           const void *data, size_t len, int64_t uid, struct wd_error **err)
{
    struct archive_entry *e = archive_entry_new();
    if (e == NULL)
        abort();
    archive_entry_set_pathname(e, path);
    archive_entry_set_filetype(e, dir ? AE_IFDIR : AE_IFREG);
    archive_entry_set_perm(e, (__LA_MODE_T)mode);
    archive_entry_set_size(e, dir ? 0 : (la_int64_t)len);
    archive_entry_set_uid(e, uid);
    archive_entry_set_gid(e, uid);
    archive_entry_set_mtime(e, 0, 0);
    int rc = archive_write_header(a, e);
    archive_entry_free(e);
    if (rc != ARCHIVE_OK)
        return wd_err(err, EIO, "tar %s: %s", path, archive_error_string(a));
    if (!dir && len && archive_write_data(a, data, len) != (la_ssize_t)len)
        return wd_err(err, EMSGSIZE, "tar %s: %s", path, archive_error_string(a));
    return 0;
}

static int tar_close(struct archive *a, struct wd_error **err)
{
    if (archive_write_close(a) != ARCHIVE_OK) /* style.md §3: check close before free */
        return wd_err(err, EIO, "tar: %s", archive_error_string(a));
    return 0;
}

struct tree_ent {
    char *path; /* relative, dirs end without '/' */
    bool dir;
    bool owned; /* by the image user */
    uint32_t mode;
    const struct wd_image_file *f;
};

static int cmp_ent(const void *a, const void *b)
{
    return strcmp(((const struct tree_ent *)a)->path, ((const struct tree_ent *)b)->path);
}

static void add_ent(struct tree_ent **v, size_t *n, const char *path, bool dir, uint32_t mode,
                    const struct wd_image_file *f)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp((*v)[i].path, path) == 0)
            return;
    *v = xrealloc(*v, (*n + 1) * sizeof **v);
    (*v)[(*n)++] = (struct tree_ent){xstrdup(path), dir, false, mode, f};
}

/* Write the rootfs (with @prefix, "" or "rootfs/") in sorted order. */
static int write_tree(struct archive *a, const struct wd_image_plan *p, const char *prefix,
                      struct wd_error **err)
{
    struct tree_ent *v = NULL;
    size_t n = 0;
    add_ent(&v, &n, "app", true, 0755, NULL);
    add_ent(&v, &n, "tmp", true, 01777, NULL);
    for (size_t i = 0; i < p->nfiles; i++) {
        const char *rel = p->files[i].path + (p->files[i].path[0] == '/');
        for (const char *s = strchr(rel, '/'); s; s = strchr(s + 1, '/')) {
            char *dir = xstrndup(rel, (size_t)(s - rel));
            add_ent(&v, &n, dir, true, 0755, NULL);
            free(dir);
        }
        add_ent(&v, &n, rel, false, p->files[i].mode, &p->files[i]);
    }
    for (size_t i = 0; i < p->nowned_dirs; i++) {
        const char *rel = p->owned_dirs[i] + (p->owned_dirs[i][0] == '/');
        for (const char *s = strchr(rel, '/'); s; s = strchr(s + 1, '/')) {
            char *dir = xstrndup(rel, (size_t)(s - rel));
            add_ent(&v, &n, dir, true, 0755, NULL);
            free(dir);
        }
        add_ent(&v, &n, rel, true, 0755, NULL);
        for (size_t k = 0; k < n; k++)
            if (strcmp(v[k].path, rel) == 0)
                v[k].owned = true;
    }
    qsort(v, n, sizeof *v, cmp_ent);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (rc == 0) {
            autofree char *path = xasprintf("%s%s%s", prefix, v[i].path, v[i].dir ? "/" : "");
            rc = tar_entry_owned(a, path, v[i].dir, v[i].mode, v[i].f ? v[i].f->data : NULL,
                                 v[i].f ? v[i].f->len : 0, v[i].owned ? WD_IMAGE_UID : 0, err);
        }
        free(v[i].path);
    }
    free(v);
    return rc;
}

int wd_image_layer_tar(const struct wd_image_plan *p, struct wd_buf *out, struct wd_error **err)
{
    autoarchive struct archive *a = tar_open(out);
    if (write_tree(a, p, "", err) < 0 || tar_close(a, err) < 0)
        return wd_err_wrap(err, "image layer");
    return 0;
}

static void sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char dig[32];
    unsigned dlen = 0;
    EVP_Digest(data, len, dig, &dlen, EVP_sha256(), NULL);
    wd_hex(dig, sizeof dig, out);
}

int wd_image_archive(const struct wd_image_plan *p, struct wd_buf *out, char config_hex[65],
                     struct wd_error **err)
{
    struct wd_buf layer = {.max = out->max};
    if (wd_image_layer_tar(p, &layer, err) < 0) {
        wd_buf_free(&layer);
        return -(*err)->errnum;
    }
    char layer_hex[65];
    sha256_hex(layer.data, layer.len, layer_hex);

    autojson cJSON *settings = cJSON_Parse(p->settings);
    autojson cJSON *cfg = wd_json_new_object();
    wd_json_add_str(cfg, "architecture", p->arch);
    if (p->created > 0) { /* else `docker images` shows CREATED N/A */
        char when[32];
        time_t t = (time_t)p->created;
        struct tm tm;
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
        wd_json_add_str(cfg, "created", when);
    }
    cJSON_AddItemReferenceToObject(cfg, "config",
                                   cJSON_GetObjectItemCaseSensitive(settings, "config"));
    wd_json_add_str(cfg, "os", "linux");
    cJSON *rootfs = wd_json_add_object(cfg, "rootfs");
    wd_json_add_str(rootfs, "type", "layers");
    autofree char *diff = xasprintf("sha256:%s", layer_hex);
    wd_json_arr_add_str(wd_json_add_array(rootfs, "diff_ids"), diff);
    autofree char *cfgtext = wd_json_print(cfg);
    sha256_hex(cfgtext, strlen(cfgtext), config_hex);

    autojson cJSON *man = wd_json_new_array();
    cJSON *m0 = wd_json_new_object();
    cJSON_AddItemToArray(man, m0);
    autofree char *cfgname = xasprintf("%s.json", config_hex);
    autofree char *layername = xasprintf("%s/layer.tar", layer_hex);
    wd_json_add_str(m0, "Config", cfgname);
    wd_json_arr_add_str(wd_json_add_array(m0, "RepoTags"), p->tag);
    wd_json_arr_add_str(wd_json_add_array(m0, "Layers"), layername);
    autofree char *mantext = wd_json_print(man);

    autoarchive struct archive *a = tar_open(out);
    autofree char *layerdir = xasprintf("%s/", layer_hex);
    int rc = tar_entry(a, cfgname, false, 0644, cfgtext, strlen(cfgtext), err);
    if (rc == 0)
        rc = tar_entry(a, layerdir, true, 0755, NULL, 0, err);
    if (rc == 0)
        rc = tar_entry(a, layername, false, 0644, layer.data, layer.len, err);
    if (rc == 0)
        rc = tar_entry(a, "manifest.json", false, 0644, mantext, strlen(mantext), err);
    if (rc == 0)
        rc = tar_close(a, err);
    wd_buf_free(&layer);
    return rc < 0 ? wd_err_wrap(err, "image archive") : 0;
}

/* Dockerfile string: JSON string syntax is valid in exec-form arrays and quoted values. */
static void df_json_array(struct wd_buf *b, const cJSON *arr)
{
    autofree char *t = wd_json_print(arr);
    (void)wd_buf_printf(b, "%s\n", t);
}

int wd_image_context(const struct wd_image_plan *p, struct wd_buf *out, struct wd_error **err)
{
    autojson cJSON *settings = cJSON_Parse(p->settings);
    const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(settings, "config");
    struct wd_buf df = {0};
    (void)wd_buf_printf(&df, "FROM scratch\nCOPY rootfs/ /\n");
    for (size_t i = 0; i < p->nowned_dirs; i++) /* COPY makes everything root's otherwise */
        (void)wd_buf_printf(&df, "COPY --chown=%s rootfs%s/ %s/\n", WD_IMAGE_USER,
                            p->owned_dirs[i], p->owned_dirs[i]);
    (void)wd_buf_printf(&df, "USER %s\nWORKDIR /\n", wd_json_str(cfg, "User"));
    const cJSON *e;
    cJSON_ArrayForEach(e, wd_json_arr(cfg, "Env"))
    {
        const char *kv = cJSON_IsString(e) ? e->valuestring : NULL;
        const char *eq = kv ? strchr(kv, '=') : NULL;
        if (eq == NULL)
            continue;
        cJSON *v = cJSON_CreateString(eq + 1);
        autofree char *q = wd_json_print(v);
        cJSON_Delete(v);
        (void)wd_buf_printf(&df, "ENV %.*s=%s\n", (int)(eq - kv), kv, q);
    }
    (void)wd_buf_printf(&df, "ENTRYPOINT ");
    df_json_array(&df, wd_json_arr(cfg, "Entrypoint"));
    if (cJSON_GetArraySize(wd_json_arr(cfg, "Cmd")) > 0) {
        (void)wd_buf_printf(&df, "CMD ");
        df_json_array(&df, wd_json_arr(cfg, "Cmd"));
    }
    /* labels go in the /build query (labels=), which both engines apply */
    autoarchive struct archive *a = tar_open(out);
    int rc = tar_entry(a, "Dockerfile", false, 0644, df.data, df.len, err);
    if (rc == 0)
        rc = tar_entry(a, "rootfs/", true, 0755, NULL, 0, err);
    if (rc == 0)
        rc = write_tree(a, p, "rootfs/", err);
    if (rc == 0)
        rc = tar_close(a, err);
    wd_buf_free(&df);
    return rc < 0 ? wd_err_wrap(err, "build context") : 0;
}

/* ---- ensure ------------------------------------------------------------------------------- */

int wd_image_ensure(struct wd_docker *d, const struct wd_image_spec *s, struct wd_image_result *out,
                    struct wd_error **err)
{
    int64_t t0 = wd_now_ms();
    size_t nextra = 0;
    const struct wd_label *extra = wd_docker_extra_labels(d, &nextra);
    struct wd_image_plan p = {0};
    int rc = wd_image_plan_make(s, extra, nextra, &p, err);
    if (rc < 0)
        return rc;
    struct wd_image_result r = {.tag = xstrdup(p.tag), .nlibs = p.nlibs};
    struct wd_image_info ii = {0};
    rc = wd_docker_image_inspect(d, p.tag, &ii, err);
    if (rc == 0) {
        r.reused = true;
    } else if (rc == -ENOENT) {
        wd_err_free(err);
        struct wd_buf tar = {.max = (size_t)WD_MAX_IMAGE_FILE * 2};
        char cfg_hex[65] = "";
        autofree char *loaded = NULL;
        autofree char *built = NULL;
        if (s->method == WD_IMAGE_BUILD) {
            rc = wd_image_context(&p, &tar, err);
            if (rc == 0) {
                r.upload_bytes = tar.len;
                rc = wd_docker_image_build(d, tar.data, tar.len, p.tag, NULL, 0, &built, err);
            }
        } else {
            rc = wd_image_archive(&p, &tar, cfg_hex, err);
            if (rc == 0) {
                r.upload_bytes = tar.len;
                rc = wd_docker_image_load(d, tar.data, tar.len, &loaded, err);
            }
        }
        wd_buf_free(&tar);
        if (rc == 0)
            rc = wd_docker_image_inspect(d, p.tag, &ii, err);
        if (rc == 0 && cfg_hex[0] &&
            strcmp(ii.id + (strncmp(ii.id, "sha256:", 7) ? 0 : 7), cfg_hex) != 0)
            wd_warn("image %s: engine reports ID %s, expected sha256:%s", p.tag, ii.id, cfg_hex);
    }
    if (rc < 0) {
        wd_image_plan_free(&p);
        wd_image_result_free(&r);
        return wd_err_wrap(err, "image %s", s->app);
    }
    r.id = WD_STEAL(ii.id);
    r.size_bytes = ii.size_bytes;
    wd_image_info_free(&ii);
    wd_image_plan_free(&p);
    r.elapsed_ms = wd_now_ms() - t0;
    wd_info("image %s: %s (%s, %lld ms)", r.tag, r.reused ? "unchanged" : "uploaded", r.id,
            (long long)r.elapsed_ms);
    *out = r;
    return 0;
}

/* $WEAVER_DOCKER_SHIM, shim/ next to our executable (the build tree), or
 * ../lib/weaver-docker/ (installed). */
/* $ENV, else SUBDIR/NAME next to our executable, else ../lib/weaver-docker/NAME from it. */
static char *find_helper(const char *env_name, const char *subdir, const char *name)
{
    const char *env = getenv(env_name);
    if (env && *env)
        return xstrdup(env);
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return NULL;
    exe[n] = 0;
    char *dir = dirname(exe);
    char *cands[2] = {xasprintf("%s/%s/%s", dir, subdir, name),
                      xasprintf("%s/../lib/weaver-docker/%s", dir, name)};
    char *found = NULL;
    for (int i = 0; i < 2; i++) {
        if (found == NULL && access(cands[i], R_OK) == 0)
            found = cands[i];
        else
            free(cands[i]);
    }
    return found;
}

char *wd_image_find_shim(void)
{
    return find_helper("WEAVER_DOCKER_SHIM", "shim", "weaver-docker-shim");
}

char *wd_image_find_manager(void)
{
    return find_helper("WEAVER_DOCKER_MANAGER", "manager", "weaver-docker-manager");
}
