/*
 * config.c - load, check, dump and free Postern's INI configuration.
 *
 * The table cfg_keys[] below is the single place where every key, its
 * type, default, range and meaning is written down; docs/config.md mirrors
 * it. Loading goes:
 *
 *   1. every key with a textual default is set from that text, through the
 *      same setter a file value uses (so defaults obey the same checks);
 *   2. the INI text is parsed with libinih's ini_parse_stream(), fed by
 *      cfg_reader(), which counts physical lines so that every error says
 *      "file:line: [section] key: reason";
 *   3. derived values are filled in: hostname from gethostname(), paths
 *      under var_dir, local_domains = localhost + hostname.
 *
 * File syntax (libinih, with the rules below enforced here):
 *   - "[section]" lines, "key = value" lines, comments start with ';' or
 *     '#' at the start of a line, or " ;" after a value;
 *   - a physical line may hold at most cfg_line_max() - 2 bytes (libinih's
 *     INI_MAX_LINE, 200 by default): longer lines are an error, not cut;
 *   - a list may continue on following indented lines (each adds words);
 *     any other key on an indented continuation line is an error;
 *   - unknown sections and keys, keys outside a section, a key given twice,
 *     bad booleans, numbers out of range, bad suffixes, bad listen specs and
 *     bad CIDRs are errors; loading stops at the end of the file and reports
 *     the first error (lowest line);
 *   - relative paths are made absolute against the current directory at
 *     load time (not against the config file's directory).
 *
 * Failure policy: cfg_load*() return NULL and write one message into
 * errbuf; nothing here exits. An invalid built-in default is a bug
 * (PST_ASSERT).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "mailaddr.h"
#include "netaddr.h"

#define CFG_MAX_FILE (1024 * 1024) /* bytes in a config file */
#define CFG_ERR_MAX 512            /* bytes in one error message */
#define CFG_NAME_MAX 64            /* bytes of a key name we remember */
#define CFG_USER_MAX 32            /* bytes in run_user */
#define CFG_DUMP_MAX (256 * 1024)  /* bytes of cfg_dump output */
#define CFG_DEFAULTS_NAME "<defaults>"

enum cfg_type {
    CFG_T_STRING,   /* text, no control characters */
    CFG_T_PATH,     /* text, made absolute against the cwd */
    CFG_T_BOOL,     /* yes/no ... */
    CFG_T_INT,      /* decimal */
    CFG_T_SIZE,     /* decimal with k/m/g suffix (1024-based) */
    CFG_T_DURATION, /* decimal with s/m/h/d suffix */
    CFG_T_LIST,     /* words separated by commas or blanks */
    CFG_T_LISTEN,   /* host:port, [v6]:port, :port, or empty */
    CFG_T_ENUM,     /* one of choices */
};

/* cfg_check_fn - extra validation of a string or one list word; writes a reason on failure. */
typedef int (*cfg_check_fn)(const char *v, char *why, size_t whylen);

struct cfg_key {
    const char *section;
    const char *key;
    enum cfg_type type;
    const char *def; /* default as text; NULL = derived at load (see doc) */
    int64_t min, max;
    size_t off;
    const char *choices; /* CFG_T_ENUM: '|'-separated */
    cfg_check_fn check;
    const char *doc;
};

static int cfg_check_domain(const char *v, char *why, size_t whylen);
static int cfg_check_user(const char *v, char *why, size_t whylen);
static int cfg_check_cidr(const char *v, char *why, size_t whylen);
static int cfg_check_printable(const char *v, char *why, size_t whylen);
static int cfg_check_hostport(const char *v, char *why, size_t whylen);

#define K 1024LL
#define M (1024LL * 1024)
#define G (1024LL * 1024 * 1024)
#define OFF(f) offsetof(struct cfg, f)

/* clang-format off */
static const struct cfg_key cfg_keys[] = {
    /* section, key, type, default, min, max, offset, choices, check, doc */
    {"server", "hostname", CFG_T_STRING, NULL, 0, 0, OFF(hostname), NULL, cfg_check_domain,
     "name used in the SMTP greeting and Received: lines; default gethostname()"},
    {"server", "var_dir", CFG_T_PATH, "./var", 0, 0, OFF(var_dir), NULL, NULL,
     "state directory (spool, database, mail, tls, run); made absolute at load"},
    {"server", "run_user", CFG_T_STRING, "postern", 0, 0, OFF(run_user), NULL, cfg_check_user,
     "user to switch to when started as root"},
    {"server", "log_level", CFG_T_ENUM, "info", 0, 0, OFF(log_level), "debug|info|warn|error", NULL,
     "lowest level logged"},
    {"server", "log_target", CFG_T_ENUM, "stderr", 0, 0, OFF(log_target), "stderr|syslog", NULL,
     "where log lines go (syslog uses facility mail)"},
    {"server", "restart_delay", CFG_T_DURATION, "1", 0, 300, OFF(restart_delay), NULL, NULL,
     "wait before restarting a child that died"},

    {"tls", "tls_cert", CFG_T_PATH, NULL, 0, 0, OFF(tls_cert), NULL, NULL,
     "PEM certificate chain; default <var_dir>/tls/cert.pem (self-signed on first start)"},
    {"tls", "tls_key", CFG_T_PATH, NULL, 0, 0, OFF(tls_key), NULL, NULL,
     "PEM private key; default <var_dir>/tls/key.pem"},
    {"tls", "tls_min_version", CFG_T_ENUM, "1.2", 0, 0, OFF(tls_min_version), "1.2|1.3", NULL,
     "oldest TLS version accepted"},

    {"smtpd", "smtp_listen", CFG_T_LISTEN, "127.0.0.1:2525", 0, 0, OFF(smtp_listen), NULL, NULL,
     "relay/MX listener (port 25 in production); empty disables"},
    {"smtpd", "submission_listen", CFG_T_LISTEN, "127.0.0.1:5870", 0, 0, OFF(submission_listen),
     NULL, NULL, "submission listener, STARTTLS and AUTH required (port 587); empty disables"},
    {"smtpd", "smtps_listen", CFG_T_LISTEN, "127.0.0.1:4650", 0, 0, OFF(smtps_listen), NULL, NULL,
     "implicit-TLS submission listener (port 465); empty disables"},
    {"smtpd", "banner", CFG_T_STRING, "ESMTP Postern", 0, 0, OFF(banner), NULL, cfg_check_printable,
     "text after \"220 <hostname>\" in the greeting"},
    {"smtpd", "command_line_limit", CFG_T_SIZE, "2048", 512, 65536, OFF(command_line_limit), NULL,
     NULL, "longest command line, CRLF included (RFC 5321 4.5.3.1.4 minimum 512)"},
    {"smtpd", "data_line_limit", CFG_T_SIZE, "1000", 1000, 1000000, OFF(data_line_limit), NULL, NULL,
     "longest DATA line, CRLF included (RFC 5321 4.5.3.1.6)"},
    {"smtpd", "message_size_limit", CFG_T_SIZE, "10M", 1 * K, 2 * G, OFF(message_size_limit), NULL,
     NULL, "largest message accepted; announced in EHLO SIZE (RFC 1870)"},
    {"smtpd", "max_recipients", CFG_T_INT, "100", 1, 10000, OFF(max_recipients), NULL, NULL,
     "recipients per message (RFC 5321 4.5.3.1.8 minimum 100)"},
    {"smtpd", "max_errors", CFG_T_INT, "10", 1, 1000, OFF(max_errors), NULL, NULL,
     "protocol errors per session before the server disconnects"},
    {"smtpd", "command_timeout", CFG_T_DURATION, "300", 10, 3600, OFF(command_timeout), NULL, NULL,
     "idle time waiting for a command (RFC 5321 4.5.3.2.7)"},
    {"smtpd", "data_timeout", CFG_T_DURATION, "600", 10, 3600, OFF(data_timeout), NULL, NULL,
     "total time allowed for one message's DATA/BDAT content (silence: command_timeout)"},
    {"smtpd", "max_connections", CFG_T_INT, "1000", 1, 100000, OFF(max_connections), NULL, NULL,
     "simultaneous SMTP connections, all listeners"},
    {"smtpd", "max_connections_per_ip", CFG_T_INT, "50", 1, 100000, OFF(max_connections_per_ip),
     NULL, NULL, "simultaneous SMTP connections from one client address"},
    {"smtpd", "vrfy", CFG_T_BOOL, "no", 0, 0, OFF(vrfy), NULL, NULL,
     "answer VRFY truthfully (else 252)"},
    {"smtpd", "starttls", CFG_T_BOOL, "yes", 0, 0, OFF(starttls), NULL, NULL,
     "offer STARTTLS on the smtp and submission listeners"},
    {"smtpd", "auth_requires_tls", CFG_T_BOOL, "yes", 0, 0, OFF(auth_requires_tls), NULL, NULL,
     "offer AUTH only after TLS"},
    {"smtpd", "trusted_networks", CFG_T_LIST, "", 0, 0, OFF(trusted_networks), NULL, cfg_check_cidr,
     "client networks (CIDR) allowed to relay without AUTH"},

    {"local", "local_domains", CFG_T_LIST, NULL, 0, 0, OFF(local_domains), NULL, cfg_check_domain,
     "domains delivered to local Maildirs; default localhost and hostname"},
    {"local", "mail_dir", CFG_T_PATH, NULL, 0, 0, OFF(mail_dir), NULL, NULL,
     "Maildirs live in <mail_dir>/<user>/; default <var_dir>/mail"},

    {"queue", "queue_scan_interval", CFG_T_DURATION, "60", 1, 3600, OFF(queue_scan_interval), NULL,
     NULL, "time between full scans of the spool"},
    {"queue", "delivery_batch", CFG_T_INT, "64", 1, 1024, OFF(delivery_batch), NULL, NULL,
     "messages delivered per fsync batch"},
    {"queue", "first_retry", CFG_T_DURATION, "300", 1, 86400, OFF(first_retry), NULL, NULL,
     "delay before the first retry of a deferred message (doubles per attempt, with jitter)"},
    {"queue", "max_retry_interval", CFG_T_DURATION, "4000", 1, 86400, OFF(max_retry_interval),
     NULL, NULL, "longest delay between two attempts"},
    {"queue", "max_queue_lifetime", CFG_T_DURATION, "5d", 60, 100 * 86400, OFF(max_queue_lifetime),
     NULL, NULL, "a message still undelivered after this is bounced"},
    {"queue", "delay_warning", CFG_T_DURATION, "4h", 0, 30 * 86400, OFF(delay_warning), NULL, NULL,
     "send the sender a delay notice after this long (0: never)"},
    {"queue", "dest_concurrency", CFG_T_INT, "10", 1, 1000, OFF(dest_concurrency), NULL, NULL,
     "simultaneous SMTP connections to one destination"},
    {"queue", "transport_map", CFG_T_PATH, "", 0, 0, OFF(transport_map), NULL, NULL,
     "per-domain routing file (docs/transport.md); empty: none"},

    {"dns", "resolver", CFG_T_LIST, "", 0, 0, OFF(dns_resolver), NULL, NULL,
     "forwarders as addr@port (e.g. 127.0.0.1@5353); empty: /etc/resolv.conf"},
    {"dns", "dns_timeout", CFG_T_DURATION, "30", 1, 300, OFF(dns_timeout), NULL, NULL,
     "time allowed for one DNS lookup"},

    {"client", "smtp_port", CFG_T_INT, "25", 1, 65535, OFF(client_smtp_port), NULL, NULL,
     "TCP port of remote MX hosts (tests point it at loopback servers)"},
    {"client", "tls_policy", CFG_T_ENUM, "may", 0, 0, OFF(client_tls_policy),
     "none|may|encrypt|verify", NULL,
     "default outbound TLS: may = STARTTLS whenever offered; verify = certificate checked"},
    {"client", "tls_ca_file", CFG_T_PATH, "/etc/ssl/certs/ca-certificates.crt", 0, 0,
     OFF(client_tls_ca_file), NULL, NULL, "CA bundle for tls_policy verify"},
    {"client", "connect_timeout", CFG_T_DURATION, "30", 1, 600, OFF(client_connect_timeout), NULL,
     NULL, "time allowed to connect to a remote host"},
    {"client", "command_timeout", CFG_T_DURATION, "300", 1, 3600, OFF(client_command_timeout),
     NULL, NULL, "time allowed for each reply (RFC 5321 4.5.3.2)"},
    {"client", "auth_file", CFG_T_PATH, "", 0, 0, OFF(client_auth_file), NULL, NULL,
     "credentials for relay hosts: lines 'name user password' (keep it mode 0600)"},

    {"bitmessage", "enable", CFG_T_BOOL, "yes", 0, 0, OFF(bm_enable), NULL, NULL,
     "run the Bitmessage node (bmd) under postern serve"},
    {"bitmessage", "listen", CFG_T_LISTEN, "127.0.0.1:8444", 0, 0, OFF(bm_listen), NULL, NULL,
     "Bitmessage P2P listener (8444 is the network's port); empty: outbound only"},
    {"bitmessage", "peers", CFG_T_LIST, "", 0, 0, OFF(bm_peers), NULL, cfg_check_hostport,
     "host:port of the nodes to connect to; the node connects nowhere else"},
    {"bitmessage", "trusted_peers_only", CFG_T_BOOL, "no", 0, 0, OFF(bm_trusted_only), NULL, NULL,
     "accept inbound connections only from the hosts in peers"},
    {"bitmessage", "max_inbound", CFG_T_INT, "32", 0, 1000, OFF(bm_max_inbound), NULL, NULL,
     "simultaneous inbound peer connections"},
    {"bitmessage", "max_inbound_per_ip", CFG_T_INT, "4", 1, 1000, OFF(bm_max_inbound_per_ip), NULL,
     NULL, "simultaneous inbound peer connections from one address"},
    {"bitmessage", "ttl", CFG_T_DURATION, "4d", 300, 28 * 86400, OFF(bm_ttl), NULL, NULL,
     "lifetime of a sent message's first copy (doubled on each resend, at most 28 days)"},
    {"bitmessage", "pubkey_ttl", CFG_T_DURATION, "28d", 300, 28 * 86400, OFF(bm_pubkey_ttl), NULL,
     NULL, "lifetime of our pubkey objects (the reference uses 28 days)"},
    {"bitmessage", "getpubkey_ttl", CFG_T_DURATION, "60h", 300, 28 * 86400, OFF(bm_getpubkey_ttl),
     NULL, NULL, "lifetime of a pubkey request (2.5 days as the reference; doubled when repeated)"},
    {"bitmessage", "max_attempts", CFG_T_INT, "8", 1, 100, OFF(bm_max_attempts), NULL, NULL,
     "sends of one message without an acknowledgement before it fails"},
    {"bitmessage", "pow_threads", CFG_T_INT, "0", 0, 256, OFF(bm_pow_threads), NULL, NULL,
     "threads for proof of work; 0: one per core"},
    {"bitmessage", "nonce_trials_per_byte", CFG_T_INT, "1000", 1000, 1000000000,
     OFF(bm_nonce_trials), NULL, NULL, "proof of work demanded from senders to our addresses"},
    {"bitmessage", "extra_bytes", CFG_T_INT, "1000", 1000, 1000000000, OFF(bm_extra_bytes), NULL,
     NULL, "payload length extra bytes demanded from senders to our addresses"},

    {"directory", "enable", CFG_T_BOOL, "yes", 0, 0, OFF(dir_enable), NULL, NULL,
     "run the public directory (directoryd) under postern serve"},
    {"directory", "listen", CFG_T_LISTEN, "127.0.0.1:8443", 0, 0, OFF(dir_listen), NULL, NULL,
     "HTTPS listener of the directory (form, query API, admin API); empty disables"},
    {"directory", "base_url", CFG_T_STRING, "", 0, 0, OFF(dir_base_url), NULL,
     cfg_check_printable, "URL the confirmation links start with; empty: https://<hostname>:<port>"},
    {"directory", "database", CFG_T_ENUM, "sqlite", 0, 0, OFF(dir_database), "sqlite|postgresql",
     NULL, "where the records live: the state database, or PostgreSQL (shared by instances)"},
    {"directory", "pg_conninfo", CFG_T_STRING, "", 0, 0, OFF(dir_pg_conninfo), NULL,
     cfg_check_printable, "libpq connection string for database = postgresql (never logged)"},
    {"directory", "link_ttl", CFG_T_DURATION, "48h", 60, 30 * 86400, OFF(dir_link_ttl), NULL,
     NULL, "confirmation links expire after this; unconfirmed entries are then purged"},
    {"directory", "max_requests_per_ip", CFG_T_INT, "20", 1, 1000000, OFF(dir_max_per_ip), NULL,
     NULL, "form submissions per client address per hour"},
    {"directory", "max_requests_per_address", CFG_T_INT, "5", 1, 1000000,
     OFF(dir_max_per_address), NULL, NULL,
     "confirmation requests per SMTP or alternative address per day (no inbox flooding)"},
    {"directory", "case_sensitive_local", CFG_T_BOOL, "no", 0, 0, OFF(dir_case_sensitive), NULL,
     NULL, "compare SMTP local parts case-sensitively"},
    {"directory", "smtp_from", CFG_T_STRING, "", 0, 0, OFF(dir_smtp_from), NULL,
     cfg_check_printable, "sender of confirmation mail; empty: directory@<hostname>"},
    {"directory", "bm_from", CFG_T_STRING, "", 0, 0, OFF(dir_bm_from), NULL, cfg_check_printable,
     "our Bitmessage address that sends confirmations; empty: one labelled 'directory', made on "
     "first use"},
    {"directory", "admin_token_file", CFG_T_PATH, NULL, 0, 0, OFF(dir_admin_token_file), NULL,
     NULL, "bearer token of the admin API (made on first start, mode 0600); default "
     "<var_dir>/directory-admin.token"},
    {"directory", "url", CFG_T_STRING, "", 0, 0, OFF(dir_url), NULL, cfg_check_printable,
     "client: the directory the gateway asks; empty: this server's own listener"},
    {"directory", "client_timeout", CFG_T_DURATION, "10", 1, 300, OFF(dir_client_timeout), NULL,
     NULL, "client: time allowed for one lookup"},
    {"directory", "cache_ttl", CFG_T_DURATION, "300", 0, 86400, OFF(dir_cache_ttl), NULL, NULL,
     "client: how long an answer is cached"},
    {"directory", "negative_ttl", CFG_T_DURATION, "60", 0, 86400, OFF(dir_negative_ttl), NULL,
     NULL, "client: how long 'no alternative address' is cached"},
    {"directory", "ca_file", CFG_T_PATH, "", 0, 0, OFF(dir_ca_file), NULL, NULL,
     "client: CA bundle for the directory's certificate; empty: [client] tls_ca_file"},

    {"pop3", "listen", CFG_T_LISTEN, "127.0.0.1:1100", 0, 0, OFF(pop3_listen), NULL, NULL,
     "POP3 listener with STLS (port 110 in production); empty disables"},
    {"pop3", "pop3s_listen", CFG_T_LISTEN, "127.0.0.1:9950", 0, 0, OFF(pop3s_listen), NULL, NULL,
     "implicit-TLS POP3 listener (port 995); empty disables"},
    {"pop3", "stls", CFG_T_BOOL, "yes", 0, 0, OFF(pop3_stls), NULL, NULL,
     "offer STLS (RFC 2595) on the plain listener"},
    {"pop3", "plaintext_on_loopback", CFG_T_BOOL, "no", 0, 0, OFF(pop3_plain_loopback), NULL, NULL,
     "allow USER/PASS and AUTH before TLS for clients on 127.0.0.0/8 and ::1"},
    {"pop3", "apop", CFG_T_BOOL, "no", 0, 0, OFF(pop3_apop), NULL, NULL,
     "offer APOP (needs a separately stored APOP secret per user; see docs/pop3.md)"},
    {"pop3", "command_timeout", CFG_T_DURATION, "600", 10, 3600, OFF(pop3_command_timeout), NULL,
     NULL, "idle time before the server closes a session (RFC 1939: at least 10 minutes)"},
    {"pop3", "command_line_limit", CFG_T_SIZE, "512", 255, 65536, OFF(pop3_line_limit), NULL, NULL,
     "longest command line, CRLF included (RFC 2449: 255 octets minimum)"},
    {"pop3", "max_auth_failures", CFG_T_INT, "3", 1, 100, OFF(pop3_max_auth_failures), NULL, NULL,
     "failed logins per connection before it is closed"},
    {"pop3", "auth_failure_delay", CFG_T_DURATION, "2", 0, 60, OFF(pop3_auth_failure_delay), NULL,
     NULL, "delay before answering a failed login (doubles per failure from the same address)"},
    {"pop3", "max_connections", CFG_T_INT, "1000", 1, 100000, OFF(pop3_max_connections), NULL, NULL,
     "simultaneous POP3 connections"},
    {"pop3", "max_connections_per_ip", CFG_T_INT, "20", 1, 100000, OFF(pop3_max_connections_per_ip),
     NULL, NULL, "simultaneous POP3 connections from one client address"},
    {"pop3", "login_delay", CFG_T_DURATION, "0", 0, 86400, OFF(pop3_login_delay), NULL, NULL,
     "announced in CAPA LOGIN-DELAY and enforced between logins of one user; 0: not announced"},
    {"pop3", "expire", CFG_T_STRING, "NEVER", 0, 0, OFF(pop3_expire), NULL, cfg_check_printable,
     "announced in CAPA EXPIRE: NEVER or a number of days"},
    {"pop3", "upstream_timeout", CFG_T_DURATION, "30", 1, 600, OFF(pop3_upstream_timeout), NULL,
     NULL, "proxy: time allowed for an upstream server's reply"},
    {"pop3", "upstream_key", CFG_T_PATH, NULL, 0, 0, OFF(pop3_upstream_key), NULL, NULL,
     "proxy: key that encrypts upstream credentials at rest; default <var_dir>/pop3-upstream.key"},
};
/* clang-format on */

#undef K
#undef M
#undef G

#define CFG_NKEYS PST_ARRAY_LEN(cfg_keys)

struct cfg_parse {
    struct cfg *c;
    const char *name;             /* file name for messages */
    const char *text;             /* input, NUL-terminated */
    size_t pos;                   /* reader position in text */
    int line;                     /* physical line just handed to libinih */
    int indented;                 /* that line started with blanks */
    char prev_name[CFG_NAME_MAX]; /* key of the last key line in this section */
    int seen[CFG_NKEYS];          /* line where each key was set, 0 = not yet */
    int err_line;                 /* line of the first error, 0 = none */
    char err[CFG_ERR_MAX];
};

/* cfg_msg - format into out, replacing control characters; truncation is acceptable here. */
__attribute__((format(printf, 3, 4))) static void cfg_msg(char *out, size_t outsz, const char *fmt,
                                                          ...)
{
    va_list ap;
    size_t i;

    if (out == NULL || outsz == 0)
        return;
    va_start(ap, fmt);
    if (vsnprintf(out, outsz, fmt, ap) < 0)
        out[0] = '\0';
    va_end(ap);
    for (i = 0; out[i] != '\0'; i++) {
        if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f)
            out[i] = '?';
    }
}

/* cfg_fail - record an error at the current line unless an earlier one is recorded. Returns 0. */
static int cfg_fail(struct cfg_parse *p, const char *section, const char *key, const char *why)
{
    int line = p->line;

    if (p->err_line != 0 && p->err_line <= line)
        return 0;
    p->err_line = line > 0 ? line : -1;
    if (section != NULL && key != NULL)
        cfg_msg(p->err, sizeof(p->err), "%s:%d: [%s] %s: %s", p->name, line, section, key, why);
    else
        cfg_msg(p->err, sizeof(p->err), "%s:%d: %s", p->name, line, why);
    return 0;
}

/* ---- value checks ---------------------------------------------------------------------- */

static int cfg_check_printable(const char *v, char *why, size_t whylen)
{
    for (; *v != '\0'; v++) {
        unsigned char ch = (unsigned char)*v;
        if (ch < 0x20 || ch == 0x7f) {
            cfg_msg(why, whylen, "control character in value");
            return PST_EINVAL;
        }
    }
    return 0;
}

/* cfg_check_hostport - "host:port" or "[v6]:port" with a port 1..65535 and a host name or address.
 */
static int cfg_check_hostport(const char *v, char *why, size_t whylen)
{
    char host[256];
    uint16_t port;
    struct in_addr a4;
    struct in6_addr a6;

    if (netaddr_split_hostport(v, host, sizeof(host), &port) != 0) {
        cfg_msg(why, whylen, "'%s' is not host:port with a port 1..65535", v);
        return PST_EINVAL;
    }
    if (v[0] == '[' ? inet_pton(AF_INET6, host, &a6) == 1
                    : inet_pton(AF_INET, host, &a4) == 1 || mailaddr_domain_valid(host, 0))
        return 0;
    cfg_msg(why, whylen, "'%s': bad host", v);
    return PST_EINVAL;
}

static int cfg_check_domain(const char *v, char *why, size_t whylen)
{
    if (!mailaddr_domain_valid(v, 0)) {
        cfg_msg(why, whylen, "'%s' is not a valid domain name", v);
        return PST_EINVAL;
    }
    return 0;
}

static int cfg_check_user(const char *v, char *why, size_t whylen)
{
    size_t i, n = strlen(v);

    for (i = 0; i < n; i++) {
        char ch = v[i];
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' ||
                 (i > 0 && ((ch >= '0' && ch <= '9') || ch == '-' || ch == '.'));
        if (!ok)
            break;
    }
    if (n == 0 || n > CFG_USER_MAX || i != n) {
        cfg_msg(why, whylen, "'%s' is not a valid user name", v);
        return PST_EINVAL;
    }
    return 0;
}

static int cfg_check_cidr(const char *v, char *why, size_t whylen)
{
    struct netaddr_cidr net;

    if (netaddr_parse_cidr(v, &net) < 0) {
        cfg_msg(why, whylen, "'%s' is not a valid network (address/prefix, host bits zero)", v);
        return PST_EINVAL;
    }
    return 0;
}

/* ---- number parsing -------------------------------------------------------------------- */

/* cfg_parse_number - digits with an optional suffix from the type; overflow-safe. */
static int cfg_parse_number(const char *v, enum cfg_type type, int64_t *out, char *why,
                            size_t whylen)
{
    int64_t n = 0, mult = 1;
    const char *p = v;

    if (*p < '0' || *p > '9') {
        cfg_msg(why, whylen, "'%s' is not a number", v);
        return PST_EINVAL;
    }
    for (; *p >= '0' && *p <= '9'; p++) {
        if (n > (INT64_MAX - (*p - '0')) / 10) {
            cfg_msg(why, whylen, "'%s' is too large", v);
            return PST_EINVAL;
        }
        n = n * 10 + (*p - '0');
    }
    if (*p != '\0' && p[1] == '\0' && type == CFG_T_SIZE) {
        switch (*p) {
        case 'k':
        case 'K':
            mult = 1024;
            break;
        case 'm':
        case 'M':
            mult = 1024 * 1024;
            break;
        case 'g':
        case 'G':
            mult = 1024 * 1024 * 1024;
            break;
        default:
            mult = 0;
            break;
        }
    } else if (*p != '\0' && p[1] == '\0' && type == CFG_T_DURATION) {
        switch (*p) {
        case 's':
            mult = 1;
            break;
        case 'm':
            mult = 60;
            break;
        case 'h':
            mult = 3600;
            break;
        case 'd':
            mult = 86400;
            break;
        default:
            mult = 0;
            break;
        }
    } else if (*p != '\0') {
        mult = 0;
    }
    if (mult == 0) {
        cfg_msg(why, whylen, "'%s': bad number or suffix (%s)", v,
                type == CFG_T_SIZE       ? "k, m, g allowed"
                : type == CFG_T_DURATION ? "s, m, h, d allowed"
                                         : "digits only");
        return PST_EINVAL;
    }
    if (n > INT64_MAX / mult) {
        cfg_msg(why, whylen, "'%s' is too large", v);
        return PST_EINVAL;
    }
    *out = n * mult;
    return 0;
}

static int cfg_parse_bool(const char *v, int *out)
{
    static const char *const yes[] = {"yes", "true", "on", "1"};
    static const char *const no[] = {"no", "false", "off", "0"};
    size_t i;

    for (i = 0; i < PST_ARRAY_LEN(yes); i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(v, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return PST_EINVAL;
}

/* ---- setters --------------------------------------------------------------------------- */

static char **cfg_str_field(struct cfg *c, const struct cfg_key *k)
{
    return (char **)(void *)((char *)c + k->off);
}

static int cfg_set_str(struct cfg *c, const struct cfg_key *k, const char *v)
{
    char **f = cfg_str_field(c, k);
    char *dup = strdup(v);

    if (dup == NULL)
        return PST_ENOMEM;
    free(*f);
    *f = dup;
    return 0;
}

/* cfg_abs_path - v made absolute against the cwd (leading "./" dropped). Caller frees. */
static char *cfg_abs_path(const char *v)
{
    char cwd[PATH_MAX], *out;
    size_t n;
    int len;

    if (v[0] == '/')
        return strdup(v);
    while (v[0] == '.' && v[1] == '/')
        for (v += 2; *v == '/'; v++)
            ;
    if (getcwd(cwd, sizeof(cwd)) == NULL)
        return NULL;
    n = strlen(cwd) + 1 + strlen(v) + 1;
    out = malloc(n);
    if (out == NULL)
        return NULL;
    if (strcmp(v, ".") == 0 || v[0] == '\0')
        len = snprintf(out, n, "%s", cwd);
    else
        len = snprintf(out, n, "%s%s%s", cwd, strcmp(cwd, "/") == 0 ? "" : "/", v);
    if (len < 0 || (size_t)len >= n) {
        free(out);
        return NULL;
    }
    while (len > 1 && out[len - 1] == '/')
        out[--len] = '\0';
    return out;
}

static void cfg_list_clear(struct cfg_list *l)
{
    size_t i;

    for (i = 0; i < l->n; i++) {
        free(l->v[i]);
        l->v[i] = NULL;
    }
    l->n = 0;
}

/* cfg_list_add_words - split v on commas and blanks, check and append each word. */
static int cfg_list_add_words(struct cfg_list *l, const struct cfg_key *k, const char *v, char *why,
                              size_t whylen)
{
    char word[CFG_MAX_STR + 1];
    size_t n;

    while (*v != '\0') {
        n = strcspn(v, ", \t");
        if (n == 0) {
            v++;
            continue;
        }
        if (*v == ';' || *v == '#')
            break; /* libinih leaves inline comments on continuation lines to us */
        if (n > CFG_MAX_STR) {
            cfg_msg(why, whylen, "list item longer than %d bytes", CFG_MAX_STR);
            return PST_ELIMIT;
        }
        memcpy(word, v, n);
        word[n] = '\0';
        v += n;
        if (cfg_check_printable(word, why, whylen) < 0)
            return PST_EINVAL;
        if (k->check != NULL && k->check(word, why, whylen) < 0)
            return PST_EINVAL;
        if (l->n >= CFG_MAX_LIST) {
            cfg_msg(why, whylen, "more than %d items", CFG_MAX_LIST);
            return PST_ELIMIT;
        }
        l->v[l->n] = strdup(word);
        if (l->v[l->n] == NULL) {
            cfg_msg(why, whylen, "out of memory");
            return PST_ENOMEM;
        }
        l->n++;
    }
    return 0;
}

static int cfg_set_enum(struct cfg *c, const struct cfg_key *k, const char *v, char *why,
                        size_t whylen)
{
    const char *p = k->choices;
    char word[CFG_NAME_MAX];

    while (*p != '\0') {
        size_t n = strcspn(p, "|");
        if (n < sizeof(word)) {
            memcpy(word, p, n);
            word[n] = '\0';
            if (strcasecmp(word, v) == 0)
                return cfg_set_str(c, k, word);
        }
        p += n;
        if (*p == '|')
            p++;
    }
    cfg_msg(why, whylen, "'%s' is not one of %s", v, k->choices);
    return PST_EINVAL;
}

static int cfg_set_listen(struct cfg *c, const struct cfg_key *k, const char *v, char *why,
                          size_t whylen)
{
    struct sockaddr_storage ss;
    socklen_t sslen;

    if (v[0] != '\0') {
        if (netaddr_parse_listen(v, &ss, &sslen) < 0) {
            cfg_msg(why, whylen, "'%s' is not host:port, [v6]:port or :port (numeric)", v);
            return PST_EINVAL;
        }
        if (netaddr_port((struct sockaddr *)&ss) == 0) {
            cfg_msg(why, whylen, "port 0 is not allowed");
            return PST_EINVAL;
        }
    }
    return cfg_set_str(c, k, v);
}

static int cfg_set_number(struct cfg *c, const struct cfg_key *k, const char *v, char *why,
                          size_t whylen)
{
    int64_t n;

    if (cfg_parse_number(v, k->type, &n, why, whylen) < 0)
        return PST_EINVAL;
    if (n < k->min || n > k->max) {
        cfg_msg(why, whylen, "%s out of range %lld..%lld", v, (long long)k->min, (long long)k->max);
        return PST_ELIMIT;
    }
    *(int64_t *)(void *)((char *)c + k->off) = n;
    return 0;
}

/* cfg_set - parse text value v for key k into c. Writes a reason into why on failure. */
static int cfg_set(struct cfg *c, const struct cfg_key *k, const char *v, char *why, size_t whylen)
{
    int b, rc;
    char *abs;

    if (strlen(v) > CFG_MAX_STR) {
        cfg_msg(why, whylen, "value longer than %d bytes", CFG_MAX_STR);
        return PST_ELIMIT;
    }
    if (cfg_check_printable(v, why, whylen) < 0)
        return PST_EINVAL;
    switch (k->type) {
    case CFG_T_STRING:
        if (v[0] == '\0' && k->def && k->def[0] == '\0')
            return cfg_set_str(c, k, ""); /* optional string: empty means none */
        if (v[0] == '\0') {
            cfg_msg(why, whylen, "empty value");
            return PST_EINVAL;
        }
        if (k->check != NULL && k->check(v, why, whylen) < 0)
            return PST_EINVAL;
        return cfg_set_str(c, k, v);
    case CFG_T_PATH:
        if (v[0] == '\0' && k->def && k->def[0] == '\0')
            return cfg_set_str(c, k, ""); /* optional path: empty means none */
        if (v[0] == '\0') {
            cfg_msg(why, whylen, "empty path");
            return PST_EINVAL;
        }
        abs = cfg_abs_path(v);
        if (abs == NULL) {
            cfg_msg(why, whylen, "cannot make path absolute: %s", strerror(errno));
            return PST_EIO;
        }
        rc = cfg_set_str(c, k, abs);
        free(abs);
        return rc;
    case CFG_T_BOOL:
        if (cfg_parse_bool(v, &b) < 0) {
            cfg_msg(why, whylen, "'%s' is not a boolean (yes/no, true/false, on/off, 1/0)", v);
            return PST_EINVAL;
        }
        *(int *)(void *)((char *)c + k->off) = b;
        return 0;
    case CFG_T_INT:
    case CFG_T_SIZE:
    case CFG_T_DURATION:
        return cfg_set_number(c, k, v, why, whylen);
    case CFG_T_LIST: {
        struct cfg_list *l = (struct cfg_list *)(void *)((char *)c + k->off);
        cfg_list_clear(l);
        return cfg_list_add_words(l, k, v, why, whylen);
    }
    case CFG_T_LISTEN:
        return cfg_set_listen(c, k, v, why, whylen);
    case CFG_T_ENUM:
        return cfg_set_enum(c, k, v, why, whylen);
    }
    return PST_EINVAL;
}

/* ---- libinih glue ---------------------------------------------------------------------- */

static int cfg_section_known(const char *section)
{
    size_t i;

    for (i = 0; i < CFG_NKEYS; i++) {
        if (strcasecmp(cfg_keys[i].section, section) == 0)
            return 1;
    }
    return 0;
}

static const struct cfg_key *cfg_find(const char *section, const char *key, size_t *idx)
{
    size_t i;

    for (i = 0; i < CFG_NKEYS; i++) {
        if (strcasecmp(cfg_keys[i].section, section) == 0 &&
            strcasecmp(cfg_keys[i].key, key) == 0) {
            *idx = i;
            return &cfg_keys[i];
        }
    }
    return NULL;
}

/*
 * cfg_reader - fgets-like reader for ini_parse_stream(): hands libinih one
 * physical line at a time and counts it. A line that does not fit libinih's
 * buffer is recorded as an error (and replaced by an empty line) instead of
 * being silently split. Indentation is kept only where libinih reads it as
 * a continuation line: lines starting (after blanks) with '[', ';' or '#'
 * are handed over unindented, so "  [section]" and "  ; note" mean what
 * they look like.
 */
static char *cfg_reader(char *str, int num, void *stream)
{
    struct cfg_parse *p = stream;
    const char *line = p->text + p->pos, *nl, *s;
    size_t len, skip, used;

    if (*line == '\0' || num < 3)
        return NULL;
    nl = strchr(line, '\n');
    len = nl ? (size_t)(nl - line) : strlen(line);
    used = nl ? len + 1 : len;
    p->pos += used;
    p->line++;
    for (s = line; s < line + len && (*s == ' ' || *s == '\t'); s++)
        ;
    skip = (size_t)(s - line);
    p->indented = 0;
    if (s < line + len && (*s == '[' || *s == ';' || *s == '#')) {
        line = s;
        len -= skip;
        if (*s == '[')
            p->prev_name[0] = '\0'; /* libinih forgets the previous key at a section */
    } else if (skip > 0 && s < line + len && *s != '\r') {
        p->indented = 1;
    }
    if (len + 2 > (size_t)num) {
        char why[64];
        cfg_msg(why, sizeof(why), "line longer than %d bytes", num - 2);
        cfg_fail(p, NULL, NULL, why);
        memcpy(str, "\n", 2);
        return str;
    }
    memcpy(str, line, len);
    str[len] = '\n';
    str[len + 1] = '\0';
    return str;
}

static int cfg_handler(void *user, const char *section, const char *name, const char *value)
{
    struct cfg_parse *p = user;
    const struct cfg_key *k;
    char why[CFG_ERR_MAX];
    size_t idx;
    int cont = p->indented && p->prev_name[0] != '\0';

    if (!cont)
        cfg_msg(p->prev_name, sizeof(p->prev_name), "%s", name);
    if (section[0] == '\0')
        return cfg_fail(p, NULL, NULL, "key outside any [section]");
    if (!cfg_section_known(section))
        return cfg_fail(p, section, name, "unknown section");
    k = cfg_find(section, name, &idx);
    if (k == NULL)
        return cfg_fail(p, section, name, "unknown key");
    if (cont) {
        if (k->type != CFG_T_LIST)
            return cfg_fail(p, section, name,
                            "indented line continues the previous key, but only lists may continue "
                            "(unindent it)");
        if (cfg_list_add_words((struct cfg_list *)(void *)((char *)p->c + k->off), k, value, why,
                               sizeof(why)) < 0)
            return cfg_fail(p, section, name, why);
        return 1;
    }
    if (p->seen[idx] != 0) {
        cfg_msg(why, sizeof(why), "duplicate key (first set on line %d)", p->seen[idx]);
        return cfg_fail(p, section, name, why);
    }
    p->seen[idx] = p->line;
    if (cfg_set(p->c, k, value, why, sizeof(why)) < 0)
        return cfg_fail(p, section, name, why);
    return 1;
}

/* ---- derived values -------------------------------------------------------------------- */

static int cfg_join(char **dst, const char *dir, const char *rel)
{
    size_t n = strlen(dir) + 1 + strlen(rel) + 1;
    char *s = malloc(n);
    int len;

    if (s == NULL)
        return PST_ENOMEM;
    len = snprintf(s, n, "%s/%s", dir, rel);
    if (len < 0 || (size_t)len >= n) {
        free(s);
        return PST_ENOMEM;
    }
    free(*dst);
    *dst = s;
    return 0;
}

static int cfg_default_hostname(struct cfg *c)
{
    char host[MAILADDR_DOMAIN_MAX + 1];

    if (c->hostname != NULL)
        return 0;
    memset(host, 0, sizeof(host));
    if (gethostname(host, sizeof(host) - 1) != 0 || !mailaddr_domain_valid(host, 0))
        memcpy(host, "localhost", sizeof("localhost"));
    c->hostname = strdup(host);
    return c->hostname ? 0 : PST_ENOMEM;
}

static int cfg_default_local_domains(struct cfg *c, int set_by_file)
{
    struct cfg_list *l = &c->local_domains;

    if (set_by_file)
        return 0;
    cfg_list_clear(l);
    l->v[l->n] = strdup("localhost");
    if (l->v[l->n] == NULL)
        return PST_ENOMEM;
    l->n++;
    if (strcasecmp(c->hostname, "localhost") == 0)
        return 0;
    l->v[l->n] = strdup(c->hostname);
    if (l->v[l->n] == NULL)
        return PST_ENOMEM;
    l->n++;
    return 0;
}

static int cfg_derive(struct cfg *c, const struct cfg_parse *p)
{
    size_t idx;
    int rc = cfg_default_hostname(c);

    if (rc == 0 && c->tls_cert == NULL)
        rc = cfg_join(&c->tls_cert, c->var_dir, "tls/cert.pem");
    if (rc == 0 && c->tls_key == NULL)
        rc = cfg_join(&c->tls_key, c->var_dir, "tls/key.pem");
    if (rc == 0 && c->mail_dir == NULL)
        rc = cfg_join(&c->mail_dir, c->var_dir, "mail");
    if (rc == 0)
        rc = cfg_join(&c->spool_dir, c->var_dir, "spool");
    if (rc == 0)
        rc = cfg_join(&c->db_path, c->var_dir, "postern.db");
    if (rc == 0)
        rc = cfg_join(&c->run_dir, c->var_dir, "run");
    if (rc == 0 && c->dir_admin_token_file == NULL)
        rc = cfg_join(&c->dir_admin_token_file, c->var_dir, "directory-admin.token");
    if (rc == 0 && c->pop3_upstream_key == NULL)
        rc = cfg_join(&c->pop3_upstream_key, c->var_dir, "pop3-upstream.key");
    if (rc == 0 && cfg_find("local", "local_domains", &idx) != NULL)
        rc = cfg_default_local_domains(c, p->seen[idx] != 0);
    return rc;
}

/* ---- load / free ----------------------------------------------------------------------- */

static int cfg_apply_defaults(struct cfg *c)
{
    char why[CFG_ERR_MAX];
    size_t i;

    for (i = 0; i < CFG_NKEYS; i++) {
        if (cfg_keys[i].def == NULL)
            continue;
        if (cfg_set(c, &cfg_keys[i], cfg_keys[i].def, why, sizeof(why)) < 0)
            return PST_ECONFIG;
    }
    return 0;
}

static struct cfg *cfg_parse_text(const char *text, const char *name, const char *path,
                                  char *errbuf, size_t errlen)
{
    struct cfg_parse *p;
    struct cfg *c;
    int rc;

    p = calloc(1, sizeof(*p));
    c = calloc(1, sizeof(*c));
    if (p == NULL || c == NULL) {
        free(p);
        free(c);
        cfg_msg(errbuf, errlen, "%s: out of memory", name);
        return NULL;
    }
    p->c = c;
    p->name = name;
    p->text = text;
    if (cfg_apply_defaults(c) < 0) {
        cfg_msg(errbuf, errlen, "%s: cannot apply built-in defaults: %s", name, strerror(errno));
        goto fail;
    }
    rc = ini_parse_stream(cfg_reader, p, cfg_handler, p);
    if (rc < 0) {
        cfg_msg(errbuf, errlen, "%s: out of memory while parsing", name);
        goto fail;
    }
    if (rc > 0 && (p->err_line == 0 || rc < p->err_line)) {
        p->line = rc;
        p->err_line = 0;
        cfg_fail(p, NULL, NULL, "syntax error (expected [section] or key = value)");
    }
    if (p->err_line != 0) {
        cfg_msg(errbuf, errlen, "%s", p->err);
        goto fail;
    }
    if (cfg_derive(c, p) < 0) {
        cfg_msg(errbuf, errlen, "%s: out of memory", name);
        goto fail;
    }
    if (path != NULL && (c->config_path = strdup(path)) == NULL) {
        cfg_msg(errbuf, errlen, "%s: out of memory", name);
        goto fail;
    }
    free(p);
    return c;
fail:
    free(p);
    cfg_free(&c);
    return NULL;
}

struct cfg *cfg_load_string(const char *text, const char *name, char *errbuf, size_t errlen)
{
    if (name == NULL)
        name = "<string>";
    if (text == NULL)
        text = "";
    return cfg_parse_text(text, name, NULL, errbuf, errlen);
}

/* cfg_read_file - whole file, NUL-terminated, at most CFG_MAX_FILE bytes. Caller frees. */
static char *cfg_read_file(const char *path, char *errbuf, size_t errlen)
{
    struct stat st;
    char *text;
    size_t got = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        cfg_msg(errbuf, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > CFG_MAX_FILE) {
        cfg_msg(errbuf, errlen, "%s: not a regular file of at most %d bytes", path, CFG_MAX_FILE);
        close(fd);
        return NULL;
    }
    text = malloc((size_t)st.st_size + 1);
    if (text == NULL) {
        cfg_msg(errbuf, errlen, "%s: out of memory", path);
        close(fd);
        return NULL;
    }
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, text + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    text[got] = '\0';
    if (memchr(text, '\0', got) != NULL) {
        size_t line = 1, i, at = (size_t)((char *)memchr(text, '\0', got) - text);
        for (i = 0; i < at; i++)
            line += text[i] == '\n';
        cfg_msg(errbuf, errlen, "%s:%zu: NUL byte in file", path, line);
        free(text);
        return NULL;
    }
    return text;
}

struct cfg *cfg_load(const char *path, char *errbuf, size_t errlen)
{
    struct cfg *c;
    char *text;

    if (path == NULL)
        return cfg_parse_text("", CFG_DEFAULTS_NAME, NULL, errbuf, errlen);
    text = cfg_read_file(path, errbuf, errlen);
    if (text == NULL)
        return NULL;
    c = cfg_parse_text(text, path, path, errbuf, errlen);
    free(text);
    return c;
}

void cfg_free(struct cfg **cp)
{
    struct cfg *c;
    size_t i;

    if (cp == NULL || *cp == NULL)
        return;
    c = *cp;
    for (i = 0; i < CFG_NKEYS; i++) {
        const struct cfg_key *k = &cfg_keys[i];
        switch (k->type) {
        case CFG_T_STRING:
        case CFG_T_PATH:
        case CFG_T_LISTEN:
        case CFG_T_ENUM:
            free(*cfg_str_field(c, k));
            break;
        case CFG_T_LIST:
            cfg_list_clear((struct cfg_list *)(void *)((char *)c + k->off));
            break;
        default:
            break;
        }
    }
    free(c->spool_dir);
    free(c->db_path);
    free(c->run_dir);
    free(c->config_path);
    free(c);
    *cp = NULL;
}

/* ---- dump and queries ------------------------------------------------------------------ */

static int cfg_dump_value(buf_t *b, const struct cfg *c, const struct cfg_key *k)
{
    const void *f = (const char *)c + k->off;
    const struct cfg_list *l;
    size_t i;

    switch (k->type) {
    case CFG_T_STRING:
    case CFG_T_PATH:
    case CFG_T_LISTEN:
    case CFG_T_ENUM: {
        const char *s = *(char *const *)f;
        return buf_append_str(b, s ? s : "");
    }
    case CFG_T_BOOL:
        return buf_append_str(b, *(const int *)f ? "yes" : "no");
    case CFG_T_INT:
    case CFG_T_SIZE:
    case CFG_T_DURATION:
        return buf_printf(b, "%lld", (long long)*(const int64_t *)f);
    case CFG_T_LIST:
        l = f;
        for (i = 0; i < l->n; i++) {
            /* one item per line: continuation lines keep each line short */
            int rc = buf_printf(b, "%s%s", i == 0 ? "" : "\n    ", l->v[i]);
            if (rc < 0)
                return rc;
        }
        return 0;
    }
    return PST_EINVAL;
}

int cfg_dump(const struct cfg *c, int fd)
{
    buf_t b;
    const char *section = "";
    size_t i, off = 0;
    int rc = 0;

    if (c == NULL)
        return PST_EINVAL;
    buf_init(&b, CFG_DUMP_MAX);
    for (i = 0; i < CFG_NKEYS && rc == 0; i++) {
        const struct cfg_key *k = &cfg_keys[i];
        if (strcmp(section, k->section) != 0) {
            section = k->section;
            rc = buf_printf(&b, "%s[%s]\n", i == 0 ? "" : "\n", section);
        }
        if (rc == 0)
            rc = buf_printf(&b, "; %s\n%s = ", k->doc, k->key);
        if (rc == 0)
            rc = cfg_dump_value(&b, c, k);
        if (rc == 0)
            rc = buf_append_str(&b, "\n");
    }
    if (rc == 0)
        rc = buf_printf(&b,
                        "\n; derived: spool_dir = %s\n; derived: db_path = %s\n"
                        "; derived: run_dir = %s\n",
                        c->spool_dir ? c->spool_dir : "", c->db_path ? c->db_path : "",
                        c->run_dir ? c->run_dir : "");
    while (rc == 0 && off < b.len) {
        ssize_t w = write(fd, b.data + off, b.len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            rc = PST_EIO;
        else
            off += (size_t)w;
    }
    buf_release(&b);
    return rc;
}

/* cfg_domain_eq - case-insensitive, ignoring one trailing dot on either side. */
static int cfg_domain_eq(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);

    if (la > 0 && a[la - 1] == '.')
        la--;
    if (lb > 0 && b[lb - 1] == '.')
        lb--;
    return la == lb && la > 0 && strncasecmp(a, b, la) == 0;
}

int cfg_is_local_domain(const struct cfg *c, const char *domain)
{
    size_t i;

    if (c == NULL || domain == NULL)
        return 0;
    for (i = 0; i < c->local_domains.n; i++) {
        if (cfg_domain_eq(c->local_domains.v[i], domain))
            return 1;
    }
    return 0;
}

int cfg_is_trusted(const struct cfg *c, const struct sockaddr *sa)
{
    struct netaddr_cidr net;
    size_t i;

    if (c == NULL || sa == NULL)
        return 0;
    for (i = 0; i < c->trusted_networks.n; i++) {
        if (netaddr_parse_cidr(c->trusted_networks.v[i], &net) == 0 && netaddr_cidr_match(&net, sa))
            return 1;
    }
    return 0;
}
