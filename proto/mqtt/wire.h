/*
 * Internal to the codec: big-endian field access and the error exit shared
 * by codec.c and props.c. Not part of the codec's public API.
 */
#ifndef BW_MQTT_WIRE_H
#define BW_MQTT_WIRE_H

#include <stdint.h>
#include <string.h>

/* Returns -(rc) after storing the rule broken in *why (when why is set). */
#define FAIL(rc, msg)                                                                              \
	do {                                                                                       \
		if (why)                                                                           \
			*why = (msg);                                                              \
		return -(rc);                                                                      \
	} while (0)

static inline uint16_t get16(const uint8_t *b)
{
	return (uint16_t)(b[0] << 8 | b[1]);
}

static inline uint32_t get32(const uint8_t *b)
{
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

static inline uint8_t *put16(uint8_t *b, uint16_t v)
{
	b[0] = (uint8_t)(v >> 8);
	b[1] = (uint8_t)v;
	return b + 2;
}

static inline uint8_t *put32(uint8_t *b, uint32_t v)
{
	return put16(put16(b, (uint16_t)(v >> 16)), (uint16_t)v);
}

/* A two-byte length prefix and the bytes. */
static inline uint8_t *put_lp(uint8_t *b, const uint8_t *s, uint32_t n)
{
	b = put16(b, (uint16_t)n);
	if (n)
		memcpy(b, s, n);
	return b + n;
}

#endif
