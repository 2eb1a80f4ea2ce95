/*
 * cmd_pop3_apop.h - `postern pop3 apop set USER` and `postern pop3 apop clear USER`.
 */
#ifndef POSTERN_CMD_POP3_APOP_H
#define POSTERN_CMD_POP3_APOP_H

#include "lib/config.h"

/*
 * cmd_pop3_apop - argv is {"set"|"clear", USER} (a leading "apop" is
 * skipped, so cmd_pop3.c may pass its argv from the action on). The secret
 * is read from the terminal (echo off, asked twice) or as one line from
 * stdin, never from argv. Returns the process exit status (0, 1 error,
 * 2 usage).
 */
int cmd_pop3_apop(const struct cfg *cfg, int argc, char **argv);

#endif
