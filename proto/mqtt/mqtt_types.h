/*
 * MQTT 3.1.1 and 5.0 wire vocabulary: protocol versions, packet types,
 * reason codes, property identifiers, and the plain "view" structs the codec
 * decodes into. A view points into the caller's input buffer and owns
 * nothing; it is valid only while that buffer is. Lists whose length the
 * peer chooses (subscriptions, user properties, SUBACK codes) stay in wire
 * form and are walked with the iterators in codec.h and props.h, so decoding
 * never allocates.
 */
#ifndef BW_MQTT_TYPES_H
#define BW_MQTT_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Protocol levels carried in CONNECT. */
enum bw_mqtt_version {
	BW_MQTT_311 = 4,
	BW_MQTT_5 = 5,
};

enum bw_packet_type {
	BW_CONNECT = 1,
	BW_CONNACK = 2,
	BW_PUBLISH = 3,
	BW_PUBACK = 4,
	BW_PUBREC = 5,
	BW_PUBREL = 6,
	BW_PUBCOMP = 7,
	BW_SUBSCRIBE = 8,
	BW_SUBACK = 9,
	BW_UNSUBSCRIBE = 10,
	BW_UNSUBACK = 11,
	BW_PINGREQ = 12,
	BW_PINGRESP = 13,
	BW_DISCONNECT = 14,
	BW_AUTH = 15, /* MQTT 5.0 only */
};

/* MQTT 5.0 reason codes (also the codec's error vocabulary). */
enum bw_reason {
	BW_RC_SUCCESS = 0x00, /* also normal disconnection, granted QoS 0 */
	BW_RC_GRANTED_QOS1 = 0x01,
	BW_RC_GRANTED_QOS2 = 0x02,
	BW_RC_DISCONNECT_WITH_WILL = 0x04,
	BW_RC_NO_MATCHING_SUBSCRIBERS = 0x10,
	BW_RC_NO_SUBSCRIPTION_EXISTED = 0x11,
	BW_RC_CONTINUE_AUTH = 0x18,
	BW_RC_REAUTHENTICATE = 0x19,
	BW_RC_UNSPECIFIED = 0x80,
	BW_RC_MALFORMED = 0x81,
	BW_RC_PROTOCOL_ERROR = 0x82,
	BW_RC_IMPL_SPECIFIC = 0x83,
	BW_RC_UNSUPPORTED_VERSION = 0x84,
	BW_RC_CLIENT_ID_INVALID = 0x85,
	BW_RC_BAD_USERNAME_PASSWORD = 0x86,
	BW_RC_NOT_AUTHORIZED = 0x87,
	BW_RC_SERVER_UNAVAILABLE = 0x88,
	BW_RC_SERVER_BUSY = 0x89,
	BW_RC_BANNED = 0x8A,
	BW_RC_SERVER_SHUTTING_DOWN = 0x8B,
	BW_RC_BAD_AUTH_METHOD = 0x8C,
	BW_RC_KEEPALIVE_TIMEOUT = 0x8D,
	BW_RC_SESSION_TAKEN_OVER = 0x8E,
	BW_RC_TOPIC_FILTER_INVALID = 0x8F,
	BW_RC_TOPIC_NAME_INVALID = 0x90,
	BW_RC_PACKET_ID_IN_USE = 0x91,
	BW_RC_PACKET_ID_NOT_FOUND = 0x92,
	BW_RC_RECEIVE_MAX_EXCEEDED = 0x93,
	BW_RC_TOPIC_ALIAS_INVALID = 0x94,
	BW_RC_PACKET_TOO_LARGE = 0x95,
	BW_RC_MESSAGE_RATE_TOO_HIGH = 0x96,
	BW_RC_QUOTA_EXCEEDED = 0x97,
	BW_RC_ADMIN_ACTION = 0x98,
	BW_RC_PAYLOAD_FORMAT_INVALID = 0x99,
	BW_RC_RETAIN_NOT_SUPPORTED = 0x9A,
	BW_RC_QOS_NOT_SUPPORTED = 0x9B,
	BW_RC_USE_ANOTHER_SERVER = 0x9C,
	BW_RC_SERVER_MOVED = 0x9D,
	BW_RC_SHARED_SUB_NOT_SUPPORTED = 0x9E,
	BW_RC_CONNECTION_RATE_EXCEEDED = 0x9F,
	BW_RC_MAX_CONNECT_TIME = 0xA0,
	BW_RC_SUB_ID_NOT_SUPPORTED = 0xA1,
	BW_RC_WILDCARD_SUB_NOT_SUPPORTED = 0xA2,
};

/* MQTT 3.1.1 CONNACK return codes. */
enum bw_connack_311 {
	BW_CONNACK_311_ACCEPTED = 0,
	BW_CONNACK_311_BAD_VERSION = 1,
	BW_CONNACK_311_ID_REJECTED = 2,
	BW_CONNACK_311_UNAVAILABLE = 3,
	BW_CONNACK_311_BAD_USER_PASS = 4,
	BW_CONNACK_311_NOT_AUTHORIZED = 5,
};

/* MQTT 5.0 property identifiers. */
enum bw_prop_id {
	BW_PROP_PAYLOAD_FORMAT = 0x01,
	BW_PROP_MESSAGE_EXPIRY = 0x02,
	BW_PROP_CONTENT_TYPE = 0x03,
	BW_PROP_RESPONSE_TOPIC = 0x08,
	BW_PROP_CORRELATION_DATA = 0x09,
	BW_PROP_SUBSCRIPTION_ID = 0x0B,
	BW_PROP_SESSION_EXPIRY = 0x11,
	BW_PROP_ASSIGNED_CLIENT_ID = 0x12,
	BW_PROP_SERVER_KEEP_ALIVE = 0x13,
	BW_PROP_AUTH_METHOD = 0x15,
	BW_PROP_AUTH_DATA = 0x16,
	BW_PROP_REQUEST_PROBLEM_INFO = 0x17,
	BW_PROP_WILL_DELAY = 0x18,
	BW_PROP_REQUEST_RESPONSE_INFO = 0x19,
	BW_PROP_RESPONSE_INFO = 0x1A,
	BW_PROP_SERVER_REFERENCE = 0x1C,
	BW_PROP_REASON_STRING = 0x1F,
	BW_PROP_RECEIVE_MAX = 0x21,
	BW_PROP_TOPIC_ALIAS_MAX = 0x22,
	BW_PROP_TOPIC_ALIAS = 0x23,
	BW_PROP_MAX_QOS = 0x24,
	BW_PROP_RETAIN_AVAILABLE = 0x25,
	BW_PROP_USER = 0x26,
	BW_PROP_MAX_PACKET_SIZE = 0x27,
	BW_PROP_WILDCARD_SUB_AVAILABLE = 0x28,
	BW_PROP_SUB_ID_AVAILABLE = 0x29,
	BW_PROP_SHARED_SUB_AVAILABLE = 0x2A,
};

#define BW_PROP_BIT(id) (UINT64_C(1) << (id))

/* Largest values the wire formats can carry. */
#define BW_VARINT_MAX      268435455u /* 4-byte variable byte integer */
#define BW_PACKET_SIZE_MAX 268435460u /* 1 + 4 + BW_VARINT_MAX */

/* A UTF-8 string view (validated by the decoder). */
struct bw_str {
	const uint8_t *p;
	uint16_t len;
};

/* A binary data view; also used for raw wire-form lists. */
struct bw_bin {
	const uint8_t *p;
	uint32_t len;
};

/*
 * MQTT 5.0 properties of one packet (or of a will). Each single-valued
 * property that is present has its bit BW_PROP_BIT(id) set in `has` and its
 * value in the matching field.
 *
 * Decode fills `has` and the fields, sets `block` to the whole property
 * block as received, and counts user properties and subscription
 * identifiers (user_count, sub_id_count), which may repeat and stay in wire
 * form: walk them with bw_props_next_user() and bw_props_next_sub_id().
 * `sub_id` holds the first subscription identifier (BW_PROP_BIT set when
 * there is one). Decode leaves `raw` and `sub_ids` empty.
 *
 * Encode writes every property whose bit is set in `has` from the fields
 * (the subscription identifier from `sub_id`, or, when `sub_ids` is not
 * NULL, each of sub_ids[0..sub_id_count) instead), then appends `raw`
 * verbatim: pre-encoded properties, typically user properties built with
 * bw_props_put_user() or copied from a received block with
 * bw_props_copy_user(). Encode ignores `block`, `user_count` and does not
 * re-validate `raw`. So a decoded struct re-encodes to the same properties
 * less its user properties and extra subscription identifiers, unless the
 * caller copies them into `raw`.
 */
struct bw_props {
	uint64_t has;
	uint32_t message_expiry;
	uint32_t session_expiry;
	uint32_t will_delay;
	uint32_t max_packet_size;
	uint32_t sub_id;
	uint16_t server_keep_alive;
	uint16_t receive_max;
	uint16_t topic_alias_max;
	uint16_t topic_alias;
	uint8_t payload_format;
	uint8_t request_problem_info;
	uint8_t request_response_info;
	uint8_t max_qos;
	uint8_t retain_available;
	uint8_t wildcard_sub_available;
	uint8_t sub_id_available;
	uint8_t shared_sub_available;
	struct bw_str content_type;
	struct bw_str response_topic;
	struct bw_bin correlation_data;
	struct bw_str assigned_client_id;
	struct bw_str auth_method;
	struct bw_bin auth_data;
	struct bw_str response_info;
	struct bw_str server_reference;
	struct bw_str reason_string;
	uint32_t user_count;
	uint32_t sub_id_count;
	const uint32_t *sub_ids; /* encode only */
	struct bw_bin raw;       /* encode only: appended verbatim */
	struct bw_bin block;     /* decode only: the block as received */
};

struct bw_connect {
	uint8_t version; /* enum bw_mqtt_version */
	bool clean_start;
	bool will;
	uint8_t will_qos;
	bool will_retain;
	bool has_username;
	bool has_password;
	uint16_t keep_alive;
	struct bw_props props;
	struct bw_str client_id;
	struct bw_props will_props;
	struct bw_str will_topic;
	struct bw_bin will_payload;
	struct bw_str username;
	struct bw_bin password;
};

struct bw_connack {
	bool session_present;
	uint8_t code; /* 3.1.1 return code or 5.0 reason code */
	struct bw_props props;
};

struct bw_publish {
	uint8_t qos;
	bool dup;
	bool retain;
	uint16_t packet_id;  /* 0 for QoS 0 */
	struct bw_str topic; /* empty when a 5.0 topic alias stands for it */
	struct bw_props props;
	struct bw_bin payload;
};

/* PUBACK, PUBREC, PUBREL, PUBCOMP. */
struct bw_ack {
	uint16_t packet_id;
	uint8_t code;
	struct bw_props props;
};

/*
 * SUBSCRIBE: `entries` holds the topic filter list in wire form, walked
 * with bw_codec_next_sub() and built with bw_codec_put_sub().
 */
struct bw_subscribe {
	uint16_t packet_id;
	struct bw_props props;
	uint32_t count;
	struct bw_bin entries;
};

/* One SUBSCRIBE entry with its options decoded. */
struct bw_sub_entry {
	struct bw_str filter;
	uint8_t qos;
	bool no_local;
	bool retain_as_published;
	uint8_t retain_handling;
};

/* UNSUBSCRIBE: filters in wire form, see bw_codec_next_unsub(). */
struct bw_unsubscribe {
	uint16_t packet_id;
	struct bw_props props;
	uint32_t count;
	struct bw_bin entries;
};

/* SUBACK and UNSUBACK: one reason code byte a filter (3.1.1 UNSUBACK: none). */
struct bw_suback {
	uint16_t packet_id;
	struct bw_props props;
	struct bw_bin codes;
};

/* DISCONNECT and AUTH. */
struct bw_disconnect {
	uint8_t code;
	struct bw_props props;
};

/* A decoded packet; `type` selects the member. */
struct bw_packet {
	uint8_t type;  /* enum bw_packet_type */
	uint8_t flags; /* low nibble of the fixed header */
	union {
		struct bw_connect connect;
		struct bw_connack connack;
		struct bw_publish publish;
		struct bw_ack ack;
		struct bw_subscribe subscribe;
		struct bw_unsubscribe unsubscribe;
		struct bw_suback suback;
		struct bw_disconnect disconnect; /* also AUTH */
	};
};

#endif
