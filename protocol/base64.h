/*
 * base64.h — base64 (RFC 4648 §4: the standard alphabet, with padding), the one
 * copy for the whole tree: the gateways' JSON bodies and WebSocket handshake
 * (broker/gateway/) and the CLI's JSON output (tools/) all call it.
 *
 * Pure functions: no I/O, no allocation, any thread.
 */
#ifndef RN_PROTOCOL_BASE64_H
#define RN_PROTOCOL_BASE64_H

#include <stddef.h>
#include <stdint.h>

/* Characters of the encoding of n bytes (without the NUL): 4 per 3 bytes,
 * rounded up. */
size_t rn_base64_len(size_t n);

/* Encode n bytes of in into out, which has room for rn_base64_len(n) + 1
 * bytes; out is NUL-terminated. Borrows both. */
void rn_base64_encode(const uint8_t *in, size_t n, char *out);

/* Decode n characters of in into out (room for n / 4 * 3 bytes); *out_len is
 * the number of bytes written. Strict: n a multiple of 4, '=' only as the last
 * one or two characters, nothing outside the alphabet (no whitespace, no
 * URL-safe alphabet). Errors: -EINVAL (out may have been partly written). */
int rn_base64_decode(const char *in, size_t n, uint8_t *out, size_t *out_len);

#endif
