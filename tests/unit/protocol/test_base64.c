/*
 * test_base64.c — protocol/base64.c, the one base64 of the tree: RFC 4648 §10's
 * test vectors both ways, every byte value and length round-tripping, and the
 * strict decoder refusing what is not canonical base64.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "protocol/base64.h"

static const struct {
    const char *raw, *enc;
} rfc4648[] = {
    {"", ""},
    {"f", "Zg=="},
    {"fo", "Zm8="},
    {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="},
    {"fooba", "Zm9vYmE="},
    {"foobar", "Zm9vYmFy"},
};

// RFC 4648 §10's vectors encode and decode exactly.
Test(base64, rfc4648_vectors)
{
    for (size_t i = 0; i < sizeof(rfc4648) / sizeof(rfc4648[0]); i++) {
        size_t n = strlen(rfc4648[i].raw);
        char enc[16];
        cr_assert_eq(rn_base64_len(n), strlen(rfc4648[i].enc));
        rn_base64_encode((const uint8_t *)rfc4648[i].raw, n, enc);
        cr_assert_str_eq(enc, rfc4648[i].enc);
        uint8_t out[16];
        size_t ol = 99;
        cr_assert_eq(rn_base64_decode(rfc4648[i].enc, strlen(rfc4648[i].enc), out, &ol), 0);
        cr_assert_eq(ol, n);
        cr_assert_eq(memcmp(out, rfc4648[i].raw, n), 0);
    }
}

// Every byte value, at every length up to 300, survives encode then decode, and the
// decoder writes no more than n / 4 * 3 bytes.
Test(base64, round_trip_every_byte_and_length)
{
    uint8_t in[300], out[300 + 8];
    char enc[401];
    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = (uint8_t)(i * 151 + 7);
    for (size_t n = 0; n <= sizeof(in); n++) {
        rn_base64_encode(in, n, enc);
        size_t el = strlen(enc);
        cr_assert_eq(el, rn_base64_len(n));
        memset(out, 0xA5, sizeof(out));
        size_t ol;
        cr_assert_eq(rn_base64_decode(enc, el, out, &ol), 0, "length %zu", n);
        cr_assert_eq(ol, n);
        cr_assert_eq(memcmp(out, in, n), 0);
        for (size_t k = el / 4 * 3; k < sizeof(out); k++)
            cr_assert_eq(out[k], 0xA5, "wrote past the room at length %zu", n);
    }
}

// The decoder is strict: bad length, misplaced or excess padding, characters outside the
// standard alphabet (URL-safe, whitespace, NUL) are -EINVAL.
Test(base64, strict_decode_errors)
{
    static const char *bad[] = {
        "Zg",       /* not a multiple of 4 */
        "Zg=",      /* idem */
        "Zm9vY",    /* idem */
        "Z===",     /* three '=' */
        "====",     /* only padding */
        "Zg==Zm8=", /* padding before the last group */
        "Zm=v",     /* '=' in the middle of a group */
        "Zg=a",     /* data after '=' */
        "Zm9v-_==", /* URL-safe alphabet */
        "Zm9 v",    /* whitespace */
        "Zm9\nYg==", "Zm9*",
    };
    uint8_t out[16];
    size_t ol;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(rn_base64_decode(bad[i], strlen(bad[i]), out, &ol), -EINVAL, "accepted \"%s\"",
                     bad[i]);
    /* An embedded NUL counts as a character, not the end. */
    cr_assert_eq(rn_base64_decode("Zm\0v", 4, out, &ol), -EINVAL);
}
