/*
 * serve.h - `postern serve`: the supervisor.
 */
#ifndef POSTERN_SERVE_H
#define POSTERN_SERVE_H

#include "lib/config.h"

/*
 * serve_main - prepare var/, make the self-signed certificate if needed, bind
 * the listeners, drop privileges (when root), fork the smtpd and qmgr
 * children and supervise them until SIGTERM/SIGINT. daemonize: detach from
 * the terminal first. Returns the process exit status.
 */
int serve_main(struct cfg *cfg, int daemonize);

#endif
