/*
 * serve.c - `postern serve`: prepare, bind, drop privileges, supervise.
 *
 * Order of start-up (each step fatal on failure, with a clear message):
 *   1. create <var>/{run,spool,mail,tls} and the spool subdirectories;
 *   2. make a self-signed certificate if none is configured/present;
 *   3. open the state database once (creates the schema);
 *   4. load the TLS certificate and key (while still root) and bind every listener;
 *   5. when running as root: chown var/ to run_user, setgroups/setgid/setuid
 *      to it (and refuse to go on if uid 0 could be regained);
 *   6. optionally daemonize; write <run>/postern.pid;
 *   7. fork the children: smtpd (gets the SMTP listening sockets), qmgr and,
 *      unless [bitmessage] enable = no, bmd (gets the Bitmessage listener).
 *
 * Supervision: the parent blocks SIGCHLD/SIGTERM/SIGINT/SIGHUP and waits
 * for them with sigtimedwait(), so no handler runs asynchronously. A child
 * that exits is restarted after restart_delay seconds; its pid file
 * <run>/<name>.pid is rewritten. SIGTERM/SIGINT: SIGTERM to every child,
 * wait up to SERVE_STOP_GRACE seconds, then SIGKILL; exit 0. Children die
 * with the parent (PR_SET_PDEATHSIG), so a kill -9 of the parent leaves no
 * orphan holding the ports.
 *
 * Children share no memory with each other; they meet in the spool, the
 * database and the Maildirs, so a crash of one loses nothing another
 * acknowledged.
 */
#include "serve.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/netaddr.h"
#include "lib/spool.h"
#include "lib/tls.h"
#include "lib/userdb.h"
#include "bitmessage/bmd.h"
#include "directory/directoryd.h"
#include "queue/qmgr.h"
#include "pop3/pop3d.h"
#include "smtp/smtpd.h"

#define SERVE_STOP_GRACE 10
#define SERVE_LISTEN_BACKLOG 1024
#define SERVE_PATH_MAX 4096
#define SERVE_DEFAULT_USER "postern"

enum serve_child_kind {
    SERVE_SMTPD = 0,
    SERVE_QMGR,
    SERVE_BMD,
    SERVE_POP3D,
    SERVE_DIRECTORYD,
    SERVE__NCHILD
};

struct serve_child {
    const char *name;
    int enabled;
    pid_t pid;         /* 0 when not running */
    time_t restart_at; /* when to start it again */
    unsigned restarts;
};

struct serve_state {
    struct cfg *cfg;
    struct smtpd_listen_fds fds;
    int bm_fd;                       /* Bitmessage P2P listener or -1 */
    int dir_fd;                      /* directory HTTPS listener or -1 */
    struct pop3d_listen_fds pop3fds; /* .tls is the same SSL_CTX as fds.tls */
    struct serve_child child[SERVE__NCHILD];
    sigset_t sigs;
    sigset_t oldmask;
};

/* ---- preparation ---- */

static int serve_mkdir(const char *path, mode_t mode)
{
    if (mkdir(path, mode) == 0 || errno == EEXIST)
        return 0;
    fprintf(stderr, "postern: cannot create %s: %s\n", path, strerror(errno));
    return PST_EIO;
}

static int serve_path(char *out, const char *dir, const char *name)
{
    int n = snprintf(out, SERVE_PATH_MAX, "%s/%s", dir, name);
    return n < 0 || n >= SERVE_PATH_MAX ? PST_ELIMIT : 0;
}

static int serve_prepare_dirs(const struct cfg *cfg)
{
    char tlsdir[SERVE_PATH_MAX];
    if (serve_mkdir(cfg->var_dir, 0755) < 0 || serve_mkdir(cfg->run_dir, 0755) < 0 ||
        serve_mkdir(cfg->mail_dir, 0700) < 0 || serve_path(tlsdir, cfg->var_dir, "tls") < 0 ||
        serve_mkdir(tlsdir, 0700) < 0)
        return PST_EIO;
    int rc = spool_init(cfg->spool_dir);
    if (rc < 0)
        fprintf(stderr, "postern: cannot prepare spool %s: %s\n", cfg->spool_dir, err_str(rc));
    return rc;
}

static int serve_bind(struct serve_state *st)
{
    const char *specs[SMTPD_PORT__COUNT] = {st->cfg->smtp_listen, st->cfg->submission_listen,
                                            st->cfg->smtps_listen};
    for (int k = 0; k < SMTPD_PORT__COUNT; k++) {
        st->fds.fd[k] = -1;
        if (!specs[k] || !specs[k][0])
            continue;
        int fd = netaddr_listen(specs[k], SERVE_LISTEN_BACKLOG);
        if (fd < 0) {
            fprintf(stderr, "postern: cannot listen on %s (%s): %s\n", specs[k],
                    smtpd_port_name((enum smtpd_port_kind)k), strerror(errno));
            return PST_EIO;
        }
        st->fds.fd[k] = fd;
        log_info("serve listening listener=%s addr=%s", smtpd_port_name((enum smtpd_port_kind)k),
                 specs[k]);
    }
    st->bm_fd = -1;
    if (st->cfg->bm_enable && st->cfg->bm_listen[0] != '\0') {
        st->bm_fd = netaddr_listen(st->cfg->bm_listen, SERVE_LISTEN_BACKLOG);
        if (st->bm_fd < 0) {
            fprintf(stderr, "postern: cannot listen on %s (bitmessage): %s\n", st->cfg->bm_listen,
                    strerror(errno));
            return PST_EIO;
        }
        log_info("serve listening listener=bitmessage addr=%s", st->cfg->bm_listen);
    }
    st->dir_fd = -1;
    if (st->cfg->dir_enable && st->cfg->dir_listen[0] != '\0') {
        st->dir_fd = netaddr_listen(st->cfg->dir_listen, SERVE_LISTEN_BACKLOG);
        if (st->dir_fd < 0) {
            fprintf(stderr, "postern: cannot listen on %s (directory): %s\n", st->cfg->dir_listen,
                    strerror(errno));
            return PST_EIO;
        }
        log_info("serve listening listener=directory addr=%s", st->cfg->dir_listen);
    }
    const char *pspecs[POP3D_LISTEN__COUNT] = {st->cfg->pop3_listen, st->cfg->pop3s_listen};
    st->pop3fds.tls = st->fds.tls;
    for (int k = 0; k < POP3D_LISTEN__COUNT; k++) {
        st->pop3fds.fd[k] = -1;
        if (!pspecs[k] || !pspecs[k][0])
            continue;
        int fd = netaddr_listen(pspecs[k], SERVE_LISTEN_BACKLOG);
        if (fd < 0) {
            fprintf(stderr, "postern: cannot listen on %s (%s): %s\n", pspecs[k],
                    pop3d_listener_name((enum pop3d_listener)k), strerror(errno));
            return PST_EIO;
        }
        st->pop3fds.fd[k] = fd;
        log_info("serve listening listener=%s addr=%s", pop3d_listener_name((enum pop3d_listener)k),
                 pspecs[k]);
    }
    return 0;
}

/* serve_close_listeners - close every listening socket except keep (a child's own). */
static void serve_close_listeners(struct serve_state *st, enum serve_child_kind keep)
{
    if (keep != SERVE_SMTPD)
        for (int k = 0; k < SMTPD_PORT__COUNT; k++)
            if (st->fds.fd[k] >= 0)
                close(st->fds.fd[k]);
    if (keep != SERVE_BMD && st->bm_fd >= 0)
        close(st->bm_fd);
    if (keep != SERVE_DIRECTORYD && st->dir_fd >= 0)
        close(st->dir_fd);
    if (keep != SERVE_POP3D)
        for (int k = 0; k < POP3D_LISTEN__COUNT; k++)
            if (st->pop3fds.fd[k] >= 0)
                close(st->pop3fds.fd[k]);
}

/* serve_chown_tree - give var/ to the unprivileged user (only the entries we create and use). */
static int serve_chown_tree(const struct cfg *cfg, uid_t uid, gid_t gid)
{
    /* TLS keys are not given away: the supervisor loads them before dropping privileges. */
    /* The POP3 upstream key encrypts credentials at rest; pop3d reads it after the drop. */
    const char *paths[] = {cfg->var_dir,   cfg->run_dir, cfg->mail_dir,
                           cfg->spool_dir, cfg->db_path, cfg->pop3_upstream_key};
    for (size_t i = 0; i < PST_ARRAY_LEN(paths); i++) {
        if (lchown(paths[i], uid, gid) < 0 && errno != ENOENT) {
            fprintf(stderr, "postern: chown %s: %s\n", paths[i], strerror(errno));
            return PST_EIO;
        }
    }
    static const char *const spool_sub[] = {"tmp",      "incoming", "corrupt",
                                            "deferred", "hold",     "state"};
    static const char *const db_side[] = {"-wal", "-shm"};
    char p[SERVE_PATH_MAX];
    for (size_t i = 0; i < PST_ARRAY_LEN(spool_sub); i++)
        if (serve_path(p, cfg->spool_dir, spool_sub[i]) == 0 && lchown(p, uid, gid) < 0 &&
            errno != ENOENT)
            return PST_EIO;
    for (size_t i = 0; i < PST_ARRAY_LEN(db_side); i++) {
        int n = snprintf(p, sizeof p, "%s%s", cfg->db_path, db_side[i]);
        if (n > 0 && (size_t)n < sizeof p && lchown(p, uid, gid) < 0 && errno != ENOENT)
            return PST_EIO;
    }
    return 0;
}

/*
 * serve_create_user - first start as root with the default run_user: create
 * the system account, as a package's install script would. Only for the
 * default name; a configured user must exist.
 */
static int serve_create_user(void)
{
    pid_t pid = fork();
    if (pid < 0)
        return PST_EIO;
    if (pid == 0) {
        execl("/usr/sbin/useradd", "useradd", "--system", "--no-create-home", "--home-dir",
              "/nonexistent", "--shell", "/usr/sbin/nologin", SERVE_DEFAULT_USER, (char *)NULL);
        _exit(127);
    }
    int status;
    if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return PST_EIO;
    log_info("serve created_user user=%s reason=\"default run_user did not exist\"",
             SERVE_DEFAULT_USER);
    return 0;
}

static int serve_drop_privileges(const struct cfg *cfg)
{
    if (geteuid() != 0)
        return 0;
    struct passwd *pw = getpwnam(cfg->run_user);
    if (!pw && strcmp(cfg->run_user, SERVE_DEFAULT_USER) == 0 && serve_create_user() == 0)
        pw = getpwnam(cfg->run_user);
    if (!pw) {
        fprintf(stderr,
                "postern: run_user '%s' does not exist; create it (useradd -r %s) or set "
                "[server] run_user\n",
                cfg->run_user, cfg->run_user);
        return PST_ECONFIG;
    }
    if (pw->pw_uid == 0) {
        fprintf(stderr, "postern: run_user must not be root\n");
        return PST_ECONFIG;
    }
    if (serve_chown_tree(cfg, pw->pw_uid, pw->pw_gid) < 0)
        return PST_EIO;
    if (setgroups(0, NULL) < 0 || setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0) {
        fprintf(stderr, "postern: cannot drop privileges to %s: %s\n", cfg->run_user,
                strerror(errno));
        return PST_EPERM;
    }
    if (setuid(0) == 0) {
        fprintf(stderr, "postern: privileges could be regained after dropping; refusing to run\n");
        return PST_EPERM;
    }
    log_info("serve privileges_dropped user=%s uid=%ld", cfg->run_user, (long)pw->pw_uid);
    return 0;
}

static int serve_write_pid(const struct cfg *cfg, const char *name, pid_t pid)
{
    char path[SERVE_PATH_MAX], tmp[SERVE_PATH_MAX + 8], text[32];
    int n = snprintf(path, sizeof path, "%s/%s.pid", cfg->run_dir, name);
    int m = snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int t = snprintf(text, sizeof text, "%ld\n", (long)pid);
    if (n < 0 || (size_t)n >= sizeof path || m < 0 || (size_t)m >= sizeof tmp || t < 0)
        return PST_ELIMIT;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return PST_EIO;
    ssize_t w = write(fd, text, (size_t)t);
    close(fd);
    if (w != t || rename(tmp, path) < 0) {
        unlink(tmp);
        return PST_EIO;
    }
    return 0;
}

static void serve_remove_pid(const struct cfg *cfg, const char *name)
{
    char path[SERVE_PATH_MAX];
    int n = snprintf(path, sizeof path, "%s/%s.pid", cfg->run_dir, name);
    if (n > 0 && (size_t)n < sizeof path)
        unlink(path);
}

/* ---- children ---- */

static void serve_child_main(struct serve_state *st, enum serve_child_kind kind)
{
    static char tag[64];
    snprintf(tag, sizeof tag, "postern/%s", st->child[kind].name);
    log_set_tag(tag);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() == 1)
        _exit(0); /* the parent died before prctl took effect */
    sigprocmask(SIG_SETMASK, &st->oldmask, NULL);
    int rc;
    serve_close_listeners(st, kind);
    switch (kind) {
    case SERVE_SMTPD:
        rc = smtpd_run(st->cfg, &st->fds);
        break;
    case SERVE_QMGR:
        rc = qmgr_run(st->cfg);
        break;
    case SERVE_BMD:
        rc = bmd_run(st->cfg, st->bm_fd);
        break;
    case SERVE_POP3D:
        rc = pop3d_run(st->cfg, &st->pop3fds);
        break;
    case SERVE_DIRECTORYD:
        rc = directoryd_run(st->cfg, st->dir_fd, st->fds.tls);
        break;
    default:
        rc = PST_EINVAL;
        break;
    }
    _exit(rc < 0 ? 1 : 0);
}

static void serve_start_child(struct serve_state *st, enum serve_child_kind kind)
{
    struct serve_child *c = &st->child[kind];
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        log_error("serve fork_failed child=%s errno=%d", c->name, errno);
        c->restart_at = time(NULL) + (st->cfg->restart_delay > 0 ? st->cfg->restart_delay : 1);
        return;
    }
    if (pid == 0)
        serve_child_main(st, kind);
    c->pid = pid;
    if (serve_write_pid(st->cfg, c->name, pid) < 0)
        log_warn("serve pidfile_failed child=%s", c->name);
    log_info("serve started child=%s pid=%ld restarts=%u", c->name, (long)pid, c->restarts);
}

static void serve_reap(struct serve_state *st)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (int k = 0; k < SERVE__NCHILD; k++) {
            struct serve_child *c = &st->child[k];
            if (c->pid != pid)
                continue;
            if (WIFSIGNALED(status))
                log_warn("serve child_died child=%s pid=%ld signal=%d", c->name, (long)pid,
                         WTERMSIG(status));
            else
                log_warn("serve child_exited child=%s pid=%ld status=%d", c->name, (long)pid,
                         WEXITSTATUS(status));
            c->pid = 0;
            c->restarts++;
            c->restart_at = time(NULL) + st->cfg->restart_delay;
        }
    }
}

static void serve_stop_children(struct serve_state *st)
{
    for (int k = 0; k < SERVE__NCHILD; k++)
        if (st->child[k].pid > 0)
            kill(st->child[k].pid, SIGTERM);
    time_t deadline = time(NULL) + SERVE_STOP_GRACE;
    for (;;) {
        int alive = 0;
        int status;
        for (int k = 0; k < SERVE__NCHILD; k++) {
            struct serve_child *c = &st->child[k];
            if (c->pid > 0 && waitpid(c->pid, &status, WNOHANG) == c->pid)
                c->pid = 0;
            alive += c->pid > 0;
        }
        if (!alive)
            break;
        if (time(NULL) >= deadline) {
            for (int k = 0; k < SERVE__NCHILD; k++)
                if (st->child[k].pid > 0) {
                    log_warn("serve kill child=%s pid=%ld", st->child[k].name,
                             (long)st->child[k].pid);
                    kill(st->child[k].pid, SIGKILL);
                }
            deadline = time(NULL) + SERVE_STOP_GRACE;
        }
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    for (int k = 0; k < SERVE__NCHILD; k++)
        serve_remove_pid(st->cfg, st->child[k].name);
}

/* serve_supervise - the parent's loop: returns when asked to stop. */
static void serve_supervise(struct serve_state *st)
{
    for (;;) {
        time_t now = time(NULL);
        time_t next = now + 60;
        for (int k = 0; k < SERVE__NCHILD; k++) {
            struct serve_child *c = &st->child[k];
            if (!c->enabled)
                continue;
            if (c->pid == 0 && c->restart_at <= now)
                serve_start_child(st, (enum serve_child_kind)k);
            if (c->pid == 0 && c->restart_at < next)
                next = c->restart_at;
        }
        struct timespec ts = {next > now ? next - now : 0, next > now ? 0 : 100 * 1000 * 1000};
        siginfo_t si;
        int sig = sigtimedwait(&st->sigs, &si, &ts);
        if (sig == SIGCHLD) {
            serve_reap(st);
        } else if (sig == SIGTERM || sig == SIGINT) {
            log_info("serve stopping signal=%d", sig);
            return;
        } else if (sig == SIGHUP) {
            log_info(
                "serve sighup action=none reason=\"reload is not supported; restart instead\"");
        }
    }
}

static void serve_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            log_warn("serve setrlimit_failed errno=%d", errno);
    }
}

int serve_main(struct cfg *cfg, int daemonize)
{
    struct serve_state st;
    memset(&st, 0, sizeof st);
    st.cfg = cfg;
    st.child[SERVE_SMTPD].name = "smtpd";
    st.child[SERVE_QMGR].name = "qmgr";
    st.child[SERVE_BMD].name = "bmd";
    st.child[SERVE_SMTPD].enabled = 1;
    st.child[SERVE_QMGR].enabled = 1;
    st.child[SERVE_BMD].enabled = cfg->bm_enable;
    st.child[SERVE_POP3D].name = "pop3d";
    st.child[SERVE_DIRECTORYD].name = "directoryd";
    st.child[SERVE_DIRECTORYD].enabled = cfg->dir_enable && cfg->dir_listen[0] != '\0';
    st.child[SERVE_POP3D].enabled = cfg->pop3_listen[0] != '\0' || cfg->pop3s_listen[0] != '\0';
    st.bm_fd = -1;
    umask(027);
    serve_raise_nofile();

    if (serve_prepare_dirs(cfg) < 0)
        return 1;
    int rc = tls_ensure_selfsigned(cfg->tls_cert, cfg->tls_key, cfg->hostname);
    if (rc < 0)
        log_warn("serve selfsigned_failed cert=%s err=\"%s\" tls=disabled", cfg->tls_cert,
                 err_str(rc));
    struct userdb *db = NULL;
    rc = userdb_open(cfg->db_path, &db);
    if (rc < 0) {
        fprintf(stderr, "postern: cannot open database %s: %s\n", cfg->db_path, err_str(rc));
        return 1;
    }
    userdb_close(&db);
    st.fds.tls = tls_server_ctx_new(cfg->tls_cert, cfg->tls_key, cfg->tls_min_version);
    if (!st.fds.tls)
        log_warn("serve tls_unavailable cert=%s reason=\"cannot load certificate or key\" "
                 "effect=\"no STARTTLS, no implicit-TLS listener\"",
                 cfg->tls_cert);
    if (serve_bind(&st) < 0)
        return 1;
    if (serve_drop_privileges(cfg) < 0)
        return 1;
    if (daemonize) {
        if (daemon(0, 0) < 0) {
            fprintf(stderr, "postern: daemon: %s\n", strerror(errno));
            return 1;
        }
        log_init("postern", LOG_LVL_INFO, LOG_TO_SYSLOG);
    }
    sigemptyset(&st.sigs);
    sigaddset(&st.sigs, SIGCHLD);
    sigaddset(&st.sigs, SIGTERM);
    sigaddset(&st.sigs, SIGINT);
    sigaddset(&st.sigs, SIGHUP);
    sigprocmask(SIG_BLOCK, &st.sigs, &st.oldmask);
    if (serve_write_pid(cfg, "postern", getpid()) < 0)
        log_warn("serve pidfile_failed child=postern");
    log_info("serve started pid=%ld version=%s config=%s var=%s", (long)getpid(), POSTERN_VERSION,
             cfg->config_path ? cfg->config_path : "(embedded defaults)", cfg->var_dir);

    serve_supervise(&st);
    serve_stop_children(&st);
    serve_close_listeners(&st, SERVE__NCHILD);
    serve_remove_pid(cfg, "postern");
    if (st.fds.tls)
        SSL_CTX_free(st.fds.tls);
    log_info("serve stopped");
    return 0;
}
