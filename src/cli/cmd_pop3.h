/*
 * cmd_pop3.h - `postern pop3 upstream add|list|remove`, `postern pop3 stats`
 * and `postern pop3 apop set|clear` (see cmd_pop3.c).
 */
#ifndef POSTERN_CMD_POP3_H
#define POSTERN_CMD_POP3_H

#include "lib/config.h"

/* cmd_pop3_main - argv[0] is the action. Returns the process exit status. */
int cmd_pop3_main(const struct cfg *cfg, int argc, char **argv);

#endif
