/*
 * UTF-8 as MQTT requires it: well-formed per RFC 3629 (no overlong forms,
 * nothing above U+10FFFF), no UTF-16 surrogates (U+D800..U+DFFF) and no
 * U+0000. Other control characters and non-characters are allowed, as the
 * spec only says senders SHOULD avoid them.
 */
#ifndef BW_MQTT_UTF8_H
#define BW_MQTT_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* True when s[0..len) is valid MQTT UTF-8. */
bool bw_utf8_valid(const uint8_t *s, size_t len);

#endif
