/*
 * cmd_directory.h - `postern directory import|list|show|remove|lookup` (see cmd_directory.c).
 */
#ifndef POSTERN_CMD_DIRECTORY_H
#define POSTERN_CMD_DIRECTORY_H

#include "lib/config.h"

/* cmd_directory_main - argv[0] is the action. Returns the process exit status. */
int cmd_directory_main(const struct cfg *cfg, int argc, char **argv);

#endif
