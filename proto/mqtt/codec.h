/*
 * The MQTT 3.1.1 / 5.0 packet codec: framing, decoding into views, and
 * encoding. It is pure: no syscalls, clocks, logging or allocation. Decoding
 * returns views into the caller's buffer (see mqtt_types.h).
 *
 * Reading a stream: append received bytes to a buffer, call bw_codec_frame()
 * on its unread part. BW_CODEC_AGAIN means "need more bytes" (never an
 * error); 0 means one whole packet of frame.size bytes starts there, which
 * bw_codec_decode() turns into a struct bw_packet. A negative return is
 * -(MQTT 5.0 reason code) the broker should answer with (CONNACK or
 * DISCONNECT in 5.0; a plain disconnect in 3.1.1), and *why (when why is not
 * NULL) names the rule broken in a short static string suitable for a log
 * line or a reason string.
 */
#ifndef BW_MQTT_CODEC_H
#define BW_MQTT_CODEC_H

#include "proto/mqtt/mqtt_types.h"

#define BW_CODEC_AGAIN 1

/* What bw_codec_frame() learned from a fixed header. */
struct bw_frame {
	uint8_t type;
	uint8_t flags;
	uint8_t header_len;     /* 2..5: first byte plus remaining-length bytes */
	uint32_t remaining_len; /* body bytes after the fixed header */
	uint32_t size;          /* header_len + remaining_len */
};

/*
 * Looks for one packet at the start of buf[0..len). Returns 0 when all of it
 * is there, BW_CODEC_AGAIN when more bytes are needed (frame->size is then
 * the whole packet's size if the fixed header is complete, else 0), or a
 * negative reason: -BW_RC_MALFORMED for an overlong or non-minimal length or
 * packet type 0, -BW_RC_PACKET_TOO_LARGE when the packet would exceed
 * max_packet_size (checked as soon as the header is known, so a peer cannot
 * make the caller buffer an oversized body). Reserved flag bits are checked
 * by bw_codec_decode(), which knows the protocol version.
 */
int bw_codec_frame(const uint8_t *buf, size_t len, uint32_t max_packet_size, struct bw_frame *frame,
                   const char **why);

/*
 * Decodes the whole packet buf[0..len) (as delimited by bw_codec_frame())
 * spoken in `version` (enum bw_mqtt_version). A CONNECT is decoded whatever
 * `version` says, and carries its own. Returns 0 with *pkt filled, or a
 * negative reason code. Every string is checked as MQTT UTF-8, every
 * property against the packet it rides on, every flag and length against
 * the spec. Topic filters in SUBSCRIBE are not judged here: each entry's
 * filter is checked with bw_topic_filter_check() so that one bad filter gets
 * its own SUBACK code rather than a disconnect.
 */
int bw_codec_decode(const uint8_t *buf, size_t len, uint8_t version, struct bw_packet *pkt,
                    const char **why);

/*
 * Walks the entries of a decoded SUBSCRIBE. *off starts at 0. Returns true
 * with *e filled, false past the last entry. The list was validated by
 * bw_codec_decode().
 */
bool bw_codec_next_sub(const struct bw_subscribe *s, uint8_t version, uint32_t *off,
                       struct bw_sub_entry *e);

/* Walks the filters of a decoded UNSUBSCRIBE, like bw_codec_next_sub(). */
bool bw_codec_next_unsub(const struct bw_unsubscribe *u, uint32_t *off, struct bw_str *filter);

/*
 * Appends one SUBSCRIBE entry (or, with opts_byte false, one UNSUBSCRIBE
 * filter) in wire form to buf[*len..cap) and advances *len. Returns 0, or
 * -ENOSPC when it does not fit (buf unchanged).
 */
int bw_codec_put_sub(uint8_t *buf, size_t cap, uint32_t *len, const struct bw_sub_entry *e,
                     uint8_t version);
int bw_codec_put_unsub(uint8_t *buf, size_t cap, uint32_t *len, struct bw_str filter);

/*
 * Encoding. The packet is described by the same struct bw_packet the
 * decoder fills (type set, flags ignored: they follow from the fields).
 * bw_codec_size() is the exact encoded size, or 0 when the packet cannot be
 * encoded (too large for the wire, or a field the version cannot carry).
 * bw_codec_encode() writes it to buf and returns its size, -ENOSPC when cap
 * is too small, or -EINVAL when bw_codec_size() would return 0.
 */
size_t bw_codec_size(const struct bw_packet *pkt, uint8_t version);
int bw_codec_encode(const struct bw_packet *pkt, uint8_t version, uint8_t *buf, size_t cap);

/*
 * Fan-out encoding of a PUBLISH: the packet is head + pub->props.raw +
 * pub->payload, where the head (fixed header, topic, packet id, property
 * length and the properties set in pub->props.has and sub_ids) is written
 * here into buf and the two tails can be shared by every subscriber as
 * separate iovecs. Returns the head's length, -ENOSPC or -EINVAL.
 * BW_PUBLISH_HEAD_MAX bytes always suffice when the topic and the
 * per-subscriber properties are within their limits; otherwise use
 * bw_codec_size() minus the tails.
 */
#define BW_PUBLISH_HEAD_MAX 128
int bw_codec_publish_head(const struct bw_publish *pub, uint8_t version, uint8_t *buf, size_t cap);

/*
 * Variable byte integers. bw_varint_decode() reads at most 4 bytes from
 * buf[0..len) and returns the number of bytes used, 0 when more are needed,
 * or -BW_RC_MALFORMED for a fifth continuation byte or a non-minimal
 * encoding. bw_varint_size() is the encoded length of v (v <=
 * BW_VARINT_MAX); bw_varint_encode() writes it and returns that length.
 */
int bw_varint_decode(const uint8_t *buf, size_t len, uint32_t *v);
int bw_varint_size(uint32_t v);
int bw_varint_encode(uint8_t *buf, uint32_t v);

/* Name of a packet type ("PUBLISH"), or "?" for an unknown one. */
const char *bw_packet_name(uint8_t type);

/* Name of a reason code ("Malformed Packet"), or "?" for an unknown one. */
const char *bw_reason_name(uint8_t code);

#endif
