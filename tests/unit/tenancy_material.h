/*
 * Fixed test material for the tenancy tests: two self-signed CA
 * certificates (EC P-256, basicConstraints CA:TRUE, valid until 2124) and a
 * leaf certificate (CA:FALSE), made once with the openssl command line; the
 * SHA-256 of each one's DER; a JWK Set with one HMAC key; a $7$ hash of
 * "secret" (mosquitto_passwd 2.0).
 */
#ifndef BW_TEST_TENANCY_MATERIAL_H
#define BW_TEST_TENANCY_MATERIAL_H

#define CA_A_PEM                                                                                   \
	"-----BEGIN CERTIFICATE-----\n"                                                            \
	"MIIBfzCCASWgAwIBAgIUPlrYZvoFuNK8BAnhC8NJTA4H9UowCgYIKoZIzj0EAwIw\n"                       \
	"FDESMBAGA1UEAwwJVGVzdCBDQSBhMCAXDTI2MTEyNDIyMjg1M1oYDzIxMjYxMDMx\n"                       \
	"MjIyODUzWjAUMRIwEAYDVQQDDAlUZXN0IENBIGEwWTATBgcqhkjOPQIBBggqhkjO\n"                       \
	"PQMBBwNCAAT/ECOBV0AHoKUih3hDrHvvim9/8YoxOmSt7QyewT/PObRNlK0WKe1P\n"                       \
	"gp5nbl/MENvGORaOS9tXQ0X4x8sHJhDoo1MwUTAdBgNVHQ4EFgQUzTFUisPQ+96G\n"                       \
	"xGyNGIzM9OOY/IYwHwYDVR0jBBgwFoAUzTFUisPQ+96GxGyNGIzM9OOY/IYwDwYD\n"                       \
	"VR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNIADBFAiEA13fAFpzZig9H2QW0wP4m\n"                       \
	"7AGL39eDiR45FzBDxsgU3XECID9+tkosypo0M4BobLsV3EncrpyuwAjSFlIA+tLT\n"                       \
	"87j+\n"                                                                                   \
	"-----END CERTIFICATE-----\n"

#define CA_B_PEM                                                                                   \
	"-----BEGIN CERTIFICATE-----\n"                                                            \
	"MIIBgDCCASWgAwIBAgIUIAq6lNYrF8QCooyVeGdi16tPbxAwCgYIKoZIzj0EAwIw\n"                       \
	"FDESMBAGA1UEAwwJVGVzdCBDQSBiMCAXDTI2MTEyNDIyMjg1M1oYDzIxMjYxMDMx\n"                       \
	"MjIyODUzWjAUMRIwEAYDVQQDDAlUZXN0IENBIGIwWTATBgcqhkjOPQIBBggqhkjO\n"                       \
	"PQMBBwNCAARgQXHTAWBIjJQwg+BPAlcVhaAG5df5s/7d/lZ1m62zumYtejxc4vf6\n"                       \
	"u/yzjRRLoctir6HN4uaggbQsucPJ+nV4o1MwUTAdBgNVHQ4EFgQUm2KQPjYxxaOO\n"                       \
	"4srKPM4CwiWBkFswHwYDVR0jBBgwFoAUm2KQPjYxxaOO4srKPM4CwiWBkFswDwYD\n"                       \
	"VR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNJADBGAiEAlHTb8XFmovNT82Ra2v8z\n"                       \
	"PzGY3SXARa8m9a0juVbefzgCIQDRVU5OB1rHpFM7VvIoRR88ozl0SRwn8vyMraQo\n"                       \
	"wgZtXQ==\n"                                                                               \
	"-----END CERTIFICATE-----\n"

#define LEAF_PEM                                                                                   \
	"-----BEGIN CERTIFICATE-----\n"                                                            \
	"MIIBcjCCARigAwIBAgIUcnaDilhiZzBzMhYn1wKUxbtsLOgwCgYIKoZIzj0EAwIw\n"                       \
	"DzENMAsGA1UEAwwEbGVhZjAgFw0yNjExMjQyMjI4NTNaGA8yMTI2MTAzMTIyMjg1\n"                       \
	"M1owDzENMAsGA1UEAwwEbGVhZjBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABJI0\n"                       \
	"iSccpL/Y7SgK4FnviI/5W0fdp8FuUZPCQf6lIvXt5K3993PZLqfU9agqMmIYbFTA\n"                       \
	"6KTuJQOGd5fETYchHA6jUDBOMB0GA1UdDgQWBBR+nUCGDrqBoS7RsaOL4ud3zSmF\n"                       \
	"STAfBgNVHSMEGDAWgBR+nUCGDrqBoS7RsaOL4ud3zSmFSTAMBgNVHRMBAf8EAjAA\n"                       \
	"MAoGCCqGSM49BAMCA0gAMEUCIGuZCYTYJDuKbaXtvaJB95Q/OFbwc6gdHaLKR3VO\n"                       \
	"xrheAiEAwbZKTWo2ByKS2gJ0cHFC9rnR/rvio9jxGgQol6QaInM=\n"                                   \
	"-----END CERTIFICATE-----\n"

#define CA_A_FP_HEX "7e8cd57e321135393519b9945a2bf7d474b7919a2d9f2479f116a2f255b2b6c3"
#define CA_B_FP_HEX "35fe1c190be5534407eaa016c316289ff808f7d0d2cd0613094e4c2a81b859a7"

#define JWKS_OCT                                                                                   \
	"{\"keys\":[{\"kty\":\"oct\",\"alg\":\"HS256\",\"kid\":\"k1\",\"k\":"                      \
	"\"QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE\"}]}"

#define HASH_SECRET                                                                                \
	"$7$101$cR2JDGEzLxF+FoXU$Z3zONKHoNCGYLA+VFfsGICOaOKvUkhB6bObEcPLIjfnd9s+VK2UGceW8rQpYMz"   \
	"OL/cyPWZoSuckzBL+Tt9ca2Q=="

#endif
