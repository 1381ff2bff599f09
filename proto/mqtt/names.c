/*
 * Human names of packet types and reason codes, for logs, metrics labels
 * and reason strings.
 */
#include "proto/mqtt/codec.h"

const char *bw_packet_name(uint8_t type)
{
	static const char *const names[] = {
		[BW_CONNECT] = "CONNECT",   [BW_CONNACK] = "CONNACK",
		[BW_PUBLISH] = "PUBLISH",   [BW_PUBACK] = "PUBACK",
		[BW_PUBREC] = "PUBREC",     [BW_PUBREL] = "PUBREL",
		[BW_PUBCOMP] = "PUBCOMP",   [BW_SUBSCRIBE] = "SUBSCRIBE",
		[BW_SUBACK] = "SUBACK",     [BW_UNSUBSCRIBE] = "UNSUBSCRIBE",
		[BW_UNSUBACK] = "UNSUBACK", [BW_PINGREQ] = "PINGREQ",
		[BW_PINGRESP] = "PINGRESP", [BW_DISCONNECT] = "DISCONNECT",
		[BW_AUTH] = "AUTH",
	};
	if (type >= sizeof(names) / sizeof(names[0]) || !names[type])
		return "?";
	return names[type];
}

const char *bw_reason_name(uint8_t code)
{
	switch (code) {
	case BW_RC_SUCCESS:
		return "Success";
	case BW_RC_GRANTED_QOS1:
		return "Granted QoS 1";
	case BW_RC_GRANTED_QOS2:
		return "Granted QoS 2";
	case BW_RC_DISCONNECT_WITH_WILL:
		return "Disconnect with Will Message";
	case BW_RC_NO_MATCHING_SUBSCRIBERS:
		return "No matching subscribers";
	case BW_RC_NO_SUBSCRIPTION_EXISTED:
		return "No subscription existed";
	case BW_RC_CONTINUE_AUTH:
		return "Continue authentication";
	case BW_RC_REAUTHENTICATE:
		return "Re-authenticate";
	case BW_RC_UNSPECIFIED:
		return "Unspecified error";
	case BW_RC_MALFORMED:
		return "Malformed Packet";
	case BW_RC_PROTOCOL_ERROR:
		return "Protocol Error";
	case BW_RC_IMPL_SPECIFIC:
		return "Implementation specific error";
	case BW_RC_UNSUPPORTED_VERSION:
		return "Unsupported Protocol Version";
	case BW_RC_CLIENT_ID_INVALID:
		return "Client Identifier not valid";
	case BW_RC_BAD_USERNAME_PASSWORD:
		return "Bad User Name or Password";
	case BW_RC_NOT_AUTHORIZED:
		return "Not authorized";
	case BW_RC_SERVER_UNAVAILABLE:
		return "Server unavailable";
	case BW_RC_SERVER_BUSY:
		return "Server busy";
	case BW_RC_BANNED:
		return "Banned";
	case BW_RC_SERVER_SHUTTING_DOWN:
		return "Server shutting down";
	case BW_RC_BAD_AUTH_METHOD:
		return "Bad authentication method";
	case BW_RC_KEEPALIVE_TIMEOUT:
		return "Keep Alive timeout";
	case BW_RC_SESSION_TAKEN_OVER:
		return "Session taken over";
	case BW_RC_TOPIC_FILTER_INVALID:
		return "Topic Filter invalid";
	case BW_RC_TOPIC_NAME_INVALID:
		return "Topic Name invalid";
	case BW_RC_PACKET_ID_IN_USE:
		return "Packet Identifier in use";
	case BW_RC_PACKET_ID_NOT_FOUND:
		return "Packet Identifier not found";
	case BW_RC_RECEIVE_MAX_EXCEEDED:
		return "Receive Maximum exceeded";
	case BW_RC_TOPIC_ALIAS_INVALID:
		return "Topic Alias invalid";
	case BW_RC_PACKET_TOO_LARGE:
		return "Packet too large";
	case BW_RC_MESSAGE_RATE_TOO_HIGH:
		return "Message rate too high";
	case BW_RC_QUOTA_EXCEEDED:
		return "Quota exceeded";
	case BW_RC_ADMIN_ACTION:
		return "Administrative action";
	case BW_RC_PAYLOAD_FORMAT_INVALID:
		return "Payload format invalid";
	case BW_RC_RETAIN_NOT_SUPPORTED:
		return "Retain not supported";
	case BW_RC_QOS_NOT_SUPPORTED:
		return "QoS not supported";
	case BW_RC_USE_ANOTHER_SERVER:
		return "Use another server";
	case BW_RC_SERVER_MOVED:
		return "Server moved";
	case BW_RC_SHARED_SUB_NOT_SUPPORTED:
		return "Shared Subscriptions not supported";
	case BW_RC_CONNECTION_RATE_EXCEEDED:
		return "Connection rate exceeded";
	case BW_RC_MAX_CONNECT_TIME:
		return "Maximum connect time";
	case BW_RC_SUB_ID_NOT_SUPPORTED:
		return "Subscription Identifiers not supported";
	case BW_RC_WILDCARD_SUB_NOT_SUPPORTED:
		return "Wildcard Subscriptions not supported";
	}
	return "?";
}
