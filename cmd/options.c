/* cmd/options.c - the one line for an option getopt did not accept. libc only: the static
 * compose manager (images/manager) links it too. */
#include "cmd/cmd.h"
#include "engine/base/error.h"

#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <string.h>

int wd_cmd_bad_option(const char *cmd, char **argv, const char *optstring,
                      struct wd_error **err)
{
    /* getopt printed nothing (main sets opterr to 0): one line of ours, naming the option */
    const char *arg = optind > 0 ? argv[optind - 1] : "";
    bool is_long = strncmp(arg, "--", 2) == 0;
    char shortopt[3] = {'-', (char)optopt, 0};
    /* a long option getopt knows sets optopt; a short one is known if optstring has it */
    bool missing = is_long ? optopt != 0 : optopt && strchr(optstring, optopt) != NULL;
    const char *what = is_long ? arg : shortopt;
    if (is_long && missing) /* --level= or --level at the end */
        what = arg;
    return wd_err(err, EINVAL, "%s: %s '%s' (see 'weaver-docker %s --help')", cmd,
                  missing ? "missing value for option" : "unknown option", what, cmd);
}
