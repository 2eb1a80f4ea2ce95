/*
 * cmd_user.h - `postern user add|del|passwd|list`.
 */
#ifndef POSTERN_CMD_USER_H
#define POSTERN_CMD_USER_H

#include "lib/config.h"

/* cmd_user_main - argv[0] is the action. Returns the process exit status. */
int cmd_user_main(const struct cfg *cfg, int argc, char **argv);

#endif
