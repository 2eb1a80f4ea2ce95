/*
 * cmd_queue.h - `postern queue list|show|delete|flush`.
 */
#ifndef POSTERN_CMD_QUEUE_H
#define POSTERN_CMD_QUEUE_H

#include "lib/config.h"

/* cmd_queue_main - argv[0] is the action. Returns the process exit status. */
int cmd_queue_main(const struct cfg *cfg, int argc, char **argv);

#endif
