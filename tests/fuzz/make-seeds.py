#!/usr/bin/python3
"""Writes the seed corpora of the fuzz drivers (stdlib only, deterministic).

    tests/fuzz/make-seeds.py            (re)writes corpus/decode/, topic/, passwd/, acl/, jwt/, tenancy/ and record/
    tests/fuzz/make-seeds.py --jwt-keys prints the public keys fuzz_jwt.c holds

corpus/decode/NAME: the input format of fuzz_decode.c: a config byte (bit 0:
version, 0 = 3.1.1, 1 = 5.0; bits 1..3: index into its max_sizes[], 0 = no
limit), a cut byte (where the stream is split for the chunking check), then
an MQTT byte stream: one valid packet of every type in both versions, whole
sessions, and malformed packets of the kinds the codec must refuse.

corpus/topic/NAME: the input of fuzz_topic.c: a filter, 0xFF, a name.

corpus/passwd/NAME: the input of fuzz_passwd.c: a password file. The $7$
and $6$ hashes were written by mosquitto_passwd 2.0.11; seeds that should
verify use PBKDF2 iterations and Argon2 costs within the driver's tiny
limits (hashes of "fuzz" made with Python's hashlib and the argon2 tool).

corpus/acl/NAME: the input of fuzz_acl.c: a subject (username, client id,
certificate CN lines), 0xFF, an ACL file, 0xFF, query lines.
corpus/jwt/NAME: the inputs of fuzz_jwt.c: compact tokens signed with its
fixed keys (valid ones and ones each check refuses), header 0xFF payload
pairs that the driver signs, and JWK Sets (starting with '{').

corpus/tenancy/NAME: the input of fuzz_tenancy.c: a tenancy.json file, valid
(every field) or damaged in one way each.

corpus/record/NAME: the input of fuzz_record.c: a mode byte (0 StoredMessage,
1 StoredSession, 2 session queue entry of tenant "acme", 3 takeover note),
then the value: records of proto/records.proto encoded by hand below (every
field, and records each rule refuses), entries (the 20-byte head of
node/state/sessions.h, then a StoredMessage) and notes.

Files this script does not name are left alone, so inputs added by hand
(or minimized from a fuzzing run) survive a re-run.
"""

import base64
import hashlib
import hmac
import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# Packet types.
CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP = 8, 9, 10, 11, 12, 13
DISCONNECT, AUTH = 14, 15

V311, V5 = 0, 1  # config bit 0


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def u16(n):
    return struct.pack(">H", n)


def u32(n):
    return struct.pack(">I", n)


def s(x):
    """A length-prefixed UTF-8 string or binary field."""
    if isinstance(x, str):
        x = x.encode()
    return u16(len(x)) + x


def packet(ptype, flags, body):
    return bytes([ptype << 4 | flags]) + varint(len(body)) + body


# Properties: each helper returns one encoded property.
def p_byte(pid, v):
    return bytes([pid, v])


def p_u16(pid, v):
    return bytes([pid]) + u16(v)


def p_u32(pid, v):
    return bytes([pid]) + u32(v)


def p_var(pid, v):
    return bytes([pid]) + varint(v)


def p_str(pid, v):
    return bytes([pid]) + s(v)


def p_user(k, v):
    return bytes([0x26]) + s(k) + s(v)


def props(*items):
    block = b"".join(items)
    return varint(len(block)) + block


NOPROPS = b"\x00"


def connect(v5, client="c1", clean=True, keepalive=60, cprops=b"", will=None,
            user=None, password=None):
    """will = (topic, payload, qos, retain, will_props)."""
    flags = 0x02 if clean else 0
    if will:
        flags |= 0x04 | will[2] << 3 | (0x20 if will[3] else 0)
    if user is not None:
        flags |= 0x80
    if password is not None:
        flags |= 0x40
    body = s("MQTT") + bytes([5 if v5 else 4, flags]) + u16(keepalive)
    if v5:
        body += props(cprops) if cprops else NOPROPS
    body += s(client)
    if will:
        if v5:
            body += props(will[4]) if will[4] else NOPROPS
        body += s(will[0]) + s(will[1])
    if user is not None:
        body += s(user)
    if password is not None:
        body += s(password)
    return packet(CONNECT, 0, body)


def publish(v5, topic, payload, qos=0, pid=0, dup=False, retain=False, pprops=b""):
    flags = (0x08 if dup else 0) | qos << 1 | (1 if retain else 0)
    body = s(topic)
    if qos:
        body += u16(pid)
    if v5:
        body += props(pprops) if pprops else NOPROPS
    return packet(PUBLISH, flags, body + payload)


def ack(ptype, pid, code=None, aprops=None):
    flags = 2 if ptype == PUBREL else 0
    body = u16(pid)
    if code is not None:
        body += bytes([code])
        if aprops is not None:
            body += props(aprops) if aprops else NOPROPS
    return packet(ptype, flags, body)


def subscribe(v5, pid, entries, sprops=b""):
    body = u16(pid)
    if v5:
        body += props(sprops) if sprops else NOPROPS
    for flt, opts in entries:
        body += s(flt) + bytes([opts])
    return packet(SUBSCRIBE, 2, body)


def unsubscribe(v5, pid, filters, uprops=b""):
    body = u16(pid)
    if v5:
        body += props(uprops) if uprops else NOPROPS
    for flt in filters:
        body += s(flt)
    return packet(UNSUBSCRIBE, 2, body)


def suback(ptype, v5, pid, codes, sprops=b""):
    body = u16(pid)
    if v5:
        body += props(sprops) if sprops else NOPROPS
    return packet(ptype, 0, body + bytes(codes))


def decode_seeds():
    """(name, config byte, cut byte, stream) for every decode seed."""
    seeds = []

    def add(name, cfg, stream, cut=0):
        seeds.append((name, cfg, cut, stream))

    temp = "sensors/building-7/floor-3/temp"
    will311 = ("clients/c1/status", b"offline", 1, True, b"")
    will5 = ("clients/c1/status", b"offline", 2, False,
             p_u32(0x18, 30) + p_byte(0x01, 1) + p_u32(0x02, 600) +
             p_str(0x03, "text/plain") + p_str(0x08, "clients/c1/reply") +
             p_str(0x09, b"\x01\x02") + p_user("origin", "seed"))
    connect5_props = (p_u32(0x11, 3600) + p_u16(0x21, 100) + p_u32(0x27, 65536) +
                      p_u16(0x22, 10) + p_byte(0x17, 1) + p_byte(0x19, 0) +
                      p_user("tenant", "acme") + p_str(0x15, "SCRAM-SHA-256") +
                      p_str(0x16, b"\x00client-first"))
    connack5_props = (p_u32(0x11, 60) + p_u16(0x21, 20) + p_byte(0x24, 1) +
                      p_byte(0x25, 1) + p_u32(0x27, 1 << 20) +
                      p_str(0x12, "auto-7f3a") + p_u16(0x22, 5) +
                      p_str(0x1F, "welcome") + p_user("node", "bw-1") +
                      p_byte(0x28, 1) + p_byte(0x29, 1) + p_byte(0x2A, 0) +
                      p_u16(0x13, 30) + p_str(0x1A, "resp/") + p_str(0x1C, "other:1883"))
    pub5_props = (p_byte(0x01, 1) + p_u32(0x02, 60) + p_u16(0x23, 3) +
                  p_str(0x08, "reply/to") + p_str(0x09, b"corr\x00id") +
                  p_user("unit", "celsius") + p_user("unit", "kelvin") +
                  p_var(0x0B, 1) + p_var(0x0B, 300000) + p_str(0x03, "application/json"))

    # One valid packet of every type, 3.1.1.
    add("v311-connect-min", V311, connect(False))
    add("v311-connect-will-user-pass", V311,
        connect(False, client="", keepalive=0, will=will311, user="alice", password=b"s3cret"))
    add("v311-connack", V311, packet(CONNACK, 0, b"\x01\x00"))
    add("v311-connack-refused", V311, packet(CONNACK, 0, b"\x00\x05"))
    add("v311-publish-qos0", V311, publish(False, temp, b'{"t":21.5}'))
    add("v311-publish-qos1", V311, publish(False, temp, b'{"t":21.5}', qos=1, pid=1), cut=9)
    add("v311-publish-qos2-dup-retain", V311,
        publish(False, "a/b", b"x" * 130, qos=2, pid=0xFFFF, dup=True, retain=True), cut=2)
    add("v311-publish-empty-payload", V311, publish(False, "a", b""))
    add("v311-puback", V311, ack(PUBACK, 1))
    add("v311-pubrec", V311, ack(PUBREC, 2))
    add("v311-pubrel", V311, ack(PUBREL, 2))
    add("v311-pubcomp", V311, ack(PUBCOMP, 2))
    add("v311-subscribe", V311,
        subscribe(False, 10, [(temp, 1), ("sensors/+/floor-3/#", 2), ("#", 0),
                              ("$share/g1/jobs/+", 1), ("bad/#/filter", 0)]))
    add("v311-suback", V311, suback(SUBACK, False, 10, [1, 2, 0, 0x80]))
    add("v311-unsubscribe", V311, unsubscribe(False, 11, [temp, "sensors/+/floor-3/#"]))
    add("v311-unsuback", V311, packet(UNSUBACK, 0, u16(11)))
    add("v311-pingreq", V311, packet(PINGREQ, 0, b""))
    add("v311-pingresp", V311, packet(PINGRESP, 0, b""))
    add("v311-disconnect", V311, packet(DISCONNECT, 0, b""))

    # One valid packet of every type, 5.0.
    add("v5-connect-min", V5, connect(True))
    add("v5-connect-props-will", V5,
        connect(True, client="dev-42", clean=False, cprops=connect5_props, will=will5,
                user="bob", password=b"pw"))
    add("v5-connect-password-only", V5, connect(True, password=b"token"))
    add("v5-connack", V5, packet(CONNACK, 0, b"\x00\x00" + NOPROPS))
    add("v5-connack-props", V5, packet(CONNACK, 0, b"\x01\x00" + props(connack5_props)))
    add("v5-connack-refused", V5, packet(CONNACK, 0, b"\x00\x87" + props(p_str(0x1F, "no"))))
    add("v5-publish-qos0", V5, publish(True, temp, b'{"t":21.5}'))
    add("v5-publish-qos1-props", V5,
        publish(True, temp, b'{"t":21.5}', qos=1, pid=7, pprops=pub5_props), cut=20)
    add("v5-publish-alias-only", V5, publish(True, "", b"22.0", qos=2, pid=8,
                                             pprops=p_u16(0x23, 3)))
    add("v5-puback-short", V5, ack(PUBACK, 7))
    add("v5-puback-code", V5, ack(PUBACK, 7, 0x10))
    add("v5-pubrec-reason", V5, ack(PUBREC, 8, 0x80, p_str(0x1F, "quota") + p_user("k", "v")))
    add("v5-pubrel-not-found", V5, ack(PUBREL, 8, 0x92, b""))
    add("v5-pubcomp-props", V5, ack(PUBCOMP, 8, 0x00, p_str(0x1F, "done")))
    add("v5-subscribe", V5,
        subscribe(True, 12, [(temp, 0x01), ("a/+/c", 0x06), ("a/#", 0x2A),
                             ("$share/grp/a/b", 0x12), ("x/y", 0x00)],
                  sprops=p_var(0x0B, 42) + p_user("client", "seed")))
    add("v5-suback", V5, suback(SUBACK, True, 12, [0, 1, 2, 0x80, 0x8F, 0x9E, 0xA1, 0xA2],
                                sprops=p_str(0x1F, "partly")))
    add("v5-unsubscribe", V5, unsubscribe(True, 13, ["a/+/c", "$share/grp/a/b"],
                                          uprops=p_user("why", "done")))
    add("v5-unsuback", V5, suback(UNSUBACK, True, 13, [0x00, 0x11, 0x8F]))
    add("v5-pingreq", V5, packet(PINGREQ, 0, b""))
    add("v5-pingresp", V5, packet(PINGRESP, 0, b""))
    add("v5-disconnect-short", V5, packet(DISCONNECT, 0, b""))
    add("v5-disconnect-code-only", V5, packet(DISCONNECT, 0, b"\x04"))
    add("v5-disconnect-props", V5,
        packet(DISCONNECT, 0, b"\x9c" + props(p_u32(0x11, 0) + p_str(0x1F, "moving") +
                                               p_str(0x1C, "node-2:1883"))))
    add("v5-auth", V5, packet(AUTH, 0, b"\x18" + props(p_str(0x15, "SCRAM-SHA-256") +
                                                       p_str(0x16, b"server-first"))))
    add("v5-auth-short", V5, packet(AUTH, 0, b""))

    # Whole sessions, with different cuts and packet size limits.
    s311 = (connect(False, client="s1") + subscribe(False, 1, [("a/#", 1)]) +
            publish(False, "a/b", b"hello", qos=1, pid=2) + ack(PUBACK, 2) +
            packet(PINGREQ, 0, b"") + unsubscribe(False, 3, ["a/#"]) +
            packet(DISCONNECT, 0, b""))
    add("v311-session", V311, s311, cut=17)
    add("v311-session-max-128", V311 | 4 << 1, s311, cut=200)
    s5 = (connect(True, client="s5", cprops=p_u16(0x22, 4)) +
          subscribe(True, 1, [("a/+", 0x01)], sprops=p_var(0x0B, 9)) +
          publish(True, "a/b", b"hello", qos=1, pid=2, pprops=p_u16(0x23, 1)) +
          publish(True, "", b"again", pprops=p_u16(0x23, 1)) + ack(PUBACK, 2, 0x00, b"") +
          packet(DISCONNECT, 0, b"\x00" + NOPROPS))
    add("v5-session", V5, s5, cut=33)
    # A 5.0 CONNECT on a connection the config calls 3.1.1 switches it.
    add("v311-config-v5-connect", V311, connect(True) + publish(True, "t", b"p", pprops=b""))
    big = publish(True, "big", b"B" * 300)
    add("v5-publish-300", V5, big, cut=3)

    # Malformed and refused input.
    add("bad-type-0", V311, b"\x00\x00")
    add("bad-varint-overlong", V311, b"\x30\xff\xff\xff\xff\x01")
    add("bad-varint-nonminimal", V5, b"\x30\x80\x00")
    add("bad-varint-max", V5, b"\x30\xff\xff\xff\x7f")
    add("bad-truncated", V311, publish(False, "a/b", b"payload")[:6], cut=4)
    add("bad-too-large-max-20", V5 | 3 << 1, publish(True, temp, b"x" * 100))
    add("bad-too-large-max-2", V311 | 1 << 1, packet(PINGREQ, 0, b"") + ack(PUBACK, 1))
    add("bad-topic-utf8-overlong", V311, publish(False, b"a/\xc0\x80", b""))
    add("bad-topic-surrogate", V5, publish(True, b"a/\xed\xa0\x80", b""))
    add("bad-topic-nul", V311, publish(False, b"a\x00b", b""))
    add("bad-topic-wildcard", V311, publish(False, "a/+", b"x"))
    add("bad-topic-empty-311", V311, publish(False, "", b"x"))
    add("bad-topic-empty-no-alias", V5, publish(True, "", b"x"))
    add("bad-publish-qos3", V311, packet(PUBLISH, 0x06, s("a") + u16(1)))
    add("bad-publish-dup-qos0", V311, packet(PUBLISH, 0x08, s("a")))
    add("bad-publish-pid-0", V311, publish(False, "a", b"", qos=1, pid=0))
    add("bad-subscribe-flags", V311, packet(SUBSCRIBE, 0, u16(1) + s("a") + b"\x00"))
    add("bad-subscribe-empty", V5, packet(SUBSCRIBE, 2, u16(1) + NOPROPS))
    add("bad-subscribe-opts-311", V311, subscribe(False, 1, [("a", 0x04)]))
    add("bad-subscribe-qos3", V5, subscribe(True, 1, [("a", 0x03)]))
    add("bad-subscribe-nolocal-shared", V5, subscribe(True, 1, [("$share/g/a", 0x04)]))
    add("bad-unsubscribe-empty", V311, packet(UNSUBSCRIBE, 2, u16(1)))
    add("bad-auth-311", V311, packet(AUTH, 0, b""))
    add("bad-puback-pid-0", V311, ack(PUBACK, 0))
    add("bad-puback-trailing", V311, packet(PUBACK, 0, u16(1) + b"\x00"))
    add("bad-puback-code", V5, ack(PUBACK, 1, 0x05))
    add("bad-prop-duplicate", V5, publish(True, "a", b"", pprops=p_u16(0x23, 1) + p_u16(0x23, 2)))
    add("bad-prop-wrong-packet", V5, publish(True, "a", b"", pprops=p_u32(0x11, 5)))
    add("bad-prop-unknown", V5, publish(True, "a", b"", pprops=b"\x7f\x00"))
    add("bad-prop-receive-max-0", V5, connect(True, cprops=p_u16(0x21, 0)))
    add("bad-prop-topic-alias-0", V5, publish(True, "a", b"", pprops=p_u16(0x23, 0)))
    add("bad-prop-sub-id-0", V5, publish(True, "a", b"", pprops=p_var(0x0B, 0)))
    add("bad-prop-truncated", V5, publish(True, "a", b"", pprops=b"\x02\x00"))
    add("bad-prop-length-past-end", V5, packet(PUBLISH, 0, s("a") + b"\x05\x01"))
    add("bad-connect-mqisdp", V311, packet(CONNECT, 0, s("MQIsdp") + b"\x03\x02" + u16(60) + s("c")))
    add("bad-connect-level-6", V5, packet(CONNECT, 0, s("MQTT") + b"\x06\x02" + u16(60) + s("c")))
    add("bad-connect-reserved-flag", V311, packet(CONNECT, 0, s("MQTT") + b"\x04\x03" + u16(60) + s("c")))
    add("bad-connect-will-qos3", V311, packet(CONNECT, 0, s("MQTT") + b"\x04\x1e" + u16(60) + s("c")))
    add("bad-connect-auth-data-no-method", V5, connect(True, cprops=p_str(0x16, b"x")))
    add("bad-connack-flags", V311, packet(CONNACK, 0, b"\x02\x00"))
    add("bad-disconnect-code", V5, packet(DISCONNECT, 0, b"\x01"))
    add("bad-pingreq-body", V5, packet(PINGREQ, 0, b"\x00"))
    return seeds


def topic_seeds():
    pairs = [
        ("exact", b"a/b/c", b"a/b/c"),
        ("plus", b"a/+/c", b"a/x/c"),
        ("plus-empty-level", b"a/+/c", b"a//c"),
        ("hash-parent", b"a/#", b"a"),
        ("hash-all", b"#", b"a/b/c"),
        ("hash-dollar", b"#", b"$SYS/uptime"),
        ("plus-dollar", b"+/x", b"$SYS/x"),
        ("dollar-explicit", b"$SYS/#", b"$SYS/broker/load"),
        ("plus-slash", b"+", b"/"),
        ("plus-plus-slash", b"+/+", b"/"),
        ("leading-slash", b"/+", b"/finance"),
        ("trailing-slash", b"a/b/", b"a/b/"),
        ("sensors", b"sensors/+/floor-3/#", b"sensors/building-7/floor-3/temp"),
        ("shared", b"$share/g/a/+", b"a/b"),
        ("shared-hash", b"$share/g/#", b"$SYS/x"),
        ("shared-empty-group", b"$share//a", b"a"),
        ("shared-no-filter", b"$share/g", b"g"),
        ("shared-empty-filter", b"$share/g/", b"g"),
        ("shared-wild-group", b"$share/g+/a", b"a"),
        ("shared-nested", b"$share/g/$share/h/a", b"$share/h/a"),
        ("share-no-slash", b"$share", b"$share"),
        ("bad-hash-middle", b"a/#/b", b"a/x/b"),
        ("bad-hash-glued", b"a/b#", b"a/b#"),
        ("bad-plus-glued", b"a+/b", b"a+/b"),
        ("utf8", "日本/+".encode(), "日本/東京".encode()),
        ("utf8-4byte", "a/\U0001F600".encode(), "a/\U0001F600".encode()),
        ("bad-utf8-overlong", b"a/\xc0\xaf", b"a/\xc0\xaf"),
        ("bad-utf8-surrogate", b"\xed\xa0\x80", b"x"),
        ("bad-utf8-above-max", b"\xf4\x90\x80\x80", b"x"),
        ("bad-utf8-truncated", b"a\xe6\x97", b"a"),
        ("nul", b"a\x00b", b"a\x00b"),
        ("empty-both", b"", b""),
        ("empty-name", b"#", b""),
    ]
    seeds = [(name, f + b"\xff" + n) for name, f, n in pairs]
    seeds.append(("no-separator", b"a/+a/b"))
    seeds.append(("many-levels", b"+/+/+/+/+/+/+/+/#\xff" + b"/".join([b"l"] * 40)))
    return seeds


ALICE_7 = (b"$7$101$cR2JDGEzLxF+FoXU$Z3zONKHoNCGYLA+VFfsGICOaOKvUkhB6bObEcPLIjfnd9s+VK2UGceW8"
           b"rQpYMzOL/cyPWZoSuckzBL+Tt9ca2Q==")
CAROL_6 = (b"$6$ztvo1PKwCWhqcU39$chHZQuJDqyglCnPxo3vc0rAE6oItDaVm0ge9Dwl4QRLfsHYlHvgVWKIpKibSWbFn"
           b"BeUPJ2sm0YFUwKNaXc+nuw==")
# PBKDF2-HMAC-SHA512 of "fuzz", 10 iterations, salt "0123456789ab".
FUZZ_7 = (b"$7$10$MDEyMzQ1Njc4OWFi$" +
          base64.b64encode(hashlib.pbkdf2_hmac("sha512", b"fuzz", b"0123456789ab", 10, 64)))
# SHA-512("fuzz" || salt) with the same salt.
FUZZ_6 = (b"$6$MDEyMzQ1Njc4OWFi$" +
          base64.b64encode(hashlib.sha512(b"fuzz" + b"0123456789ab").digest()))
# echo -n fuzz | argon2 saltsaltsalt -id -t 1 -m 4 -p 1 -l 32 -e
FUZZ_ARGON2 = b"$argon2id$v=19$m=16,t=1,p=1$c2FsdHNhbHRzYWx0$NpEB1Y30HhoDbxGIZOYFqba4X0GDd4zdmkTnuEtv5LM"


def passwd_seeds():
    return [
        ("mosquitto", b"alice:" + ALICE_7 + b"\ncarol:" + CAROL_6 + b"\n"),
        ("verifies-7", b"fuzz:" + FUZZ_7 + b"\n"),
        ("verifies-6", b"# comment\n\nfuzz:" + FUZZ_6 + b"\r\n"),
        ("verifies-argon2id", b"fuzz:" + FUZZ_ARGON2 + b"\n"),
        ("costly-argon2", b"big:$argon2id$v=19$m=65536,t=3,p=1$YnVsd2Fya3NhbHRzYWx0MQ$"
                          b"5v7wWTd/8fCWogSgYY2qD8r/Hbt7qG2JnMLCtdJegco\n"),
        ("blanks", b"  \t\n   # indented\nd\xc3\xa9j\xc3\xa0 vu:" + FUZZ_6 + b" \t\n"),
        ("bad-plain", b"alice:secret\n"),
        ("bad-duplicate", b"a:" + FUZZ_6 + b"\na:" + FUZZ_7 + b"\n"),
        ("bad-two-colons", b"a:b:" + FUZZ_6 + b"\n"),
        ("bad-utf8", b"a\xff:" + FUZZ_6 + b"\n"),
        ("bad-no-padding", b"a:" + FUZZ_7.rstrip(b"=") + b"\n"),
        ("bad-iterations", b"a:$7$0$MDEyMzQ1Njc4OWFi$" + FUZZ_7.split(b"$")[4] + b"\n"),
        ("bad-argon2-params", b"a:$argon2id$v=19$t=1,m=16,p=1$c2FsdHNhbHRzYWx0$AAAA\n"),
    ]


def acl_seeds():
    acl = (b"topic read $SYS/broker/#\n"
           b"user alice\ntopic readwrite alice/#\ntopic deny alice/secret/#\n"
           b"pattern read $SYS/broker/connection/%c/#\n"
           b"user bob\nallow publish data/%c/# qos=1 retain=no\nallow subscribe data/# qos=2\n"
           b"deny subscribe data/private/#\nallow all chat/+ qos=1\n"
           b"everyone\nallow publish clients/%c/status\nallow subscribe users/%u/#\n"
           b"allow subscribe certs/%cn/#\ndeny all forbidden/#\nanonymous\nallow publish anon/+\n")
    queries = (b"p\x01data/b1/t\np\x05data/b1/t\nsdata/#\nsdata/private/+\nrdata/private/x\n"
               b"s$share/g/data/+\ns#\ns+/x\nr$SYS/broker/x\nschat/#\nschat/room\n"
               b"salice/+\np\x02alice/secret/x\nsusers/bob/#\nscerts/+/#\n")
    root = b"user root\nallow all #\neveryone\ndeny all forbidden/#\n"
    return [
        ("bob", b"bob\nb1\nbob.example\xff" + acl + b"\xff" + queries),
        ("alice", b"alice\na1\n!\xff" + acl + b"\xff" + queries),
        ("anonymous", b"!\nc0\xff" + acl + b"\xff" + queries),
        ("hostile-client-id", b"bob\na/#\n+\xff" + acl + b"\xff" + queries),
        ("dollar-client-id", b"bob\n$SYS\xff" + acl + b"\xffp\x00data/$SYS/x\n"),
        ("root", b"root\nr\xff" + root + b"\xffs#\ns$SYS/#\nsforbidden/+\ns+/+/+\n"),
        ("bad-placeholder", b"u\xffuser u\nallow publish a/x%c\n"),
        ("bad-before-section", b"u\xffallow publish a\n"),
        ("bad-option", b"u\xffuser u\ndeny publish a qos=1\n"),
    ]
# ---- fuzz_jwt ---------------------------------------------------------------
#
# The driver's fixed keys: an HMAC secret (kid "hs") and a P-256 key (kid
# "ec") whose private scalar is derived here from a label, so the seeds are
# deterministic and no key file is checked in. The driver holds the public
# half (JWT_EC_X, JWT_EC_Y below, printed by --jwt-keys). ECDSA is done with
# plain affine arithmetic from SEC 1 / FIPS 186; a deterministic nonce from
# SHA-256 of the key and message stands in for RFC 6979: fine for seeds.

JWT_HS_SECRET = b"bulwark fuzz_jwt HS256 secret 32"
JWT_NOW = 1700000000
JWT_FAR = 4102444800  # 2100-01-01

P256_P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
P256_A = P256_P - 3
P256_B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
P256_G = (0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
          0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5)


def ec_add(p1, p2):
    if p1 is None:
        return p2
    if p2 is None:
        return p1
    (x1, y1), (x2, y2) = p1, p2
    if x1 == x2 and (y1 + y2) % P256_P == 0:
        return None
    if p1 == p2:
        lam = (3 * x1 * x1 + P256_A) * pow(2 * y1, -1, P256_P) % P256_P
    else:
        lam = (y2 - y1) * pow(x2 - x1, -1, P256_P) % P256_P
    x3 = (lam * lam - x1 - x2) % P256_P
    return (x3, (lam * (x1 - x3) - y1) % P256_P)


def ec_mul(k, pt):
    acc = None
    while k:
        if k & 1:
            acc = ec_add(acc, pt)
        pt = ec_add(pt, pt)
        k >>= 1
    return acc


JWT_EC_D = int.from_bytes(hashlib.sha256(b"bulwark fuzz_jwt ES256 key").digest(), "big") % P256_N
JWT_EC_PUB = ec_mul(JWT_EC_D, P256_G)
assert (JWT_EC_PUB[1] ** 2 - JWT_EC_PUB[0] ** 3 - P256_A * JWT_EC_PUB[0] - P256_B) % P256_P == 0


def b64u(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def es256_sign(msg):
    z = int.from_bytes(hashlib.sha256(msg).digest(), "big")
    for ctr in range(100):
        seed = JWT_EC_D.to_bytes(32, "big") + msg + bytes([ctr])
        k = int.from_bytes(hashlib.sha256(seed).digest(), "big") % P256_N
        if k == 0:
            continue
        r = ec_mul(k, P256_G)[0] % P256_N
        s = pow(k, -1, P256_N) * (z + r * JWT_EC_D) % P256_N
        if r and s:
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    raise RuntimeError("no nonce")


def jwt_token(header, claims, alg="HS256"):
    """header and claims: dicts (or str/bytes taken as they are)."""
    enc = lambda v: b64u(v if isinstance(v, (str, bytes)) else json.dumps(v, separators=(",", ":")))
    signing_input = (enc(header) + "." + enc(claims)).encode()
    if alg == "HS256":
        sig = hmac.new(JWT_HS_SECRET, signing_input, hashlib.sha256).digest()
    elif alg == "ES256":
        sig = es256_sign(signing_input)
    else:
        sig = b"x" * 32
    return signing_input + b"." + b64u(sig).encode()


def jwt_seeds():
    """corpus/jwt: tokens, driver-signed header/payload pairs and JWK Sets."""
    good = {"iss": "https://idp.example", "aud": "mqtt", "exp": JWT_FAR, "sub": "dev-1"}
    hs = {"alg": "HS256", "kid": "hs", "typ": "JWT"}
    ec = {"alg": "ES256", "kid": "ec"}
    seeds = [
        ("valid-hs256", jwt_token(hs, good)),
        ("valid-hs256-no-kid", jwt_token({"alg": "HS256"}, good)),
        ("valid-es256", jwt_token(ec, good, "ES256")),
        ("valid-aud-array", jwt_token(hs, dict(good, aud=["web", "mqtt"]))),
        ("valid-nested-claims", jwt_token(hs, dict(good, realm={"tenant": {"id": "acme"}},
                                                   tenant="acme", nbf=JWT_NOW, iat=JWT_NOW))),
        ("valid-real-exp", jwt_token(hs, '{"iss":"https://idp.example","aud":"mqtt",'
                                         '"exp":4102444800.5}')),
        ("bad-expired", jwt_token(hs, dict(good, exp=JWT_NOW - 100))),
        ("bad-nbf-future", jwt_token(hs, dict(good, nbf=JWT_NOW + 100))),
        ("bad-iat-future", jwt_token(hs, dict(good, iat=JWT_NOW + 100))),
        ("bad-iss", jwt_token(hs, dict(good, iss="https://evil.example"))),
        ("bad-aud", jwt_token(hs, dict(good, aud="web"))),
        ("bad-exp-string", jwt_token(hs, dict(good, exp=str(JWT_FAR)))),
        ("bad-kid-unknown", jwt_token(dict(hs, kid="nope"), good)),
        ("bad-kid-other-alg", jwt_token(dict(hs, kid="ec"), good)),
        ("bad-es256-as-hs", jwt_token(dict(ec, alg="HS256"), good)),
        ("bad-crit", jwt_token(dict(hs, crit=["exp"]), good)),
        ("bad-duplicate-alg", jwt_token('{"alg":"none","alg":"HS256","kid":"hs"}', good)),
        ("bad-signature", jwt_token(hs, good)[:-4] + b"AAAA"),
        ("bad-padding", jwt_token(hs, good) + b"=="),
        ("bad-two-segments", jwt_token(hs, good).rsplit(b".", 1)[0]),
        ("bad-none", b64u('{"alg":"none"}').encode() + b"." + b64u(json.dumps(good)).encode()
         + b"."),
        ("bad-none-caps", b64u('{"alg":"NoNe"}').encode() + b"." + b64u(json.dumps(good)).encode()
         + b"."),
        ("bad-header-array", jwt_token('["HS256"]', good)),
    ]
    pairs = [
        ("signed-good", hs, good),
        ("signed-no-kid", {"alg": "HS256"}, good),
        ("signed-hs512-short-secret", {"alg": "HS512", "kid": "hs"}, good),
        ("signed-aud-mixed", hs, dict(good, aud=["mqtt", 5])),
        ("signed-deep-claims", hs, dict(good, a={"b": {"c": {"d": [1, 2.5, None, True]}}})),
        ("signed-unicode", hs, dict(good, sub="d\u00e9v\ud83d\ude00")),
    ]
    for name, h, c in pairs:
        enc = lambda v: v.encode() if isinstance(v, str) else json.dumps(v).encode()
        seeds.append((name, enc(h) + b"\xff" + enc(c)))
    # A 2048-bit "modulus" (top bit set, odd): enough to import, never to sign.
    n = b64u(b"\xc1" + (hashlib.sha256(b"n").digest() * 8)[1:-1] + b"\x01")
    seeds += [
        ("jwks-fixed", json.dumps({"keys": [
            {"kty": "oct", "kid": "hs", "k": b64u(JWT_HS_SECRET)},
            {"kty": "EC", "crv": "P-256", "kid": "ec", "alg": "ES256",
             "x": b64u(JWT_EC_PUB[0].to_bytes(32, "big")),
             "y": b64u(JWT_EC_PUB[1].to_bytes(32, "big"))}]}).encode()),
        ("jwks-mixed", json.dumps({"keys": [
            {"kty": "RSA", "kid": "r", "use": "sig", "n": n, "e": "AQAB"},
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": b64u(b"\x01" * 32)},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": n, "e": "AQAB"},
            {"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"},
            {"kty": "oct", "kid": "hs", "k": b64u(JWT_HS_SECRET), "key_ops": ["verify"]}]}
        ).encode()),
        ("jwks-private", json.dumps({"keys": [
            {"kty": "EC", "crv": "P-256", "d": "AA", "x": "AA", "y": "AA"}]}).encode()),
        ("jwks-duplicate-kid", json.dumps({"keys": [
            {"kty": "oct", "kid": "a", "k": b64u(JWT_HS_SECRET)},
            {"kty": "oct", "kid": "a", "k": b64u(JWT_HS_SECRET)}]}).encode()),
        ("jwks-off-curve", json.dumps({"keys": [
            {"kty": "EC", "crv": "P-256", "x": b64u(b"\x01" * 32), "y": b64u(b"\x01" * 32)}]}
        ).encode()),
        ("jwks-not-keys", b'{"keys":{}}'),
    ]
    return seeds


# A CA certificate (EC P-256, CA:TRUE) as tests/unit/tenancy_material.h holds it.
TENANCY_CA_PEM = """-----BEGIN CERTIFICATE-----
MIIBfzCCASWgAwIBAgIUPlrYZvoFuNK8BAnhC8NJTA4H9UowCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJVGVzdCBDQSBhMCAXDTI2MTEyNDIyMjg1M1oYDzIxMjYxMDMx
MjIyODUzWjAUMRIwEAYDVQQDDAlUZXN0IENBIGEwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAAT/ECOBV0AHoKUih3hDrHvvim9/8YoxOmSt7QyewT/PObRNlK0WKe1P
gp5nbl/MENvGORaOS9tXQ0X4x8sHJhDoo1MwUTAdBgNVHQ4EFgQUzTFUisPQ+96G
xGyNGIzM9OOY/IYwHwYDVR0jBBgwFoAUzTFUisPQ+96GxGyNGIzM9OOY/IYwDwYD
VR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNIADBFAiEA13fAFpzZig9H2QW0wP4m
7AGL39eDiR45FzBDxsgU3XECID9+tkosypo0M4BobLsV3EncrpyuwAjSFlIA+tLT
87j+
-----END CERTIFICATE-----
"""

TENANCY_HASH = ("$7$101$cR2JDGEzLxF+FoXU$Z3zONKHoNCGYLA+VFfsGICOaOKvUkhB6bObEcPLIjfnd9s+VK2UGceW8rQpYMz"
                "OL/cyPWZoSuckzBL+Tt9ca2Q==")


def tenancy_seeds():
    """corpus/tenancy: tenancy.json files, valid ones and damaged ones."""
    def doc(tenants, **top):
        d = {"format": "bulwark-tenancy", "version": 1, "next_tenant_id": 10, "tenants": tenants}
        d.update(top)
        return json.dumps(d, indent=1).encode()
    full = {
        "name": "acme", "id": 1, "status": "active", "allow_anonymous": False,
        "sni": ["mqtt.acme.example", "acme.example"],
        "quotas": {"connections": 100, "client_msgs_per_s": 50, "retained_bytes": 1 << 20,
                   "max_qos": 1, "max_packet_bytes": 65536},
        "ca_pem": TENANCY_CA_PEM,
        "jwt": {"issuers": ["https://id.acme.example"], "audiences": ["mqtt"],
                "jwks": json.dumps({"keys": [{"kty": "oct", "alg": "HS256", "kid": "k1",
                                              "k": b64u(b"A" * 32)}]})},
        "groups": [{"name": "sensors", "rules": "allow publish data/%c/#\n"},
                   {"name": "dashboards", "rules": "allow subscribe data/# qos=1\n"
                                                   "deny subscribe data/secret/#\n"}],
        "principals": [
            {"name": "dev1", "kind": "password", "password_hash": TENANCY_HASH,
             "enabled": True, "groups": ["sensors"], "rules": ""},
            {"name": "ops", "kind": "token", "groups": ["sensors", "dashboards"],
             "rules": "pattern read ops/%u/#"},
            {"name": "CN=cam 1", "kind": "certificate", "enabled": False}]}
    small = {"name": "globex", "id": 2, "status": "suspended"}
    out = [
        ("full", doc([full, small])),
        ("minimal", doc([small])),
        ("empty", doc([])),
        ("no-next-id", json.dumps({"format": "bulwark-tenancy", "version": 1,
                                   "tenants": [small]}).encode()),
        ("bad-syntax", b'{"format": "bulwark-tenancy", "version": 1,, "tenants": []}'),
        ("bad-version", doc([], version=2)),
        ("bad-member", doc([dict(small, color="red")])),
        ("bad-hash", doc([dict(small, principals=[{"name": "p", "kind": "password",
                                                    "password_hash": "plain"}])])),
        ("bad-group-ref", doc([dict(small, principals=[{"name": "p", "kind": "token",
                                                         "groups": ["nope"]}])])),
        ("bad-rules", doc([dict(small, groups=[{"name": "g", "rules": "user bob\n"}])])),
        ("clash-sni", doc([dict(small, sni=["x.example"]),
                           {"name": "b", "id": 3, "sni": ["x.example"]}])),
        ("clash-id", doc([small, {"name": "b", "id": 2}])),
        ("dup-tenant", doc([small, small])),
        ("bad-qos", doc([dict(small, quotas={"max_qos": 3})])),
        ("bad-ca", doc([dict(small, ca_pem="-----BEGIN CERTIFICATE-----\nAAAA\n"
                                          "-----END CERTIFICATE-----\n")])),
        ("tenant-claim", doc([dict(small, jwt_tenant_claim="https://example.com/tenant"),
                              {"name": "b", "id": 3, "jwt_tenant_claim": "org"}])),
        ("bad-tenant-claim", doc([dict(small, jwt_tenant_claim="my org")])),
    ]
    return out


# ---- corpus/record: protobuf by hand (proto/records.proto) -------------------------


def pb_int(field, v):
    return varint(field << 3) + varint(v)


def pb_bytes(field, b):
    b = b.encode() if isinstance(b, str) else b
    return varint(field << 3 | 2) + varint(len(b)) + b


def pb_message(tenant="acme", topic="a/b", payload=b"hello", qos=1, version=1, extra=b""):
    """A StoredMessage; version None leaves it out (a message nested in a session)."""
    out = pb_int(1, version) if version is not None else b""
    return out + pb_bytes(2, tenant) + pb_bytes(3, topic) + pb_bytes(4, payload) + \
        pb_int(5, qos) + extra


PB_PROPS = pb_bytes(7, pb_int(1, 1) + pb_bytes(2, "text/plain") + pb_bytes(3, "reply/to") +
                    pb_bytes(4, b"\x00\x01") +
                    pb_bytes(5, pb_bytes(1, "k") + pb_bytes(2, "v")))
PB_FULL = (pb_int(6, 1) + PB_PROPS + pb_int(8, 1900000000000) + pb_int(9, 1700000000000) +
           pb_bytes(10, "0123456789abcdef0123456789abcdef") + pb_bytes(11, "pub-1") +
           pb_int(12, 1) + pb_int(12, 268435455))


def pb_sub(filt, qos=1, group=None, sub_id=0, no_local=False):
    out = pb_bytes(1, filt) + pb_int(2, qos) + pb_int(4, 1) + pb_int(5, 2)
    if no_local:
        out += pb_int(3, 1)
    if sub_id:
        out += pb_int(6, sub_id)
    if group is not None:
        out += pb_bytes(7, group)
    return out


def pb_inflight(pid, direction, state, msg=None):
    out = pb_int(1, pid) + pb_int(2, direction) + pb_int(3, state) + pb_int(5, 1700000000000)
    return out + (pb_bytes(4, msg) if msg is not None else b"")


def pb_session(client="dev 1", tenant="acme", proto=5, extra=b""):
    return (pb_int(1, 1) + pb_bytes(2, tenant) + pb_bytes(3, client) + pb_int(4, proto) +
            pb_int(5, 3600) + pb_int(11, 42) + pb_int(14, 1700000000000) + extra)


def entry(seq, pid, state, msg, fmt=1, sent=0):
    return struct.pack(">BQHBQ", fmt, seq, pid, state, sent) + msg


NODE_ID = "0123456789abcdef0123456789abcdef"


def record_seeds():
    """corpus/record: a mode byte, then a record, an entry or a note."""
    subs = pb_bytes(7, pb_sub("a/#", 2, sub_id=7)) + pb_bytes(7, pb_sub("b/+", 1, group="g"))
    will = pb_bytes(8, pb_bytes(1, pb_message(version=None, topic="will", qos=1)) +
                    pb_int(2, 30) + pb_int(3, 60))
    incoming = pb_bytes(9, pb_inflight(7, 2, 3)) + pb_bytes(9, pb_inflight(8, 2, 3,
                                                               pb_message(qos=2)))
    outgoing = pb_bytes(9, pb_inflight(7, 1, 1, pb_message(version=None, qos=1))) + \
        pb_bytes(9, pb_inflight(9, 1, 2))
    queue = pb_bytes(10, pb_message(version=None, qos=0))
    owner = pb_bytes(12, NODE_ID) + pb_int(13, 5)
    m1 = pb_message(qos=1)
    m2 = pb_message(qos=2, extra=PB_FULL)
    out = [
        ("message-min", b"\x00" + pb_message()),
        ("message-full", b"\x00" + m2),
        ("message-qos3", b"\x00" + pb_message(qos=3)),
        ("message-wildcard", b"\x00" + pb_message(topic="a/+")),
        ("message-no-version", b"\x00" + pb_message(version=None)),
        ("message-version-2", b"\x00" + pb_message(version=2)),
        ("message-bad-utf8", b"\x00" + pb_message(topic=b"a/\xc0\x80")),
        ("message-truncated", b"\x00" + m2[:-3]),
        ("session-store", b"\x01" + pb_session(extra=subs + will + incoming)),
        ("session-snapshot", b"\x01" + pb_session(extra=subs + outgoing + queue + owner)),
        ("session-owner", b"\x01" + pb_session(proto=4, extra=owner)),
        ("session-odd-id", b"\x01" + pb_session(client="{x}:y \u00e9")),
        ("session-dup-sub", b"\x01" + pb_session(extra=pb_bytes(7, pb_sub("a")) * 2)),
        ("session-dup-pid", b"\x01" + pb_session(extra=pb_bytes(9, pb_inflight(7, 2, 3)) * 2)),
        ("session-proto-3", b"\x01" + pb_session(proto=3)),
        ("session-other-tenant", b"\x01" + pb_session(
            extra=pb_bytes(10, pb_message(version=None, tenant="beta")))),
        ("session-share-no-local", b"\x01" + pb_session(
            extra=pb_bytes(7, pb_sub("a", group="g", no_local=True)))),
        ("entry-queued", b"\x02" + entry(1, 0, 0, m1)),
        ("entry-sent", b"\x02" + entry(2, 11, 1, m2, sent=1700000000000)),
        ("entry-pubrec", b"\x02" + entry(3, 65535, 2, m2)),
        ("entry-pubrec-qos1", b"\x02" + entry(3, 1, 2, m1)),
        ("entry-sent-qos0", b"\x02" + entry(3, 1, 1, pb_message(qos=0))),
        ("entry-queued-pid", b"\x02" + entry(4, 9, 0, m1)),
        ("entry-seq-0", b"\x02" + entry(0, 0, 0, m1)),
        ("entry-seq-max", b"\x02" + entry(1 << 53, 0, 0, m1)),
        ("entry-seq-over", b"\x02" + entry((1 << 53) + 1, 0, 0, m1)),
        ("entry-format-2", b"\x02" + entry(1, 0, 0, m1, fmt=2)),
        ("entry-other-tenant", b"\x02" + entry(1, 0, 0, pb_message(tenant="beta"))),
        ("entry-head-only", b"\x02" + entry(1, 0, 0, b"")),
        ("entry-short", b"\x02" + entry(1, 0, 0, b"")[:12]),
        ("note", b"\x03" + (NODE_ID + " acme 42 dev-1").encode()),
        ("note-spaces", b"\x03" + (NODE_ID + " acme 7 a b {c}:d").encode()),
        ("note-token-0", b"\x03" + (NODE_ID + " acme 0 x").encode()),
        ("note-leading-zero", b"\x03" + (NODE_ID + " acme 042 x").encode()),
        ("note-no-id", b"\x03" + (NODE_ID + " acme 42 ").encode()),
    ]
    return out


def write(dirname, name, data):
    path = os.path.join(HERE, "corpus", dirname, name)
    with open(path, "wb") as f:
        f.write(data)


def main():
    if sys.argv[1:] == ["--jwt-keys"]:
        print("x", b64u(JWT_EC_PUB[0].to_bytes(32, "big")))
        print("y", b64u(JWT_EC_PUB[1].to_bytes(32, "big")))
        print("k", b64u(JWT_HS_SECRET))
        return 0
    for d in ("decode", "topic", "passwd", "acl", "jwt", "tenancy", "record"):
        os.makedirs(os.path.join(HERE, "corpus", d), exist_ok=True)
    dec = decode_seeds()
    names = [n for n, _, _, _ in dec]
    assert len(names) == len(set(names)), "duplicate decode seed name"
    for name, cfg, cut, stream in dec:
        write("decode", name, bytes([cfg, cut]) + stream)
    top = topic_seeds()
    for name, data in top:
        write("topic", name, data)
    pw = passwd_seeds()
    for name, data in pw:
        write("passwd", name, data)
    acl = acl_seeds()
    for name, data in acl:
        write("acl", name, data)
    jwt = jwt_seeds()
    assert len(jwt) == len({n for n, _ in jwt}), "duplicate jwt seed name"
    for name, data in jwt:
        write("jwt", name, data)
    ten = tenancy_seeds()
    for name, data in ten:
        write("tenancy", name, data)
    rec = record_seeds()
    assert len(rec) == len({n for n, _ in rec}), "duplicate record seed name"
    for name, data in rec:
        write("record", name, data)
    print(f"make-seeds: {len(dec)} decode seeds, {len(top)} topic seeds, "
          f"{len(pw)} passwd seeds, {len(acl)} acl seeds, {len(jwt)} jwt seeds, "
          f"{len(ten)} tenancy seeds, {len(rec)} record seeds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
