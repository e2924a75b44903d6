/*
 * fuzz_frame.c — libFuzzer target for the native protocol's framing and
 * header decoding (protocol/frame.c): the bytes a client sends on :9700.
 *
 * The input is fed to the stream decoder in pieces whose sizes come from the
 * input's first byte, so frames split across receives are exercised; every
 * frame that comes out is decoded as a request under the broker's default
 * limits. Nothing may crash, leak or read out of bounds; errors are expected.
 */
#include <stdint.h>
#include <stdlib.h>

#include "protocol/frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t step = (size_t)data[0] % 64 + 1;
    data++;
    size--;

    rn_frame_limits lim = {
        .max_request = 1u << 20,
        .max_header = 64u << 10,
        .max_message = 1u << 20,
        .max_entries = 1024,
        .max_decode_mem = 4u << 20,
    };
    rn_frame_decoder d;
    rn_frame_decoder_init(&d, &lim);
    size_t off = 0;
    while (off < size) {
        size_t len = size - off < step ? size - off : step;
        size_t used = 0;
        rn_frame f;
        int rc = rn_frame_decoder_feed(&d, data + off, len, &used, &f);
        if (rc < 0)
            break;
        off += used;
        if (rc == 1) {
            rn_frame_request req;
            char err[160];
            rn_frame_request_decode(&req, &f, &lim, err, sizeof(err));
            rn_frame_request_fini(&req); /* safe after a failed decode too */
        } else if (used == 0) {
            break; /* no progress: the decoder wants nothing more from this piece */
        }
    }
    rn_frame_decoder_fini(&d);
    return 0;
}
