/* Replays fuzz corpus files through a target's LLVMFuzzerTestOneInput, so gcc and ASan builds
 * run the same targets as regression tests. Usage: fuzz_x FILE_OR_DIR... */
#include "engine/base/util.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
    char *buf = NULL;
    size_t len = 0;
    if (wd_read_file(path, 64u << 20, &buf, &len) < 0) {
        fprintf(stderr, "replay: cannot read %s\n", path);
        return 1;
    }
    LLVMFuzzerTestOneInput((const uint8_t *)buf, len);
    free(buf);
    return 0;
}

int main(int argc, char **argv)
{
    int n = 0, bad = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) < 0)
            continue;
        if (!S_ISDIR(st.st_mode)) {
            bad += run_file(argv[i]);
            n++;
            continue;
        }
        DIR *d = opendir(argv[i]);
        struct dirent *e;
        while (d && (e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.')
                continue;
            char *p = xasprintf("%s/%s", argv[i], e->d_name);
            bad += run_file(p);
            free(p);
            n++;
        }
        if (d)
            closedir(d);
    }
    printf("replayed %d inputs\n", n);
    return bad ? 1 : 0;
}
