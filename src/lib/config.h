/*
 * config.h - Postern's configuration: one INI file read with libinih.
 *
 * Every key, its type, default, minimum and maximum lives in one table in
 * config.c (the only place defaults are written down; docs/config.md mirrors
 * it). A missing file means "embedded defaults". An unknown section or key,
 * or a bad value, is an error naming the file, line and key.
 *
 * The loaded struct cfg is read-only after start-up; it is the only global
 * mutable state a process has besides its event base.
 *
 * Types of values:
 *   string    any text without control characters; leading/trailing blanks trimmed
 *   path      a string made absolute against the current directory at load
 *   enum      one word out of a fixed set (case-insensitive)
 *   bool      yes/no, true/false, on/off, 1/0
 *   int       decimal integer within [min, max]
 *   size      integer with optional k/K, m/M, g/G suffix (powers of 1024)
 *   duration  integer with optional s, m, h, d suffix (default seconds)
 *   list      comma- or blank-separated words; may continue on indented lines
 *   listen    host:port or [v6]:port; empty disables the listener
 */
#ifndef POSTERN_CONFIG_H
#define POSTERN_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "err.h"

#define CFG_MAX_LIST 64      /* entries in one list value */
#define CFG_MAX_STR 1024     /* bytes in one string value */

struct cfg_list {
    size_t n;
    char *v[CFG_MAX_LIST]; /* owned by the cfg */
};

struct cfg {
    /* [server] */
    char *hostname;          /* default: gethostname() */
    char *var_dir;           /* default: ./var ; made absolute at load */
    char *run_user;          /* user to drop to when started as root; default "postern" */
    char *log_level;         /* debug|info|warn|error; default info */
    char *log_target;        /* stderr|syslog; default stderr */
    int64_t restart_delay;   /* seconds between restarts of a dead child; default 1 */

    /* [tls] */
    char *tls_cert;          /* PEM chain; default <var>/tls/cert.pem (made on first start) */
    char *tls_key;           /* PEM key;   default <var>/tls/key.pem */
    char *tls_min_version;   /* "1.2" or "1.3"; default 1.2 */

    /* [smtpd] */
    /* listeners: never NULL; "" means disabled */
    char *smtp_listen;       /* relay/MX listener; default 127.0.0.1:2525 */
    char *submission_listen; /* STARTTLS + AUTH required; default 127.0.0.1:5870 */
    char *smtps_listen;      /* implicit TLS submission; default 127.0.0.1:4650 */
    char *banner;            /* text after "220 hostname"; default "ESMTP Postern" */
    int64_t command_line_limit;   /* bytes per command line incl. CRLF; default 2048 */
    int64_t data_line_limit;      /* bytes per DATA line incl. CRLF; default 1000 (RFC 5321 4.5.3.1.6) */
    int64_t message_size_limit;   /* bytes; default 10M */
    int64_t max_recipients;       /* per message; default 100 */
    int64_t max_errors;           /* per session before disconnect; default 10 */
    int64_t command_timeout;      /* seconds; default 300 (RFC 5321 4.5.3.2.7) */
    int64_t data_timeout;         /* seconds for a DATA block; default 600 */
    int64_t max_connections;      /* total; default 1000 */
    int64_t max_connections_per_ip; /* default 50 */
    int vrfy;                     /* default no */
    int starttls;                 /* offer STARTTLS on smtp/submission; default yes */
    int auth_requires_tls;        /* default yes (never offer AUTH in clear) */
    struct cfg_list trusted_networks; /* CIDRs allowed to relay without AUTH; default empty */

    /* [local] */
    struct cfg_list local_domains; /* default: localhost and hostname */
    char *mail_dir;                /* Maildirs are <mail_dir>/<user>/; default <var>/mail */

    /* [queue] */
    int64_t queue_scan_interval;   /* seconds between full spool scans; default 60 */
    int64_t delivery_batch;        /* messages delivered per fsync batch; default 64 */
    int64_t first_retry;           /* seconds; default 300 */
    int64_t max_retry_interval;    /* seconds; default 4000 */
    int64_t max_queue_lifetime;    /* seconds; default 5 days */
    int64_t delay_warning;         /* seconds; default 4 h; 0 = never */
    int64_t dest_concurrency;      /* connections per destination; default 10 */
    char *transport_map;           /* path or "" */

    /* [dns] */
    struct cfg_list dns_resolver;  /* "addr@port" forwarders; empty = /etc/resolv.conf */
    int64_t dns_timeout;           /* seconds; default 30 */

    /* [client] outbound SMTP */
    int64_t client_smtp_port;       /* default 25 */
    char *client_tls_policy;        /* none|may|encrypt|verify; default may */
    char *client_tls_ca_file;       /* default Debian's CA bundle */
    int64_t client_connect_timeout; /* seconds; default 30 */
    int64_t client_command_timeout; /* seconds; default 300 */
    char *client_auth_file;         /* path or "" */

    /* [bitmessage] */
    int bm_enable;                 /* run bmd; default yes */
    char *bm_listen;               /* P2P listener; default 127.0.0.1:8444; "" = none */
    struct cfg_list bm_peers;      /* host:port to connect to; default none */
    int bm_trusted_only;           /* inbound only from peers' hosts; default no */
    int64_t bm_max_inbound;        /* default 32 */
    int64_t bm_max_inbound_per_ip; /* default 4 */
    int64_t bm_ttl;                /* first send TTL; default 4 days */
    int64_t bm_max_attempts;       /* default 8 */
    int64_t bm_pubkey_ttl;         /* default 28 days */
    int64_t bm_getpubkey_ttl;      /* default 60 h */
    int64_t bm_pow_threads;        /* 0 = every core */
    int64_t bm_nonce_trials;       /* demanded; default 1000 */
    int64_t bm_extra_bytes;        /* demanded; default 1000 */

    /* [directory] */
    int dir_enable;              /* run directoryd; default yes */
    char *dir_listen;            /* HTTPS; default 127.0.0.1:8443; "" = disabled */
    char *dir_base_url;          /* "" = https://<hostname>:<port> */
    char *dir_database;          /* "sqlite" | "postgresql" */
    char *dir_pg_conninfo;       /* libpq conninfo; secret */
    int64_t dir_link_ttl;        /* seconds; default 48 h */
    int64_t dir_max_per_ip;      /* form posts per IP per hour; default 20 */
    int64_t dir_max_per_address; /* confirmations per address per day; default 5 */
    int dir_case_sensitive;      /* local parts; default no */
    char *dir_smtp_from;         /* "" = directory@<hostname> */
    char *dir_bm_from;           /* "" = our key labelled "directory" */
    char *dir_admin_token_file;  /* default <var>/directory-admin.token */
    char *dir_url;               /* client: "" = own listener */
    int64_t dir_client_timeout;  /* seconds; default 10 */
    int64_t dir_cache_ttl;       /* seconds; default 300 */
    int64_t dir_negative_ttl;    /* seconds; default 60 */
    char *dir_ca_file;           /* client: "" = [client] tls_ca_file */

    /* [pop3] */
    char *pop3_listen;              /* default 127.0.0.1:1100; "" = disabled */
    char *pop3s_listen;             /* default 127.0.0.1:9950; "" = disabled */
    int pop3_stls;                  /* default yes */
    int pop3_plain_loopback;        /* default no */
    int pop3_apop;                  /* default no */
    int64_t pop3_command_timeout;   /* seconds; default 600 */
    int64_t pop3_line_limit;        /* default 512 */
    int64_t pop3_max_auth_failures; /* default 3 */
    int64_t pop3_auth_failure_delay; /* seconds; default 2 */
    int64_t pop3_max_connections;   /* default 1000 */
    int64_t pop3_max_connections_per_ip; /* default 20 */
    int64_t pop3_login_delay;       /* seconds; default 0 */
    char *pop3_expire;              /* "NEVER" or days */
    int64_t pop3_upstream_timeout;  /* seconds; default 30 */
    char *pop3_upstream_key;        /* default <var>/pop3-upstream.key */

    /* derived at load, not keys */
    char *spool_dir;   /* <var>/spool */
    char *db_path;     /* <var>/postern.db */
    char *run_dir;     /* <var>/run */
    char *config_path; /* the file read, or NULL for embedded defaults */
};

/*
 * cfg_load - read path (may be NULL: embedded defaults only) into a new cfg.
 * On error returns NULL and writes "file:line: key: reason" into errbuf.
 * Caller frees with cfg_free().
 */
struct cfg *cfg_load(const char *path, char *errbuf, size_t errlen);

/* cfg_load_string - same, from an in-memory INI text (tests, fuzzing). name is used in errors. */
struct cfg *cfg_load_string(const char *text, const char *name, char *errbuf, size_t errlen);

/* cfg_free - free *c and set it to NULL. */
void cfg_free(struct cfg **c);

/* cfg_dump - write every key with its effective value as INI text to fd (for `postern check-config -v`). */
PST_MUST_CHECK int cfg_dump(const struct cfg *c, int fd);

/* cfg_is_local_domain - 1 if domain (borrowed) matches one of local_domains,
 * case-insensitively, ignoring a trailing dot; else 0. */
int cfg_is_local_domain(const struct cfg *c, const char *domain);

/* cfg_is_trusted - 1 if the client address sa (borrowed) lies in one of trusted_networks
 * (IPv4-mapped IPv6 clients match IPv4 networks); else 0. */
int cfg_is_trusted(const struct cfg *c, const struct sockaddr *sa);

#endif
