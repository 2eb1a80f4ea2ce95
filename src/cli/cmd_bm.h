/*
 * cmd_bm.h - `postern bm address|owner|send|status|outbox|inbox` (see cmd_bm.c).
 */
#ifndef POSTERN_CMD_BM_H
#define POSTERN_CMD_BM_H

#include "lib/config.h"

/* cmd_bm_main - argv[0] is the action. Returns the process exit status. */
int cmd_bm_main(const struct cfg *cfg, int argc, char **argv);

#endif
