/*
 * MQTT 5.0 properties: the table of every property (wire type, which packets
 * may carry it, whether it may repeat), decoding a property block into
 * struct bw_props with all the spec's rules, encoding one, and helpers for
 * the repeatable properties (user properties, subscription identifiers),
 * which stay in wire form.
 */
#ifndef BW_MQTT_PROPS_H
#define BW_MQTT_PROPS_H

#include "proto/mqtt/mqtt_types.h"

/* Wire types of property values. */
enum bw_prop_type {
	BW_PT_BYTE = 1,
	BW_PT_U16,
	BW_PT_U32,
	BW_PT_VARINT,
	BW_PT_UTF8,
	BW_PT_BINARY,
	BW_PT_UTF8_PAIR,
};

/*
 * Where a property block sits. Packet types use their own number; the will
 * properties inside CONNECT use BW_PROPS_WILL.
 */
#define BW_PROPS_WILL 16

/*
 * The property's wire type, or 0 for an unknown identifier; *where (may be
 * NULL) gets the mask of places, bit (1 << packet type) or (1 <<
 * BW_PROPS_WILL), that may carry it.
 */
enum bw_prop_type bw_prop_type(uint8_t id, uint32_t *where);

/* Name of a property ("Topic Alias"), or "?" for an unknown one. */
const char *bw_prop_name(uint8_t id);

/*
 * Decodes the property block buf[0..len) (the bytes after the property
 * length) found in `where` (packet type or BW_PROPS_WILL) into *p, which it
 * zeroes first. Returns 0 or a negative reason: -BW_RC_MALFORMED (unknown
 * identifier, truncated value, bad UTF-8), -BW_RC_PROTOCOL_ERROR (a property
 * that place may not carry, a repeated single-valued one, a value out of
 * range such as Receive Maximum 0), -BW_RC_TOPIC_ALIAS_INVALID (Topic Alias 0).
 */
int bw_props_decode(const uint8_t *buf, uint32_t len, unsigned where, struct bw_props *p,
                    const char **why);

/* Encoded size of the block's content (without its length prefix). */
uint32_t bw_props_size(const struct bw_props *p);

/* Writes the block's content (no length prefix); returns bytes written. */
uint32_t bw_props_encode(const struct bw_props *p, uint8_t *buf);

/* The same less `raw`: what bw_codec_publish_head() writes per subscriber. */
uint32_t bw_props_encode_head(const struct bw_props *p, uint8_t *buf);

/*
 * Walks user properties (key, value) of a decoded block (p->block). *off
 * starts at 0.
 * Returns true with *key and *val set, false past the last one.
 */
bool bw_props_next_user(const struct bw_props *p, uint32_t *off, struct bw_str *key,
                        struct bw_str *val);

/* Walks the subscription identifiers of a decoded block, like above. */
bool bw_props_next_sub_id(const struct bw_props *p, uint32_t *off, uint32_t *id);

/*
 * Bytes the user properties of a decoded block take in wire form, and a
 * copy of just those into out (which must hold that many), for forwarding
 * them verbatim through bw_props.raw. Returns bytes written.
 */
uint32_t bw_props_user_size(const struct bw_props *p);
uint32_t bw_props_copy_user(const struct bw_props *p, uint8_t *out);

/*
 * Appends one user property in wire form to buf[*len..cap); returns 0 or
 * -ENOSPC (buf unchanged).
 */
int bw_props_put_user(uint8_t *buf, size_t cap, uint32_t *len, struct bw_str key,
                      struct bw_str val);

#endif
