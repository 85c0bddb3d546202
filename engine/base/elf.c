/* The one ELF reader (engine/base/elf.h). Layout facts from the System V gABI and the ELF-64
 * object file format: little-endian only (the platforms Go targets on Linux that weaver runs on). */
#include "engine/base/elf.h"
#include "engine/base/util.h"

#include <errno.h>
#include <string.h>
#include <sys/utsname.h>

#define MAX_DYNSTR_LEN 4096 /* one DT_NEEDED or PT_INTERP string */

enum {
    ET_EXEC_ = 2,
    ET_DYN_ = 3,
    SHT_NOBITS_ = 8,
    PT_LOAD_ = 1,
    PT_DYNAMIC_ = 2,
    PT_INTERP_ = 3,
    DT_NULL_ = 0,
    DT_NEEDED_ = 1,
    DT_STRTAB_ = 5,
    DT_STRSZ_ = 10,
    SHN_XINDEX_ = 0xffff,
    PN_XNUM_ = 0xffff,
};

struct shdr {
    uint32_t name, type;
    uint64_t offset, size;
};

struct phdr {
    uint32_t type;
    uint64_t offset, vaddr, filesz;
};

static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

/* [off, off+n) lies inside the file. */
static bool in_file(const struct wd_elf *e, uint64_t off, uint64_t n)
{
    return off <= e->len && n <= e->len - off;
}

static int corrupt(const struct wd_elf *e, const char *what, struct wd_error **err)
{
    return wd_err(err, EINVAL,
                  "%s is a truncated or corrupt ELF file (%s); rebuild the app binary or copy it "
                  "again",
                  e->name, what);
}

static void read_shdr(const struct wd_elf *e, size_t i, struct shdr *s)
{
    const uint8_t *p = e->d + e->shoff + i * e->shentsize; /* range checked by elf_open */
    s->name = wd_get_u32le(p);
    s->type = wd_get_u32le(p + 4);
    if (e->is64) {
        s->offset = wd_get_u64le(p + 24);
        s->size = wd_get_u64le(p + 32);
    } else {
        s->offset = wd_get_u32le(p + 16);
        s->size = wd_get_u32le(p + 20);
    }
}

static void read_phdr(const struct wd_elf *e, size_t i, struct phdr *h)
{
    const uint8_t *p = e->d + e->phoff + i * e->phentsize; /* range checked by elf_open */
    h->type = wd_get_u32le(p);
    if (e->is64) {
        h->offset = wd_get_u64le(p + 8);
        h->vaddr = wd_get_u64le(p + 16);
        h->filesz = wd_get_u64le(p + 32);
    } else {
        h->offset = wd_get_u32le(p + 4);
        h->vaddr = wd_get_u32le(p + 8);
        h->filesz = wd_get_u32le(p + 16);
    }
}

/* A table of n entries of entsize bytes at off lies inside the file. */
static bool table_ok(const struct wd_elf *e, uint64_t off, size_t n, size_t entsize)
{
    uint64_t total;
    if (__builtin_mul_overflow((uint64_t)n, (uint64_t)entsize, &total))
        return false;
    return in_file(e, off, total);
}

int wd_elf_open(struct wd_elf *e, const uint8_t *data, size_t len, const char *name,
                struct wd_error **err)
{
    *e = (struct wd_elf){.d = data, .len = data ? len : 0, .name = name};
    const uint8_t *d = e->d;
    if (e->len < 4 || memcmp(d, "\x7f" "ELF", 4) != 0)
        return wd_err(err, EINVAL,
                      "%s is not an ELF executable; give weaver.toml or a Service Weaver app "
                      "binary built for linux",
                      e->name);
    if (e->len < 16)
        return corrupt(e, "short header", err);
    if (d[4] != 1 && d[4] != 2)
        return corrupt(e, "bad ELF class", err);
    if (d[5] == 2)
        return wd_err(err, EINVAL,
                      "%s is a big-endian ELF file; give a Service Weaver app binary built for "
                      "linux on a little-endian CPU (for example GOARCH=amd64 or arm64)",
                      e->name);
    if (d[5] != 1)
        return corrupt(e, "bad data encoding", err);
    e->is64 = d[4] == 2;
    size_t ehsize = e->is64 ? 64 : 52, phmin = e->is64 ? 56 : 32, shmin = e->is64 ? 64 : 40;
    if (e->len < ehsize)
        return corrupt(e, "short header", err);
    uint16_t type = get16(d + 16);
    if (type != ET_EXEC_ && type != ET_DYN_)
        return wd_err(err, EINVAL,
                      "%s is not an ELF executable (ELF type %u); give weaver.toml or a Service "
                      "Weaver app binary built for linux",
                      e->name, (unsigned)type);
    e->machine = get16(d + 18);
    size_t phnum, shnum, shstrndx;
    if (e->is64) {
        e->phoff = wd_get_u64le(d + 32);
        e->shoff = wd_get_u64le(d + 40);
        e->phentsize = get16(d + 54);
        phnum = get16(d + 56);
        e->shentsize = get16(d + 58);
        shnum = get16(d + 60);
        shstrndx = get16(d + 62);
    } else {
        e->phoff = wd_get_u32le(d + 28);
        e->shoff = wd_get_u32le(d + 32);
        e->phentsize = get16(d + 42);
        phnum = get16(d + 44);
        e->shentsize = get16(d + 46);
        shnum = get16(d + 48);
        shstrndx = get16(d + 50);
    }
    if (e->shoff == 0) {
        shnum = 0;
    } else {
        if (e->shentsize < shmin)
            return corrupt(e, "bad section header size", err);
        if (!table_ok(e, e->shoff, 1, e->shentsize))
            return corrupt(e, "section headers out of range", err);
        /* Extended numbering: the real counts live in section header 0. */
        const uint8_t *s0 = d + e->shoff;
        if (shnum == 0)
            shnum = e->is64 ? (size_t)wd_get_u64le(s0 + 32) : wd_get_u32le(s0 + 20);
        if (shstrndx == SHN_XINDEX_)
            shstrndx = wd_get_u32le(s0 + (e->is64 ? 40 : 24));
        if (phnum == PN_XNUM_)
            phnum = wd_get_u32le(s0 + (e->is64 ? 44 : 28));
        if (shnum > e->len / e->shentsize || !table_ok(e, e->shoff, shnum, e->shentsize))
            return corrupt(e, "section headers out of range", err);
    }
    if (phnum > 0) {
        if (e->phentsize < phmin)
            return corrupt(e, "bad program header size", err);
        if (phnum > e->len / e->phentsize || !table_ok(e, e->phoff, phnum, e->phentsize))
            return corrupt(e, "program headers out of range", err);
    }
    e->phnum = phnum;
    e->shnum = shnum;
    e->shstrndx = shstrndx < shnum ? shstrndx : 0;
    return 0;
}

/* Find a section by name. Returns 1 and sets *data and *n if found with contents in the file, 0 if
 * absent, or <0 with *err set if present but out of range. */
int wd_elf_section(const struct wd_elf *e, const char *want, const uint8_t **data, size_t *n,
                   struct wd_error **err)
{
    if (e->shnum == 0 || e->shstrndx == 0)
        return 0;
    struct shdr strs;
    read_shdr(e, e->shstrndx, &strs);
    if (strs.type == SHT_NOBITS_ || !in_file(e, strs.offset, strs.size))
        return corrupt(e, "section name table out of range", err);
    size_t wantlen = strlen(want);
    for (size_t i = 1; i < e->shnum; i++) {
        struct shdr s;
        read_shdr(e, i, &s);
        if (s.name >= strs.size || wantlen + 1 > strs.size - s.name)
            continue;
        if (memcmp(e->d + strs.offset + s.name, want, wantlen + 1) != 0)
            continue;
        if (s.type == SHT_NOBITS_)
            return 0;
        if (!in_file(e, s.offset, s.size))
            return corrupt(e, "section out of range", err);
        *data = e->d + s.offset;
        *n = (size_t)s.size;
        return 1;
    }
    return 0;
}

const char *wd_elf_goarch(const struct wd_elf *e)
{
    switch (e->machine) {
    case 3: return "386";
    case 8: return e->is64 ? "mips64le" : "mipsle";
    case 21: return "ppc64le";
    case 40: return "arm";
    case 62: return "amd64";
    case 183: return "arm64";
    case 243: return e->is64 ? "riscv64" : "riscv";
    case 258: return "loong64";
    default: return NULL;
    }
}

/* A NUL-terminated string at off, at most max bytes, inside [0, lim). NULL if none. */
static char *str_at(const struct wd_elf *e, uint64_t off, uint64_t lim)
{
    if (lim > e->len)
        lim = e->len;
    if (off >= lim)
        return NULL;
    size_t avail = (size_t)(lim - off);
    if (avail > MAX_DYNSTR_LEN)
        avail = MAX_DYNSTR_LEN;
    const uint8_t *p = e->d + off, *z = memchr(p, 0, avail);
    if (z == NULL || z == p)
        return NULL;
    return xstrndup((const char *)p, (size_t)(z - p));
}

/* Map a virtual address to a file offset through the PT_LOAD segments. */
static bool vaddr_to_off(const struct wd_elf *e, uint64_t addr, uint64_t *off, uint64_t *avail)
{
    for (size_t i = 0; i < e->phnum; i++) {
        struct phdr h;
        read_phdr(e, i, &h);
        if (h.type != PT_LOAD_ || addr < h.vaddr || addr - h.vaddr >= h.filesz)
            continue;
        uint64_t o = h.offset + (addr - h.vaddr);
        if (o < h.offset || o >= e->len)
            return false;
        *off = o;
        *avail = h.filesz - (addr - h.vaddr);
        if (*avail > e->len - o)
            *avail = e->len - o;
        return true;
    }
    return false;
}

static void push_str(char ***v, size_t *n, char *s)
{
    *v = xrealloc(*v, (*n + 1) * sizeof **v); /* *n is capped far below SIZE_MAX / 8 */
    (*v)[(*n)++] = s;
}

void wd_elf_dynamic(const struct wd_elf *e, char **interp, char ***needed, size_t *nneeded)
{
    *interp = NULL;
    *needed = NULL;
    *nneeded = 0;
    uint64_t dyn_off = 0, dyn_size = 0;
    bool has_dyn = false;
    for (size_t i = 0; i < e->phnum; i++) {
        struct phdr h;
        read_phdr(e, i, &h);
        if (h.type == PT_INTERP_ && *interp == NULL && in_file(e, h.offset, h.filesz))
            *interp = str_at(e, h.offset, h.offset + h.filesz);
        if (h.type == PT_DYNAMIC_ && !has_dyn && in_file(e, h.offset, h.filesz)) {
            has_dyn = true;
            dyn_off = h.offset;
            dyn_size = h.filesz;
        }
    }
    if (has_dyn) {
        size_t entsize = e->is64 ? 16 : 8;
        uint64_t strtab = 0, strsz = 0;
        bool has_strtab = false;
        size_t nent = (size_t)(dyn_size / entsize);
        /* First pass: the string table; second pass: DT_NEEDED (tags may come in any order). */
        for (size_t i = 0; i < nent; i++) {
            const uint8_t *p = e->d + dyn_off + i * entsize;
            uint64_t tag = e->is64 ? wd_get_u64le(p) : wd_get_u32le(p);
            uint64_t val = e->is64 ? wd_get_u64le(p + 8) : wd_get_u32le(p + 4);
            if (tag == DT_NULL_)
                break;
            if (tag == DT_STRTAB_) {
                strtab = val;
                has_strtab = true;
            } else if (tag == DT_STRSZ_) {
                strsz = val;
            }
        }
        uint64_t str_off = 0, avail = 0;
        if (has_strtab && vaddr_to_off(e, strtab, &str_off, &avail)) {
            if (strsz != 0 && strsz < avail)
                avail = strsz;
            for (size_t i = 0; i < nent && *nneeded < WD_ELF_MAX_NEEDED; i++) {
                const uint8_t *p = e->d + dyn_off + i * entsize;
                uint64_t tag = e->is64 ? wd_get_u64le(p) : wd_get_u32le(p);
                uint64_t val = e->is64 ? wd_get_u64le(p + 8) : wd_get_u32le(p + 4);
                if (tag == DT_NULL_)
                    break;
                if (tag != DT_NEEDED_ || val >= avail)
                    continue;
                char *s = str_at(e, str_off + val, str_off + avail);
                if (s != NULL)
                    push_str(needed, nneeded, s);
            }
        }
    }
}

static const struct {
    const char *machine, *goarch;
} host_arches[] = {
    {"x86_64", "amd64"},    {"amd64", "amd64"},   {"aarch64", "arm64"},  {"arm64", "arm64"},
    {"i386", "386"},        {"i486", "386"},      {"i586", "386"},       {"i686", "386"},
    {"riscv64", "riscv64"}, {"ppc64le", "ppc64le"}, {"s390x", "s390x"},
    {"loongarch64", "loong64"}, {"mips64", "mips64le"}, {"mips", "mipsle"},
};

const char *wd_host_goarch(void)
{
    struct utsname u;
    if (uname(&u) < 0)
        return "unknown";
    for (size_t i = 0; i < WD_ARRAY_LEN(host_arches); i++)
        if (strcmp(u.machine, host_arches[i].machine) == 0)
            return host_arches[i].goarch;
    if (strncmp(u.machine, "arm", 3) == 0) /* armv6l, armv7l, armv8l (32-bit userland) */
        return "arm";
    return "unknown";
}

uint16_t wd_elf_host_machine(void)
{
    static const uint16_t machines[] = {62, 183, 3, 40, 21, 243, 258, 8};
    const char *host = wd_host_goarch();
    for (size_t i = 0; i < WD_ARRAY_LEN(machines); i++) {
        struct wd_elf e = {.machine = machines[i], .is64 = true};
        const char *g = wd_elf_goarch(&e);
        e.is64 = false;
        const char *g32 = wd_elf_goarch(&e);
        if ((g && strcmp(g, host) == 0) || (g32 && strcmp(g32, host) == 0))
            return machines[i];
    }
    return 0;
}

int wd_elf_inspect(const uint8_t *buf, size_t len, const char *name, struct wd_elf_info *out,
                   struct wd_error **err)
{
    struct wd_elf e;
    int r = wd_elf_open(&e, buf, len, name, err);
    if (r < 0)
        return r;
    struct wd_elf_info info = {.machine = e.machine, .elf_class = e.is64 ? 2 : 1,
                               .goarch = wd_elf_goarch(&e)};
    wd_elf_dynamic(&e, &info.interp, &info.needed, &info.nneeded);
    info.is_static = info.interp == NULL && info.nneeded == 0;
    *out = info;
    return 0;
}

void wd_elf_info_free(struct wd_elf_info *e)
{
    if (e == NULL)
        return;
    free(e->interp);
    for (size_t i = 0; i < e->nneeded; i++)
        free(e->needed[i]);
    free(e->needed);
    memset(e, 0, sizeof *e);
}
