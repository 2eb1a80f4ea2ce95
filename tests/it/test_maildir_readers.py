"""Postern's Maildirs are read by a real Maildir reader: Dovecot (doveadm),
and Python's mailbox module. What they show must be the message as sent."""

import mailbox
import os
import smtplib
import subprocess

import pytest

import pstharness as h

DOVEADM = "/usr/bin/doveadm"


def _doveadm_conf(workdir, mail_dir):
    run = os.path.join(workdir, "dovecot-run")
    os.makedirs(run, exist_ok=True)
    conf = os.path.join(workdir, "dovecot.conf")
    with open(conf, "w") as f:
        f.write("""base_dir = %(run)s
state_dir = %(run)s
log_path = %(run)s/dovecot.log
ssl = no
first_valid_uid = 1
protocols =
mail_location = maildir:%(mail)s/%%u
""" % {"run": run, "mail": mail_dir})
    return conf


def test_dovecot_reads_postern_maildir(server, token, workdir):
    h.need_tool(DOVEADM, "dovecot-core")
    msg = h.message(token, sender="reader@client.test", to="carol@localhost",
                    body=b"line one\r\n.leading dot\r\n\r\nlast line\r\n")
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=30) as c:
        c.sendmail("reader@client.test", ["carol@localhost"], msg)
    content = server.wait_for_message("carol", token)
    st = os.stat(os.path.join(server.mail_dir, "carol"))
    if st.st_uid == 0:
        pytest.skip("Maildir owned by root: Dovecot refuses uid 0")
    conf = _doveadm_conf(workdir, server.mail_dir)

    os.chmod(os.path.join(workdir, "dovecot-run"), 0o777)

    def as_owner():
        os.setgid(st.st_gid)
        os.setuid(st.st_uid)

    def doveadm(*args):
        # doveadm without -u opens the mailbox of the calling user: run it as the
        # Maildir's owner, with mail_location pointing at carol's Maildir.
        env = {"USER": "carol", "HOME": os.path.join(workdir, "dovecot-run"), "PATH": "/usr/bin:/bin"}
        cp = subprocess.run([DOVEADM, "-c", conf, "-o",
                             "mail_location=maildir:" + os.path.join(server.mail_dir, "carol")]
                            + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            timeout=60, env=env, preexec_fn=as_owner if os.geteuid() == 0 else None)
        assert cp.returncode == 0, cp.stderr.decode(errors="replace")
        return cp.stdout

    # Dovecot finds exactly our message by its subject and returns it byte for byte.
    uids = doveadm("search", "mailbox", "INBOX", "subject", token).split()
    assert len(uids) == 2, uids  # "<mailbox-guid> <uid>"
    text = doveadm("fetch", "text", "mailbox", "INBOX", "subject", token)
    # doveadm prints "text:\n<message>" (LF line ends, as stored)
    assert text.startswith(b"text:\n")
    assert text[len(b"text:\n"):].rstrip(b"\n") == content.rstrip(b"\n")
    # ... and sees the headers Postern added in front.
    hdr = doveadm("fetch", "hdr.return-path hdr.delivered-to", "mailbox",
                  "INBOX", "subject", token)
    assert b"<reader@client.test>" in hdr
    assert b"carol@localhost" in hdr


def test_python_mailbox_reads_postern_maildir(server, token):
    msg = h.message(token, sender="py@client.test", to="alice@localhost")
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=30) as c:
        c.sendmail("py@client.test", ["alice@localhost"], msg)
    server.wait_for_message("alice", token)
    md = mailbox.Maildir(os.path.join(server.mail_dir, "alice"), create=False)
    found = [m for m in md if token in (m["Subject"] or "")]
    assert len(found) == 1
    m = found[0]
    assert m["Return-Path"] == "<py@client.test>"
    assert m["Delivered-To"] == "alice@localhost"
    assert m["Received"].startswith("from ")
    assert m.get_subdir() == "new"
